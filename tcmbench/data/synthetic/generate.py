"""synthtext-mini: generate on first use, then read from the cache.

Every image is a pure function of ``(seed, split, index)``: its generator is
``numpy.random.default_rng(SeedSequence(seed, spawn_key=(split code,
index)))``. So the same seed gives byte-identical files on every run, the
first N images of any generation equal the first N of the full split, and
nothing depends on global random state.

Cache layout (``root`` = ``cache_dir`` or
``tcmbench.safety.paths.datasets_cache_dir() / "synthtext-mini"``)::

    root/v{GENERATOR_VERSION}-seed{seed}/
        train/                  one folder per split, written atomically
            train.jsonl         tcmbench JSON lines, image paths relative
            meta.json           generator version, seed, counts
            images/train_00001.jpg, train_00002_night.jpg, ...
        test/
            test.jsonl, meta.json, images/test_00001.jpg, ...
        train-first8/           a partial generation (num_images smaller
                                than the split, and the full split absent)

A split folder is built in a temporary sibling and renamed into place
(:func:`tcmbench.safety.paths.atomic_dir`), so an interrupted generation leaves no
folder that a later run would trust. Bump :data:`GENERATOR_VERSION` whenever
the pixels or the annotations change: old caches are then ignored.
"""

from __future__ import annotations

import io
import json
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tcmbench.data.schema import Instance, Sample
from tcmbench.data.source import AnnotationSource, ParseReport
from tcmbench.errors import DatasetNotFoundError

log = logging.getLogger(__name__)
# Lines a user waiting on a long job should see even without -v (the CLI
# shows this logger's INFO records): where the minutes go, and where to.
progress_log = logging.getLogger("tcmbench.progress")

NAME = "synthtext-mini"
GENERATOR_VERSION = 1
SPLIT_SIZES: dict[str, int] = {"train": 1000, "test": 200}
NIGHT_PROBABILITY = 0.25
NIGHT_SUFFIX = "_night"
# Image sides are drawn from these (multiples of 32, the stride detectors
# like); width and height independently, so most images are not square.
IMAGE_SIDES: tuple[int, ...] = (320, 352, 384, 416, 448)
IMAGE_EXTENSION = ".jpg"
JPEG_QUALITY_RANGE = (82, 96)
PIXEL_CENTRE = 0.5


@dataclass
class SyntheticImage:
    """One generated image before it is written: id, pixels, annotations,
    and the day-time scene it came from (kept for tests and debugging)."""

    id: str
    pixels: np.ndarray  # uint8 H x W x 3, RGB, after camera effects
    instances: list[Instance]
    night: bool
    jpeg_quality: int
    scene: Any  # tcmbench.data.synthetic.scene.Scene


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one image: independent of every other image."""
    split_code = zlib.crc32(split.encode("utf-8"))
    return np.random.default_rng(
        np.random.SeedSequence(int(seed), spawn_key=(split_code, int(index)))
    )


def sample_id(split: str, index: int, night: bool) -> str:
    """``train_00001`` (1-based) or ``train_00001_night``."""
    return f"{split}_{index + 1:05d}" + (NIGHT_SUFFIX if night else "")


def _day_camera(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Mild day-time camera effects: exposure, softness, sensor noise."""
    import cv2

    img: np.ndarray = image.astype(np.float32)
    img = img * float(rng.uniform(0.85, 1.1)) + float(rng.uniform(-12, 12))
    if rng.random() < 0.35:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.4, 0.9)))
    img += rng.normal(0.0, float(rng.uniform(0.5, 4.0)), size=img.shape).astype(np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def synthesize(seed: int, split: str, index: int) -> SyntheticImage:
    """Make image ``index`` (0-based) of ``split``."""
    from tcmbench.data.synthetic.night import apply_night
    from tcmbench.data.synthetic.scene import compose_scene

    rng = image_rng(seed, split, index)
    width = int(rng.choice(IMAGE_SIDES))
    height = int(rng.choice(IMAGE_SIDES))
    night = bool(rng.random() < NIGHT_PROBABILITY)
    scene = compose_scene(rng, width, height)
    if night:
        pixels = apply_night(scene.image, rng, [(w.coverage, w.colour) for w in scene.words])
    else:
        pixels = _day_camera(rng, scene.image)
    quality = int(rng.integers(*JPEG_QUALITY_RANGE))
    # Scene polygons use continuous coordinates (pixel i spans [i, i+1));
    # annotations use pixel-centre coordinates like OpenCV and the ICDAR
    # files, so that cv2.fillPoly(polygon) covers exactly the text's pixels.
    instances = [
        Instance(
            np.round(w.polygon - PIXEL_CENTRE, 2).astype(np.float32), ignore=w.ignore, text=w.text
        )
        for w in scene.words
    ]
    return SyntheticImage(sample_id(split, index, night), pixels, instances, night, quality, scene)


def encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
    """JPEG bytes; no timestamps or other varying metadata, so equal pixels
    give equal bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="JPEG", quality=quality, optimize=False)
    return buf.getvalue()


# --------------------------------------------------------------------------- cache


def cache_root(seed: int = 0, cache_dir: Path | None = None) -> Path:
    """``<cache_dir or datasets cache/synthtext-mini>/v{VERSION}-seed{seed}``."""
    from tcmbench.safety.paths import datasets_cache_dir

    base = Path(cache_dir) if cache_dir is not None else datasets_cache_dir() / NAME
    return base.expanduser().resolve() / f"v{GENERATOR_VERSION}-seed{int(seed)}"


def split_dir(
    split: str, seed: int = 0, num_images: int | None = None, cache_dir: Path | None = None
) -> Path:
    """The folder holding one generated split (full or partial)."""
    full = SPLIT_SIZES.get(split)
    root = cache_root(seed, cache_dir)
    if num_images is None or num_images == full:
        return root / split
    return root / f"{split}-first{num_images}"


def _is_complete(folder: Path, split: str, seed: int, num_images: int) -> bool:
    meta_path = folder / "meta.json"
    if not (folder / f"{split}.jsonl").is_file() or not meta_path.is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        meta.get("generator_version") == GENERATOR_VERSION
        and meta.get("seed") == seed
        and meta.get("split") == split
        and meta.get("num_images") == num_images
    )


def generate_split(folder: Path, split: str, seed: int, num_images: int) -> None:
    """Write ``num_images`` images of ``split`` and their annotations into
    ``folder`` (a fresh folder: the caller makes it atomic)."""
    from tqdm import tqdm

    images_dir = folder / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []
    for index in tqdm(range(num_images), desc=f"{NAME} {split}", unit="img", disable=None):
        item = synthesize(seed, split, index)
        path = images_dir / f"{item.id}{IMAGE_EXTENSION}"
        path.write_bytes(encode_jpeg(item.pixels, item.jpeg_quality))
        height, width = item.pixels.shape[:2]
        samples.append(Sample(item.id, str(path), width, height, item.instances))
    write_split_files(folder, split, seed, samples)


def write_split_files(folder: Path, split: str, seed: int, samples: list[Sample]) -> None:
    """The annotation file and ``meta.json`` of a split folder whose images
    are already in ``folder / "images"``. ``meta.json`` is written last: its
    presence (and content) is what marks the folder complete."""
    from tcmbench.data.formats.jsonl import write_jsonl

    write_jsonl(samples, folder / f"{split}.jsonl")
    meta = {
        "dataset": NAME,
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "split": split,
        "num_images": len(samples),
        "night_images": sum(s.id.endswith(NIGHT_SUFFIX) for s in samples),
        "instances": sum(len(s.instances) for s in samples),
        "ignored": sum(s.num_ignored for s in samples),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _read_split_file(folder: Path, split: str) -> list[Sample]:
    from tcmbench.data.formats.jsonl import read_jsonl

    with AnnotationSource(folder / f"{split}.jsonl") as source:
        return read_jsonl(source, None, ParseReport())


def load_synthtext_mini(
    split: str,
    *,
    seed: int = 0,
    num_images: int | None = None,
    cache_dir: Path | None = None,
) -> list[Sample]:
    """The samples of one synthtext-mini split, generating them on first use.

    ``split`` is ``train`` (1000 images) or ``test`` (200). ``num_images``
    takes the first N images instead (served from the full split when that
    is cached, else generated into its own folder). ``cache_dir`` replaces
    ``datasets_cache_dir() / "synthtext-mini"``. Image paths are absolute.
    """
    if split not in SPLIT_SIZES:
        raise DatasetNotFoundError(
            f"{NAME} has no split {split!r}; splits: {', '.join(SPLIT_SIZES)}"
        )
    seed = int(seed)
    full = SPLIT_SIZES[split]
    if num_images is not None:
        num_images = int(num_images)
        if num_images < 1:
            raise ValueError(f"num_images must be positive, got {num_images}")
        full_dir = split_dir(split, seed, None, cache_dir)
        if num_images < full and _is_complete(full_dir, split, seed, full):
            return _read_split_file(full_dir, split)[:num_images]
    count = full if num_images is None else num_images
    folder = split_dir(split, seed, num_images, cache_dir)
    from tcmbench.safety.paths import atomic_dir, clean_stale_temps

    # A killed generation leaves .<split>.XXXX.tmp next to the split folder;
    # clean those up even when the split itself is complete.
    clean_stale_temps(folder)
    if not _is_complete(folder, split, seed, count):
        progress_log.info(
            "generating %s %s: %d images (seed %d), cached in %s", NAME, split, count, seed, folder
        )
        with atomic_dir(folder) as tmp:
            generate_split(tmp, split, seed, count)
    return _read_split_file(folder, split)


# --------------------------------------------------------------------------- reader


def read_synthtext_mini(
    source: AnnotationSource,
    images: Path | None,
    report: ParseReport,
    *,
    split: str | None = None,
) -> list[Sample]:
    """Reader for a generated folder (the ``synthtext-mini`` format).

    ``source`` is a cache folder (``v1-seed0``), one split folder, or a
    split's ``.jsonl`` file. In a cache folder ``split`` picks the split;
    without it every full split there is read. Temporary folders of an
    unfinished generation are never read.
    """
    from tcmbench.data.formats.jsonl import read_jsonl

    if not source.path.is_dir():
        return read_jsonl(source, images, report)
    names = [n for n in source.names("*.jsonl") if not any(p.startswith(".") for p in n.split("/"))]
    splits = [split] if split is not None else list(SPLIT_SIZES)
    # A cache folder holds <split>/<split>.jsonl; a split folder <split>.jsonl.
    wanted = [n for s in splits for n in (f"{s}/{s}.jsonl", f"{s}.jsonl") if n in names]
    if not wanted:
        what = f"split {split!r}" if split else "any split"
        raise DatasetNotFoundError(
            f"no {NAME} annotations for {what} in {source.path} (expected "
            f"<split>/<split>.jsonl, as written by load_synthtext_mini; "
            f"`tcmbench datasets stats {NAME} --split test` generates it)"
        )
    samples: list[Sample] = []
    for name in wanted:
        samples.extend(read_jsonl(source, images, report, file=name))
    return samples
