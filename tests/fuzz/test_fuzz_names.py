"""Hostile names and destinations (issue 15): a dataset's own names become
ids or are refused, outputs joined from ids stay in their folder, and
destinations that are not folders are refused without being touched.

The contract is conftest.py's (a result, or one TcmbenchError, within the
time bound); on top of it each test checks what a result may be (an id is
one plain name; a joined path lies inside its folder) and that nothing
beside the target changed (a canary folder, byte for byte and mtime for
mtime).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from hypothesis import given
from hypothesis import strategies as st

from tcmbench.data.formats.api import read_annotations
from tcmbench.data.ids import file_id, id_problem, path_id
from tcmbench.errors import UnsafePathError
from tcmbench.eval.submission import entry_names
from tcmbench.safety.paths import atomic_dir, atomic_write_bytes, check_destination, safe_child

from .conftest import contract, fuzz_settings

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

# --------------------------------------------------------------------------- strategies

#: Pieces hostile names are made of: separators, dot runs, drive letters,
#: control and direction characters, the shapes of real ids, long runs.
NAME_ATOMS = [
    "",
    ".",
    "..",
    "...",
    "/",
    "//",
    "\\",
    "\x00",
    "\n",
    "\r",
    "\x1b[31m",
    "\x7f",
    "\x85",
    "\u202e",
    "C:",
    "~",
    " ",
    "8",
    "ballet_106_0",
    "img_1",
    "IMG_0059",
    "res_",
    ".jpg",
    ".JPG",
    "\u4e2d\u6587",
    "e\u0301",
    "x" * 300,
    "canary",
]


def hostile_names() -> st.SearchStrategy[str]:
    """Names built from :data:`NAME_ATOMS` and arbitrary text."""
    atom = st.sampled_from(NAME_ATOMS) | st.text(max_size=6)
    return st.lists(atom, max_size=8).map("".join) | st.text(max_size=40)


#: Kinds of things a destination option can be handed.
DESTINATION_KINDS = [
    "missing",
    "nested-missing",
    "dir",
    "file",
    "fifo",
    "link-to-dir",
    "link-to-file",
    "dangling-link",
    "below-file",
    "socket",
    *(["device"] if IS_ROOT else []),
]
ACCEPTED_KINDS = {"missing", "nested-missing", "dir"}


def destinations() -> st.SearchStrategy[str]:
    return st.sampled_from(DESTINATION_KINDS)


def destination_names() -> st.SearchStrategy[str]:
    """File names a destination may have: any one component (control
    characters, spaces, dots, other scripts), up to 100 characters."""
    return st.text(
        alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=["Cs"]),
        min_size=1,
        max_size=100,
    ).filter(lambda n: n not in (".", "..") and n != "canary" and len(n.encode()) <= 200)


def make_destination(base: Path, kind: str, name: str = "dest") -> Path:
    """Create ``kind`` named ``name`` under ``base`` (beside a canary
    folder); return the path to hand in."""
    path = base / name
    if kind == "missing":
        return path
    if kind == "nested-missing":
        return path / "a" / "b"
    if kind == "dir":
        path.mkdir()
        (path / "mine.txt").write_text("mine\n")
    elif kind == "file":
        path.write_text("precious\n")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "link-to-dir":
        os.symlink(base / "canary", path)
    elif kind == "link-to-file":
        os.symlink(base / "canary" / "keep.txt", path)
    elif kind == "dangling-link":
        os.symlink(base / "nowhere", path)
    elif kind == "below-file":
        path.write_text("precious\n")
        return path / "new"
    elif kind == "socket":
        import socket

        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.bind(str(path))
        except OSError:  # a path too long for a socket address
            path.write_text("precious\n")
        finally:
            sock.close()
    elif kind == "device":
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # like /dev/full
    return path


def snapshot(folder: Path) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for p in [folder, *sorted(folder.rglob("*"))]:
        st_ = os.lstat(p)
        if stat.S_ISLNK(st_.st_mode):
            payload: Any = os.readlink(p)
        elif stat.S_ISREG(st_.st_mode):
            payload = p.read_bytes()
        else:
            payload = None
        out[str(p.relative_to(folder))] = (stat.S_IFMT(st_.st_mode), st_.st_mtime_ns, payload)
    return out


def plant_canary(base: Path) -> dict[str, tuple[Any, ...]]:
    canary = base / "canary"
    (canary / "nested").mkdir(parents=True)
    (canary / "keep.txt").write_text("untouched\n")
    (canary / "nested" / "deep.txt").write_text("also\n")
    return snapshot(canary)


def _as_tcmbench_error(make: Callable[[str], str], name: str) -> str:
    """A ValueError of the id functions as the UnsafePathError a reader
    would report (the contract counts TcmbenchErrors as rejections)."""
    try:
        return make(name)
    except ValueError as exc:
        raise UnsafePathError(str(exc)) from None


# --------------------------------------------------------------------------- ids


@fuzz_settings()
@given(name=hostile_names(), folders=st.booleans())
def test_ids_from_hostile_names(name: str, folders: bool) -> None:
    make = path_id if folders else file_id
    sid = contract("ids from names", lambda: _as_tcmbench_error(make, name))
    if sid is not None:
        assert id_problem(sid) is None, (name, sid)
        assert "/" not in sid and "\\" not in sid and sid not in (".", ".."), (name, sid)


@fuzz_settings(fast_examples=60)
@given(name=hostile_names())
def test_outputs_joined_from_ids_stay_in_their_folder(name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        out = base / "out"
        out.mkdir()
        before = plant_canary(base)

        def write() -> Path:
            target = safe_child(out, f"{name}.png")
            atomic_write_bytes(target, b"png")
            return target

        target = contract("outputs joined from ids", write)
        if target is not None:
            real = Path(os.path.realpath(target))
            assert real.parent == Path(os.path.realpath(out)), (name, real)
        assert snapshot(base / "canary") == before


@fuzz_settings()
@given(
    ids=st.lists(hostile_names(), min_size=1, max_size=6, unique=True),
    protocol=st.sampled_from(["icdar2015", "icdar2013", "totaltext-deteval", "a-plugin"]),
)
def test_submission_members_from_hostile_ids(ids: list[str], protocol: str) -> None:
    names = contract("submission members", lambda: entry_names(ids, protocol))
    if names is not None:
        members = list(names.values())
        assert len(set(members)) == len(members) == len(ids)
        for member in members:
            assert "/" not in member and "\\" not in member and member not in (".", "..")


def _cells(values: list[Any]) -> np.ndarray:
    out = np.empty((1, len(values)), dtype=object)
    for i, v in enumerate(values):
        out[0, i] = v
    return out


@fuzz_settings(fast_examples=40)
@given(
    imnames=st.lists(hostile_names().filter(lambda n: "\x00" not in n), min_size=1, max_size=4),
    skip_invalid=st.booleans(),
)
def test_synthtext_reader_hostile_imnames(imnames: list[str], skip_invalid: bool) -> None:
    """A real gt.mat whose imnames are hostile: ids obey the rule, and an
    image is only ever found inside the image folder (a real image sits in
    the canary beside it, named by several of the strategies' atoms)."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = base / "root"
        (root / "8").mkdir(parents=True)
        Image.new("RGB", (16, 12)).save(root / "8" / "ballet_106_0.jpg")
        plant_canary(base)
        Image.new("RGB", (7, 5)).save(base / "canary" / "canary.jpg")
        before = snapshot(base / "canary")
        box = np.array([[0, 4, 4, 0], [0, 0, 4, 4]], dtype=np.float64)
        scipy.io.savemat(
            root / "gt.mat",
            {
                "imnames": _cells([np.array([n]) for n in imnames]),
                "wordBB": _cells([box] * len(imnames)),
                "txt": _cells([np.array(["w"])] * len(imnames)),
            },
        )
        samples = contract(
            "reader synthtext imnames",
            lambda: read_annotations("synthtext", root, images=root, skip_invalid=skip_invalid)[0],
        )
        real_root = os.path.realpath(root)
        for sample in samples or []:
            assert id_problem(sample.id) is None, sample.id
            if sample.image_path is not None:
                real = os.path.realpath(sample.image_path)
                assert os.path.commonpath([real_root, real]) == real_root, sample.image_path
        assert snapshot(base / "canary") == before


# --------------------------------------------------------------------------- destinations


@fuzz_settings(fast_examples=60)
@given(
    kind=destinations(),
    name=destination_names(),
    option=st.sampled_from(["--dest", "--out", "TCMBENCH_CACHE"]),
)
def test_destinations_are_folders_or_refused_untouched(kind: str, name: str, option: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        plant_canary(base)
        path = make_destination(base, kind, name)
        before = snapshot(base)
        result = contract("destinations", lambda: check_destination(path, option))
        assert (result is not None) == (kind in ACCEPTED_KINDS), kind
        assert snapshot(base) == before


@fuzz_settings(fast_examples=60)
@given(kind=destinations(), name=destination_names(), fill=st.booleans())
def test_folder_writes_never_replace_what_is_not_theirs(kind: str, name: str, fill: bool) -> None:
    """:func:`atomic_dir` (prepare --dest, --report, checkpoints) on every
    kind of destination: a folder or a new path gets the new content (an
    existing folder keeps its own files when filled); anything else is
    refused and left exactly as it was."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        canary = plant_canary(base)
        path = make_destination(base, kind, name)
        before = snapshot(base)

        def write() -> Path:
            with atomic_dir(path, fill_existing=fill) as new:
                (new / "new.txt").write_text("new\n")
            return path

        result = contract("folder writes", write)
        assert (result is not None) == (kind in ACCEPTED_KINDS), kind
        if result is None:
            assert snapshot(base) == before
        else:
            assert (path / "new.txt").read_text() == "new\n"
            if kind == "dir" and fill:
                assert (path / "mine.txt").read_text() == "mine\n"
            assert snapshot(base / "canary") == canary
            leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith((".tmp", ".old"))]
            assert leftovers == []
