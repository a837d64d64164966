"""Hugging Face ``datasets`` interop: the sample schema as explicit Features.

A dataset shared on the Hub (or as local parquet) is one row per image:

=========  ===============================  ==========================================
column     feature                          meaning
=========  ===============================  ==========================================
id         Value("string")                  sample id (image stem)
image      Image()                          the encoded image file, embedded as bytes
width      Value("int32")                   image width in pixels (0 = unknown)
height     Value("int32")                   image height in pixels (0 = unknown)
polygons   Sequence(Sequence(float32))      one flattened x1,y1,x2,y2,... per instance
ignore     Sequence(bool)                   don't-care flag per instance
text       Sequence(string)                 transcription per instance (null = none)
=========  ===============================  ==========================================

Explicit Features (rather than inferred ones) make the parquet files
self-describing: ``datasets.load_dataset("parquet", ...)`` restores the same
types, and images come back as the exact bytes that went in. No loading
script is involved, so the Hub serves the files as plain data.

``datasets`` is imported inside the functions: this module is a core plugin
(it registers the ``hf`` dataset format) and is imported at CLI start-up.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tcmbench.contract.hookspecs import hookimpl
from tcmbench.data.ids import check_id
from tcmbench.data.schema import Instance, Sample
from tcmbench.data.source import ParseReport
from tcmbench.errors import AnnotationFormatError, DatasetNotFoundError, ImageReadError

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

COLUMNS = ("id", "image", "width", "height", "polygons", "ignore", "text")
ROW_FORMAT = (
    "a row {id: string, image: Image, width: int32, height: int32, "
    "polygons: [[x1, y1, x2, y2, ...]] (>= 3 points each), ignore: [bool], text: [string|null]} "
    "with one polygons/ignore/text entry per instance"
)
_ROWS_PER_GROUP = 100
_DEFAULT_SHARD_BYTES = 500 * 1024 * 1024


def sample_features() -> datasets.Features:
    """The explicit Features of a tcmbench text-detection dataset."""
    from datasets import Features, Image, Sequence, Value

    return Features(
        {
            "id": Value("string"),
            "image": Image(),
            "width": Value("int32"),
            "height": Value("int32"),
            "polygons": Sequence(Sequence(Value("float32"))),
            "ignore": Sequence(Value("bool")),
            "text": Sequence(Value("string")),
        }
    )


def _image_cell(sample: Sample) -> dict[str, Any] | None:
    if not sample.image_path:
        return None
    path = Path(sample.image_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(
            f"cannot read image of sample {sample.id!r}: {path} ({exc.strerror})"
        ) from None
    # The file's own bytes, not a re-encoding: the round trip is exact.
    return {"bytes": data, "path": path.name}


def sample_to_row(sample: Sample) -> dict[str, Any]:
    """One sample as a row of :func:`sample_features` (image bytes embedded)."""
    return {
        "id": sample.id,
        "image": _image_cell(sample),
        "width": int(sample.width),
        "height": int(sample.height),
        "polygons": [inst.polygon.reshape(-1).tolist() for inst in sample.instances],
        "ignore": [bool(inst.ignore) for inst in sample.instances],
        "text": [inst.text for inst in sample.instances],
    }


def samples_to_dataset(samples: Iterable[Sample]) -> datasets.Dataset:
    """An in-memory ``datasets.Dataset`` of the samples (images embedded).

    Fine for a split that fits in memory; :func:`export_parquet` streams.
    """
    from datasets import Dataset

    rows = [sample_to_row(s) for s in samples]
    return (
        Dataset.from_list(rows, features=sample_features())
        if rows
        else Dataset.from_dict({c: [] for c in COLUMNS}, features=sample_features())
    )


def _shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def export_parquet(
    samples: Iterable[Sample],
    out_dir: str | os.PathLike[str],
    split: str = "test",
    max_shard_bytes: int = _DEFAULT_SHARD_BYTES,
    progress: bool = True,
    total: int | None = None,
) -> list[Path]:
    """Write ``samples`` as parquet shards ``out_dir/data/<split>-NNNNN-of-NNNNN.parquet``.

    That is the Hub's layout: ``datasets.load_dataset(out_dir)`` or
    ``load_dataset("parquet", data_files=...)`` finds the split, and the
    Features travel in the parquet schema metadata. Shards are written
    under temporary names and renamed at the end, replacing the split's old
    shards, so a reader never sees a half-written split.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    if not re.fullmatch(r"[\w.]+", split):
        raise ValueError(f"split name {split!r} must be made of letters, digits, '_' and '.'")
    features = sample_features()
    schema = features.arrow_schema
    data_dir = Path(out_dir) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp_paths: list[Path] = []
    writer: pq.ParquetWriter | None = None
    shard_bytes = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal writer, shard_bytes
        if not batch:
            return
        if writer is None or shard_bytes >= max_shard_bytes:
            if writer is not None:
                writer.close()
            tmp = data_dir / f".{split}-{len(tmp_paths):05d}.parquet.tmp"
            tmp_paths.append(tmp)
            writer = pq.ParquetWriter(tmp, schema)
            shard_bytes = 0
        table = pa.Table.from_pylist([features.encode_example(r) for r in batch], schema=schema)
        writer.write_table(table)
        shard_bytes += table.nbytes
        batch.clear()

    try:
        bar = tqdm(
            samples,
            total=total,
            desc=f"export {split}",
            unit="img",
            disable=None if progress else True,
        )
        for sample in bar:
            batch.append(sample_to_row(sample))
            if len(batch) >= _ROWS_PER_GROUP:
                flush()
        flush()
        if writer is None:  # an empty split still gets one (empty) shard
            tmp = data_dir / f".{split}-00000.parquet.tmp"
            pq.write_table(schema.empty_table(), tmp)
            tmp_paths.append(tmp)
        else:
            writer.close()
            writer = None
    except BaseException:
        if writer is not None:
            writer.close()
        for tmp in tmp_paths:
            tmp.unlink(missing_ok=True)
        raise
    for old in data_dir.glob(f"{split}-*-of-*.parquet"):
        old.unlink()
    final = []
    for i, tmp in enumerate(tmp_paths):
        dst = data_dir / _shard_name(split, i, len(tmp_paths))
        os.replace(tmp, dst)
        final.append(dst)
    log.info("wrote %d parquet shard(s) for split %s to %s", len(final), split, data_dir)
    return final


def dataset_card(name: str, title: str, licence: str, citation: str, splits: list[str]) -> str:
    """A Hub dataset card (README.md) whose YAML header declares the parquet
    splits, so the Hub and ``load_dataset(folder)`` need no loading script."""
    configs = "\n".join(f"      - split: {s}\n        path: data/{s}-*" for s in splits)
    return (
        "---\n"
        "license: other\n"
        "tags:\n  - scene-text-detection\n  - tcmbench\n"
        "configs:\n  - config_name: default\n    data_files:\n"
        f"{configs}\n"
        "---\n\n"
        f"# {title or name}\n\n"
        f"Exported with `tcmbench datasets export {name}`: one row per image with the image "
        "bytes, its size and its text instances (flattened polygons, don't-care flags, "
        'transcriptions). Load it with `datasets.load_dataset("<this folder or repo>")` or '
        "`tcmbench.data.hf.load_hf(...)`.\n\n"
        f"## Licence\n\n{licence or 'See the original dataset.'}\n\n"
        f"## Citation\n\n```bibtex\n{citation or '(none given)'}\n```\n"
    )


# --------------------------------------------------------------------------- loading


def _local_key(path: Path) -> str:
    """Identity of local parquet data: names, sizes and mtimes of its files."""
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    h = hashlib.sha256(str(path.resolve()).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _open_dataset(
    path_or_id: str, split: str, revision: str | None, cache_dir: str | None
) -> tuple[datasets.Dataset | datasets.IterableDataset, str]:
    """The real ``datasets.load_dataset`` path for a local parquet file, a
    local folder (Hub layout) or a Hub dataset id; returns the dataset and a
    key that changes when the data does.

    Local parquet is streamed (it is already on disk: no Arrow copy in a
    cache); a Hub dataset goes through Hugging Face's cache, so
    ``HF_HUB_OFFLINE=1`` works once it has been downloaded.
    """
    import datasets

    local = Path(path_or_id).expanduser()
    try:
        if local.is_file():
            ds = datasets.load_dataset(
                "parquet", data_files={split: str(local)}, split=split, streaming=True
            )
            return ds, _local_key(local)
        if local.is_dir():
            return datasets.load_dataset(str(local), split=split, streaming=True), _local_key(local)
        ds = datasets.load_dataset(path_or_id, split=split, revision=revision, cache_dir=cache_dir)
        return ds, hashlib.sha256(
            f"{path_or_id}|{revision}|{ds._fingerprint}".encode()
        ).hexdigest()[:16]
    except (
        FileNotFoundError,
        ValueError,
        ConnectionError,
        OSError,
        datasets.exceptions.DatasetNotFoundError,
    ) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        hint = (
            " (HF_HUB_OFFLINE is set: the dataset must already be in the Hugging Face cache)"
            if offline
            else ""
        )
        detail = " ".join(str(exc).split())
        raise DatasetNotFoundError(
            f"cannot load Hugging Face dataset {path_or_id!r} split {split!r}: {detail}{hint}"
        ) from None


def _safe_filename(sample_id: str, stored: str | None, data: bytes) -> str:
    """The cache file name of a sample's embedded image: the id made of
    word characters, with a short hash of the id when that changed or cut
    it (``a b`` and ``a_b`` must not share, and so overwrite, one file)."""
    suffix = Path(stored).suffix if stored else ""
    if not re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix):
        from PIL import Image

        try:
            fmt = Image.open(io.BytesIO(data)).format or "png"
        except (OSError, ValueError, Image.DecompressionBombError):  # still gets a file
            fmt = "bin"
        suffix = "." + fmt.lower().replace("jpeg", "jpg")
    stem = re.sub(r"[^\w.-]+", "_", sample_id).strip(".") or "image"
    if stem != sample_id or len(stem) > 100:
        digest = hashlib.sha256(sample_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        stem = f"{stem[:100]}-{digest}"
    return stem + suffix


def _inside_root(real_root: str, path: str) -> bool:
    """Whether ``path`` (absolute, or relative to the root) resolves inside
    ``real_root`` (the root, already resolved once for the whole split)."""
    real = os.path.realpath(os.path.join(real_root, path))
    return os.path.commonpath([real_root, real]) == real_root


def _image_root(ref: str, cache_dir: str | None) -> Path:
    """Where images a dataset stores as paths may lie: its local folder
    (the parquet file's folder), else Hugging Face's datasets cache."""
    local = Path(ref).expanduser()
    if local.is_dir():
        return local
    if local.is_file():
        return local.parent
    import datasets

    return Path(cache_dir or datasets.config.HF_DATASETS_CACHE)


def _materialize(data: bytes, folder: Path, filename: str, real_folder: str) -> str:
    """Write image bytes once into the cache so samples have a real path
    (``real_folder``: ``folder`` resolved once for the whole split)."""
    from tcmbench.safety.paths import atomic_write_bytes, safe_child

    path = safe_child(folder, filename, real_folder)
    if not (path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data):
        atomic_write_bytes(path, data)
    return str(path)


def _rows_to_samples(
    ds: datasets.Dataset | datasets.IterableDataset,
    where: str,
    report: ParseReport,
    image_dir: Path | None,
    image_root: Path | None = None,
) -> Iterator[Sample]:
    from datasets import Image

    missing = [c for c in COLUMNS if c not in (ds.column_names or [])]
    if missing:
        raise AnnotationFormatError(
            where, None, ROW_FORMAT, f"missing column(s) {', '.join(missing)}"
        )
    ds = ds.cast_column("image", Image(decode=False))
    real_image_dir = os.path.realpath(image_dir) if image_dir is not None else ""
    real_image_root = os.path.realpath(image_root) if image_root is not None else ""
    for index, row in enumerate(ds):
        line = index + 1
        raw_id = row["id"]
        try:
            # a name, never a path (tcmbench.data.ids); integer ids read as text
            sid = check_id(str(raw_id) if isinstance(raw_id, int) else raw_id)
        except ValueError as exc:
            report.fail(where, line, ROW_FORMAT, str(exc))
            continue
        polys, ignores, texts = row["polygons"] or [], row["ignore"] or [], row["text"] or []
        if not (len(polys) == len(ignores) == len(texts)):
            detail = f"{len(polys)} polygons, {len(ignores)} ignore flags, {len(texts)} texts"
            report.fail(where, line, ROW_FORMAT, detail)
            continue
        instances = []
        for flat, ign, text in zip(polys, ignores, texts, strict=True):
            if len(flat) < 6 or len(flat) % 2:
                detail = f"polygon with {len(flat)} coordinates in sample {row['id']!r}"
                report.fail(where, line, ROW_FORMAT, detail)
                continue
            instances.append(
                Instance(np.asarray(flat, dtype=np.float32).reshape(-1, 2), bool(ign), text)
            )
        cell = row["image"]
        image_path = None
        if cell is not None and cell.get("bytes") is not None and image_dir is not None:
            filename = _safe_filename(sid, cell.get("path"), cell["bytes"])
            image_path = _materialize(cell["bytes"], image_dir, filename, real_image_dir)
        elif cell is not None and cell.get("path"):
            # An image stored as a path only: used when it lies inside the
            # dataset's own folder (or Hugging Face's cache), never elsewhere.
            stored = str(cell["path"])
            inside = image_root is not None and _inside_root(real_image_root, stored)
            candidate = Path(stored) if image_root is None else image_root / stored
            if inside and candidate.is_file():
                image_path = str(candidate)
            elif not inside:
                detail = f"image path {str(cell['path'])[:80]!r} lies outside {image_root}"
                report.fail(where, line, ROW_FORMAT, detail)
                continue
        yield Sample(
            id=sid,
            image_path=image_path,
            width=int(row["width"] or 0),
            height=int(row["height"] or 0),
            instances=instances,
        )


def load_hf(
    path_or_id: str | os.PathLike[str],
    split: str = "test",
    revision: str | None = None,
    skip_invalid: bool = False,
    materialize_images: bool = True,
    cache_dir: str | None = None,
) -> tuple[list[Sample], ParseReport]:
    """Samples from a local parquet file / folder or a Hub dataset id.

    Embedded images are written once to ``<tcmbench cache>/hf-images/...``
    (``materialize_images``) so every consumer gets an ``image_path``; with
    it off, samples carry only annotations. Rows that break the schema raise
    :class:`AnnotationFormatError` naming the row, or are counted with
    ``skip_invalid``.
    """
    from tcmbench.safety.paths import cache_dir as tcm_cache

    ref = str(path_or_id)
    report = ParseReport(skip_invalid=skip_invalid)
    ds, key = _open_dataset(ref, split, revision, cache_dir)
    image_dir = tcm_cache() / "hf-images" / key / split if materialize_images else None
    where = f"{ref}[{split}]"
    try:
        samples = list(_rows_to_samples(ds, where, report, image_dir, _image_root(ref, cache_dir)))
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise AnnotationFormatError(
            where, None, ROW_FORMAT, " ".join(f"unreadable data: {exc}".split())
        ) from None
    return samples, report


def _read_hf(
    source: Any,
    images: Path | None,
    report: ParseReport,
    split: str = "test",
    revision: str | None = None,
    materialize_images: bool = True,
    **_: Any,
) -> list[Sample]:
    """Reader of the ``hf`` dataset format: ``source`` is a parquet file or a
    folder in the Hub layout (``data/<split>-*.parquet``)."""
    samples, inner = load_hf(
        source.path,
        split=split,
        revision=revision,
        skip_invalid=report.skip_invalid,
        materialize_images=materialize_images,
    )
    report.absorb(inner)
    return samples


@hookimpl
def register_dataset_formats(register: Callable[[Any], None]) -> None:
    from tcmbench.contract.registry import DatasetFormat

    register(
        DatasetFormat(
            name="hf",
            reader=_read_hf,
            summary=(
                "Hugging Face datasets parquet (tcmbench Features: id, image, width, height, "
                "polygons, ignore, text)"
            ),
            pattern="*.parquet",
        )
    )
