"""Write one set of annotation files the three ways readers must accept."""

from __future__ import annotations

import zipfile
from pathlib import Path


def write_sources(
    tmp_path: Path, files: dict[str, str | bytes], subdir: str = "test_gt"
) -> list[Path]:
    """The same files as a folder, a flat zip and a zip with ``subdir/`` inside
    (the RRC distributes flat zips; re-zipped folders carry a sub-folder)."""
    folder = tmp_path / "gt_dir"
    folder.mkdir()
    flat, nested = tmp_path / "gt.zip", tmp_path / "gt_nested.zip"
    with zipfile.ZipFile(flat, "w") as zf, zipfile.ZipFile(nested, "w") as zn:
        for name, content in files.items():
            data = content.encode("utf-8") if isinstance(content, str) else content
            (folder / name).write_bytes(data)
            zf.writestr(name, data)
            zn.writestr(f"{subdir}/{name}", data)
    return [folder, flat, nested]
