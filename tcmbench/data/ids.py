"""Sample ids are names, never paths.

A sample id becomes a file name in several places: ``<id>.png`` under
``evaluate --visualize`` and ``predict --out``, ``res_<id>.txt`` /
``<id>.txt`` inside ``submit.zip``, the rows of reports. Ids come from what a
dataset names itself (annotation file names, SynthText ``imnames``, COCO
``file_name``, JSON keys, a parquet column), which a hostile file controls,
so every reader makes its ids with the functions here and one rule holds
everywhere (:func:`id_problem`):

- an id is one file name: not empty, not ``.`` or ``..``, no ``/`` or
  ``\\``, no NUL or other control character (its length is checked where a
  file is written: a file system takes 255 bytes, see
  :func:`tcmbench.safety.paths.safe_child`);
- a name that keeps folders (SynthText's ``8/ballet_106_0.jpg``, whose stems
  repeat across folders) becomes ``8__ballet_106_0``: its relative path
  without the extension, components joined by :data:`FOLDER_SEPARATOR`
  (:func:`path_id`). An absolute name or one with a ``..`` component is an
  error, never an id.

Ids of names without folders do not change: ``gt_img_17.txt`` -> ``img_17``,
``IMG_0059.gt`` -> ``IMG_0059``, ``1001.txt`` -> ``1001``.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from tcmbench.safety.paths import name_problem

if TYPE_CHECKING:
    from tcmbench.data.schema import Sample

#: How the folders of a dataset's image name are joined into one id.
FOLDER_SEPARATOR = "__"


#: Unicode's control characters (category Cc: U+0000-001F, U+007F-009F),
#: searched in C: a per-character unicodedata loop cost 6 % of reading a
#: large jsonl split.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def id_problem(sample_id: object) -> str | None:
    """Why ``sample_id`` is not a usable id (see the module docstring), or None."""
    if not isinstance(sample_id, str):
        return f"an id must be a string, not {type(sample_id).__name__}"
    # Length is not an id's problem (a 5,000-digit id still scores); the
    # file written from it checks it (paths.name_problem).
    problem = name_problem(sample_id, max_bytes=None)
    if problem is not None:
        return problem.replace("an empty name", "an empty id").replace("a name", "an id")
    bad = _CONTROL.search(sample_id)
    if bad is not None:
        return f"a control character (U+{ord(bad.group()):04X}) in an id"
    return None


def check_id(sample_id: object) -> str:
    """``sample_id`` if it is a usable id; ValueError with the reason
    otherwise (readers report it with the file and the entry)."""
    problem = id_problem(sample_id)
    if problem is not None:
        raise ValueError(f"sample id {_show(sample_id)}: {problem}")
    assert isinstance(sample_id, str)
    return sample_id


def _parts(name: str) -> list[str]:
    """The components of a relative name; ValueError for an absolute one or
    one that climbs out with ``..`` (``\\`` counts as a separator)."""
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise ValueError(f"{_show(name)} is an absolute path; a dataset's names must be relative")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{_show(name)} climbs out of its folder with '..'")
    if not parts:
        raise ValueError(f"{_show(name)} names no file")
    return parts


def path_id(name: str) -> str:
    """The id of an image a dataset names with its folders:
    ``8/ballet_106_0.jpg`` -> ``8__ballet_106_0``. ValueError (with the
    reason) for an absolute name, a ``..`` component or an unusable id."""
    parts = _parts(name)
    last = PurePosixPath(parts[-1])
    parts[-1] = last.stem if last.suffix else last.name
    return check_id(FOLDER_SEPARATOR.join(parts))


def file_id(name: str) -> str:
    """The id of an image a dataset names by file name (COCO ``file_name``,
    mmocr ``img_path``): the stem of the last component, as before
    (``images/img_1.jpg`` -> ``img_1``). ValueError for an absolute name,
    a ``..`` component or an unusable id."""
    last = PurePosixPath(_parts(name)[-1])
    return check_id(last.stem if last.suffix else last.name)


def _show(value: object, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def check_sample_ids(samples: list[Sample], where: str) -> None:
    """Every id is a name, never a path (:mod:`tcmbench.data.ids`): the
    built-in readers make sure of it; this holds plugin readers and
    generators to the same rule before any file is named after an id."""
    from tcmbench.errors import UnsafePathError

    for s in samples:
        problem = id_problem(s.id)
        if problem is not None:
            raise UnsafePathError(f"{where}: sample id {s.id!r:.80}: {problem}")
