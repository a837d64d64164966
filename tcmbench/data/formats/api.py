"""One call to read annotations in any registered format.

Commands, the dataset layer and tests use :func:`read_annotations` rather
than a reader directly, so plugin formats work everywhere a built-in does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tcmbench.data.schema import Sample
from tcmbench.data.source import AnnotationSource, ParseReport


def read_annotations(
    fmt: str,
    path: str | os.PathLike[str],
    images: str | os.PathLike[str] | None = None,
    skip_invalid: bool = False,
    **options: Any,
) -> tuple[list[Sample], ParseReport]:
    """Read the annotations at ``path`` (a folder, a zip or one file) with
    the registered format ``fmt``.

    ``images``: the image folder (optional; gives samples their
    ``image_path``, width and height). ``skip_invalid``: malformed lines
    become counted warnings in the returned report instead of raising
    :class:`~tcmbench.errors.AnnotationFormatError`. ``options`` go to the
    reader (the ``options`` of a split in a dataset YAML).
    """
    from tcmbench.contract.registry import get_dataset_format

    reader = get_dataset_format(fmt).reader
    report = ParseReport(skip_invalid=skip_invalid)
    with AnnotationSource(path) as source:
        samples = reader(source, None if images is None else Path(images), report, **options)
    # Built-in readers already drop bad ids through the report; a plugin
    # reader is held to the same rule here (ids become file names).
    from tcmbench.data.ids import check_sample_ids

    check_sample_ids(samples, f"dataset format {fmt!r} reading {os.fspath(path)}")
    return samples, report
