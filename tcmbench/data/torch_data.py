"""PyTorch data plumbing: image loading, the training dataset, collation.

Determinism is the point of this module. The training sampler
(:class:`tcmbench.train.sampler.StepSampler`) yields keys ``(sample_index,
draw)`` where ``draw`` is the sample's position in the endless, seeded stream
of epochs; the augmentation RNG is seeded from ``(seed, draw)``. An item is
therefore a pure function of the run's seed and its position in the stream,
whatever the number of workers or processes, and a resumed run sees exactly
the pixels the uninterrupted run would have seen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tcmbench.data.image_limits import check_file_size, checked_image_size
from tcmbench.data.schema import Sample
from tcmbench.data.transforms import TrainTransform
from tcmbench.errors import ImageReadError

log = logging.getLogger(__name__)

# What the OpenCV we depend on decodes (GIF since OpenCV 4.11).
SUPPORTED_IMAGE_SUFFIXES = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".bmp",
        ".dib",
        ".gif",
        ".tif",
        ".tiff",
        ".webp",
        ".pbm",
        ".pgm",
        ".ppm",
        ".pnm",
    }
)


def check_image_type(path: str | Path | None, sample_id: str | None = None) -> None:
    """Fail early, before hours of training, on a file type we cannot read."""
    if path is None:
        what = f"sample {sample_id!r}" if sample_id else "a sample"
        raise ImageReadError(f"{what} has no image file (annotations only); images are needed here")
    p = Path(path)
    if p.suffix.lower() not in SUPPORTED_IMAGE_SUFFIXES:
        raise ImageReadError(
            f"{p}: unsupported image type {p.suffix or '(no extension)'!r}; "
            f"supported: {', '.join(sorted(SUPPORTED_IMAGE_SUFFIXES))}"
        )


def load_image(
    path: str | Path | None, sample_id: str | None = None, *, bgr: bool = False
) -> np.ndarray:
    """Read an image as uint8 RGB (H, W, 3), or BGR with ``bgr`` (OpenCV's
    own order, for a model fed BGR: no conversion there and back).

    EXIF orientation is deliberately ignored: benchmark annotations refer to
    the stored pixel grid (two MSRA-TD500 test images carry an EXIF
    rotation that would misalign their boxes). 16-bit PNG / TIFF samples
    are scaled to 8 bits. The declared size is checked against the pixel
    limit before anything is decoded (:mod:`tcmbench.data.image_limits`).
    Every failure is an :class:`ImageReadError` naming the path.
    """
    check_image_type(path, sample_id)
    p = Path(str(path))
    if not p.is_file():
        raise ImageReadError(f"image not found: {p}")
    try:
        check_file_size(str(p), p.stat().st_size)
        raw = p.read_bytes()  # read once: the header checked is the one decoded
    except OSError as exc:
        raise ImageReadError(f"{p}: cannot read image ({exc})") from exc
    image = None
    if raw:
        checked_image_size(raw, str(p))
        data = np.frombuffer(raw, dtype=np.uint8)
        try:
            image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        except cv2.error:  # a check of OpenCV's own on what the data says
            image = None
    if image is None:
        raise ImageReadError(
            f"{p}: cannot decode image (empty, corrupt or not really a {p.suffix} file)"
        )
    return image if bgr else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def augmentation_rng(seed: int, draw: int) -> np.random.Generator:
    """The RNG of one training draw: a function of (seed, draw) only."""
    return np.random.default_rng([int(seed), int(draw), 0x7C3])


TargetBuilder = Callable[..., Mapping[str, np.ndarray]]


class TrainDataset:
    """Map-style dataset over :class:`Sample` s for training.

    ``__getitem__`` takes a key ``(sample_index, draw)`` from the step
    sampler (a plain int is accepted as ``(i, i)``). It loads the image,
    applies the recipe's augmentation with :func:`augmentation_rng`, and
    builds the detector's targets with ``target_builder(polygons, ignores,
    height, width)``. ``cache_images`` keeps decoded images in memory, worth
    it for small sets (synthtext-mini) trained for many epochs.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: TrainTransform,
        target_builder: TargetBuilder,
        seed: int = 0,
        cache_images: bool = False,
    ) -> None:
        self.samples = list(samples)
        for s in self.samples:
            check_image_type(s.image_path, s.id)
        self.transform = transform
        self.target_builder = target_builder
        self.seed = int(seed)
        self.cache_images = cache_images
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def image(self, index: int) -> np.ndarray:
        if index in self._cache:
            return self._cache[index]
        s = self.samples[index]
        img = load_image(s.image_path, s.id)
        if s.width and s.height and (img.shape[1], img.shape[0]) != (s.width, s.height):
            log.warning(
                "%s: image is %dx%d but the annotation says %dx%d",
                s.image_path,
                img.shape[1],
                img.shape[0],
                s.width,
                s.height,
            )
        if self.cache_images:
            self._cache[index] = img
        return img

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, draw = (key, key) if isinstance(key, (int, np.integer)) else key
        sample = self.samples[int(index)]
        rng = augmentation_rng(self.seed, int(draw))
        polys = [inst.polygon for inst in sample.instances]
        ignores = [inst.ignore for inst in sample.instances]
        aug = self.transform(self.image(int(index)), polys, ignores, rng)
        _, h, w = aug.image.shape
        targets = self.target_builder(aug.polygons, aug.ignores, h, w)
        return {
            "image": aug.image,
            "targets": {k: np.asarray(v, dtype=np.float32) for k, v in targets.items()},
            "meta": {"id": sample.id, "index": int(index), "draw": int(draw)},
        }


def collate(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack images and targets (same-size crops) into tensors."""
    import torch

    images = torch.from_numpy(np.stack([b["image"] for b in batch]))
    keys = batch[0]["targets"].keys()
    targets = {k: torch.from_numpy(np.stack([b["targets"][k] for b in batch])) for k in keys}
    return {"images": images, "targets": targets, "metas": [b["meta"] for b in batch]}


def pad_batch(images: Sequence[np.ndarray]) -> np.ndarray:
    """Stack CHW float images of different sizes, zero-padding bottom /
    right to the largest (sizes are already multiples of 32). Zero is also
    what :class:`InferenceTransform` pads with; still, a network with global
    pooling (MobileNetV3's squeeze-excitation) sees the extra padding, so
    reference figures are taken with batch size 1."""
    c = images[0].shape[0]
    h = max(im.shape[1] for im in images)
    w = max(im.shape[2] for im in images)
    out = np.zeros((len(images), c, h, w), dtype=np.float32)
    for i, im in enumerate(images):
        out[i, :, : im.shape[1], : im.shape[2]] = im
    return out
