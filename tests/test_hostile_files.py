"""Hostile input (issue 10): report targets that are not regular files,
damaged or crafted ``.mat`` files, hostile archives for ``datasets prepare``
and hand-edited prediction caches. Every case must end in a one-line error
(or a clean result), never a traceback, a hang or a dead process."""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import subprocess
import sys
import threading
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from tcmbench.cli import main

GT = {"gt_img_1.txt": "0,0,10,0,10,10,0,10,word\n20,0,30,0,30,10,20,10,other\n"}
PRED = {"res_img_1.txt": "0,0,10,0,10,10,0,10\n"}


def make_zip(path: Path, files: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The real entry point in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = int(main(list(argv)) or 0)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], err


# --------------------------------------------------------------------------- 1. report targets


@pytest.fixture()
def score_args(tmp_path: Path) -> list[str]:
    gt = make_zip(tmp_path / "gt.zip", GT)
    pred = make_zip(tmp_path / "submit.zip", PRED)
    return ["score", "--protocol", "icdar2015", "--gt", str(gt), "--pred", str(pred)]


def test_json_dash_is_stdout_and_no_file_named_dash(
    capsys: pytest.CaptureFixture[str],
    score_args: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *score_args, "--json", "-")
    assert code == 0, err
    data = json.loads(out)  # stdout is the JSON alone: the table went to stderr
    assert data["precision"] == 1.0 and data["recall"] == 0.5
    assert "| protocol |" in err
    assert not (tmp_path / "-").exists()


def test_per_image_dash_is_stdout(
    capsys: pytest.CaptureFixture[str], score_args: list[str]
) -> None:
    code, out, err = run(capsys, *score_args, "--per-image", "-")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == ["img_1"]


def test_bench_json_dash_is_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "bench",
        "--plugin",
        "dbnet",
        "--backbone",
        "resnet18",
        "--params-only",
        "--json",
        "-",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["params_only"] is True and doc["params"] > 0
    assert "| dbnet-resnet18 |" in err


def _fifo_reader(fifo: Path, sink: list[bytes]) -> threading.Thread:
    def read() -> None:
        with open(fifo, "rb") as f:
            sink.append(f.read())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def test_json_to_a_fifo_is_written_in_place(
    capsys: pytest.CaptureFixture[str], score_args: list[str], tmp_path: Path
) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link-to-fifo"
    link.symlink_to(fifo)
    for target in (fifo, link):
        got: list[bytes] = []
        reader = _fifo_reader(fifo, got)
        code, _, err = run(capsys, *score_args, "--json", str(target))
        reader.join(timeout=10)
        assert code == 0, err
        assert json.loads(got[0])["hmean"] == pytest.approx(2 / 3)
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a FIFO, not replaced
    assert link.is_symlink()


def test_json_to_dev_null_keeps_the_device(
    capsys: pytest.CaptureFixture[str], score_args: list[str], tmp_path: Path
) -> None:
    link = tmp_path / "null-link"
    link.symlink_to("/dev/null")
    for target in ("/dev/null", str(link)):
        code, _, err = run(capsys, *score_args, "--json", target, "--per-image", target)
        assert code == 0, err
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
        assert not list(Path("/dev").glob(".null.*.tmp"))
    assert link.is_symlink() and os.readlink(link) == "/dev/null"


def test_json_regular_file_is_atomic_and_symlinks_survive(
    capsys: pytest.CaptureFixture[str], score_args: list[str], tmp_path: Path
) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    code, _, err = run(capsys, *score_args, "--json", str(link))
    assert code == 0, err
    assert link.is_symlink()  # the target was replaced, not the link
    assert json.loads(real.read_text())["recall"] == 0.5
    assert sorted(p.name for p in tmp_path.glob(".*tmp")) == []


def test_unwritable_report_is_one_line(
    capsys: pytest.CaptureFixture[str], score_args: list[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, *score_args, "--json", str(blocker / "r.json"))
    assert_one_line_error(code, err, str(blocker / "r.json"))


# --------------------------------------------------------------------------- 4. .mat files
#
# A small MAT v5 writer: valid files with exactly the structure scipy writes,
# so each crafted file differs from a good one in the one field under test.

MAT_HEADER = b"MATLAB 5.0 MAT-file, tcmbench hostile-input test".ljust(116) + bytes(8)
MAT_HEADER += struct.pack("<H", 0x0100) + b"IM"


def _tag(mdtype: int, n: int) -> bytes:
    return struct.pack("<II", mdtype, n)


def _el(mdtype: int, payload: bytes) -> bytes:
    return _tag(mdtype, len(payload)) + payload + bytes(-len(payload) % 8)


def _matrix(mclass: int, dims: list[int], name: bytes, *parts: bytes) -> bytes:
    body = _el(6, struct.pack("<II", mclass, 0)) + _el(5, struct.pack(f"<{len(dims)}i", *dims))
    body += _el(1, name) + b"".join(parts)
    return _tag(14, len(body)) + body


def _double(values: np.ndarray, name: bytes = b"", mdtype: int = 9) -> bytes:
    arr = np.asarray(values, dtype="<f8")
    return _matrix(6, list(arr.shape), name, _el(mdtype, arr.T.tobytes()))


def _cell(items: list[bytes], dims: list[int] | None = None, name: bytes = b"") -> bytes:
    return _matrix(1, dims or [len(items), 1], name, *items)


def _mat(*variables: bytes, compress: bool = True) -> bytes:
    out = MAT_HEADER
    for v in variables:
        packed = zlib.compress(v)
        out += _tag(15, len(packed)) + packed if compress else v  # (no padding, like MATLAB)
    return out


QUAD = np.array([[1.0, 1.0], [10.0, 1.0], [10.0, 8.0], [1.0, 8.0]])


def accu_inf(*items: bytes, dims: list[int] | None = None) -> bytes:
    return _cell(list(items) or [_double(QUAD)], dims, name=b"accuInf")


def _nested(depth: int) -> bytes:
    inner = _double(QUAD)
    for _ in range(depth):
        inner = _cell([inner])
    return inner


# Files that kill scipy 1.17's loadmat outright (SIGSEGV, exit 139) or make
# it allocate what the header claims; each must be refused before scipy.
CRAFTED: dict[str, bytes] = {
    # numeric data element of type 8: scipy looks up a NULL dtype
    "null dtype (numeric)": _mat(accu_inf(_double(QUAD, mdtype=8))),
    "type code out of range": _mat(accu_inf(_double(QUAD, mdtype=1000))),
    "null dtype (char)": _mat(_matrix(4, [1, 4], b"accuInf", _el(10, b"abcd"))),
    # cells nested 20,000 deep: C recursion overflows the stack
    "nesting": _mat(_cell([_nested(20000)], name=b"accuInf")),
    "absurd cell dims": _mat(accu_inf(dims=[50000, 50000])),
    "negative dims": _mat(accu_inf(dims=[-1, 1])),
    "overflowing dims": _mat(accu_inf(dims=[2**31 - 1] * 8)),
    "empty char, huge dims": _mat(_matrix(4, [65536, 65536], b"accuInf", _el(2, b""))),
    "field-less struct, huge dims": _mat(
        _matrix(2, [65536, 65536], b"accuInf", _el(5, struct.pack("<i", 32)), _el(1, b""))
    ),
    "size beyond the file": MAT_HEADER + _tag(15, 1 << 30) + bytes(64),
    "nested size lies": _mat(
        accu_inf(_double(QUAD)[:4] + struct.pack("<I", 9999) + _double(QUAD)[8:])
    ),
    "opaque class": _mat(
        _tag(14, 48) + _el(6, struct.pack("<II", 17, 0)) + _el(1, b"accuInf") + _el(1, b"MCOS")
    ),
    "v7.3 header": MAT_HEADER[:124] + struct.pack("<H", 0x0200) + b"IM" + bytes(64),
}

# Reads every file named on the command line with the DetEval prediction
# reader and prints one JSON result per file. Run in a child process: if a
# file got past the guard and crashed scipy, the test fails instead of the
# whole test session dying with it.
MAT_WORKER = r"""
import json, sys
from tcmbench.eval.deteval import read_deteval_mat_predictions
from tcmbench.errors import AnnotationFormatError
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as f:
            preds = read_deteval_mat_predictions(f.read(), path)
        print(json.dumps(["ok", [p.polygon.tolist() for p in preds]]), flush=True)
    except AnnotationFormatError as exc:
        print(json.dumps(["error", str(exc)]), flush=True)
"""


def read_mats_in_child(paths: list[Path]) -> list[tuple[str, object]]:
    res = subprocess.run(
        [sys.executable, "-c", MAT_WORKER, *map(str, paths)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert res.returncode == 0, f"reader died (exit {res.returncode}): {res.stderr[-2000:]}"
    rows = [tuple(json.loads(line)) for line in res.stdout.splitlines()]
    assert len(rows) == len(paths)
    return rows  # type: ignore[return-value]


def write_all(folder: Path, files: dict[str, bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, data in enumerate(files.values()):
        p = folder / f"img{i + 1}.mat"
        p.write_bytes(data)
        paths.append(p)
    return paths


def assert_mat_errors(rows: list[tuple[str, object]], paths: list[Path]) -> None:
    for (status, detail), path in zip(rows, paths, strict=True):
        assert status == "error", f"{path.name} was accepted: {detail}"
        assert isinstance(detail, str) and str(path) in detail and "\n" not in detail
        # (a file cut right after its header is a valid file without variables)
        assert "not a readable MATLAB file" in detail or "no variable 'accuInf'" in detail


def test_mat_writer_makes_files_scipy_and_we_read() -> None:
    """The crafted files below differ from these in one field only."""
    import scipy.io

    from tcmbench.data.matfile import load_mat

    for compress in (True, False):
        data = _mat(accu_inf(_double(QUAD), _double(QUAD * 2)), compress=compress)
        ours = load_mat(data, ["accuInf"])["accuInf"]
        theirs = scipy.io.loadmat(io.BytesIO(data))["accuInf"]
        assert ours.shape == theirs.shape == (2, 1)
        np.testing.assert_array_equal(ours[1, 0], QUAD * 2)


def test_crafted_mat_files_are_refused_before_scipy(tmp_path: Path) -> None:
    paths = write_all(tmp_path, CRAFTED)
    rows = read_mats_in_child(paths)
    assert_mat_errors(rows, paths)
    details = dict(zip(CRAFTED, (d for _, d in rows), strict=True))
    assert "data type code 8 is not valid" in str(details["null dtype (numeric)"])
    assert "nested more than 64 deep" in str(details["nesting"])
    assert "2500000000 elements cannot fit" in str(details["absurd cell dims"])
    assert "negative dimension" in str(details["negative dims"])
    assert "v7.3" in str(details["v7.3 header"])
    assert "opaque arrays are not supported" in str(details["opaque class"])


def test_truncated_mat_files(tmp_path: Path) -> None:
    files = {}
    for compress in (True, False):
        good = _mat(accu_inf(_double(QUAD), _double(QUAD * 3)), compress=compress)
        for cut in sorted({0, 1, 19, 20, 64, 127, 128, 131, 136, *range(140, len(good), 9)}):
            files[f"{compress}-{cut}"] = good[:cut]
    paths = write_all(tmp_path, files)
    assert_mat_errors(read_mats_in_child(paths), paths)


def test_bit_flipped_compressed_mat_files(tmp_path: Path) -> None:
    """Every single-bit flip in the compressed element: zlib's checks catch
    it, or (in unused bits) the content is unchanged; never a crash."""
    good = _mat(accu_inf(_double(QUAD), _double(QUAD * 3)))
    files = {}
    for pos in range(len(MAT_HEADER) + 8, len(good)):
        for bit in (0, 3, 7):
            flipped = bytearray(good)
            flipped[pos] ^= 1 << bit
            files[f"{pos}-{bit}"] = bytes(flipped)
    paths = write_all(tmp_path, files)
    rows = read_mats_in_child(paths)
    expected = [QUAD.tolist(), (QUAD * 3).tolist()]
    for (status, detail), path in zip(rows, paths, strict=True):
        if status == "ok":
            assert detail == expected, path.name
        else:
            assert str(path) in str(detail) and "\n" not in str(detail)
    assert sum(status == "error" for status, _ in rows) > 0.9 * len(rows)


def test_random_bytes_after_a_valid_mat_header(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    files = {}
    for i in range(60):
        body = rng.integers(0, 256, int(rng.integers(1, 400)), dtype=np.uint8).tobytes()
        if i % 3 == 0:  # a plausible first tag, random content
            body = _tag(14 if i % 2 else 15, len(body)) + body
        files[str(i)] = MAT_HEADER + body
    paths = write_all(tmp_path, files)
    assert_mat_errors(read_mats_in_child(paths), paths)


def test_mat_decompression_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    from tcmbench.data import matfile

    monkeypatch.setattr(matfile, "MIN_INFLATE_BUDGET", 1 << 20)
    bomb = _mat(accu_inf(_double(np.zeros((1 << 18, 2)))))  # 4 MiB of zeros, 4 KB file
    assert len(bomb) < 10_000
    with pytest.raises(matfile.MatFileError, match="decompression bomb"):
        matfile.load_mat(bomb, ["accuInf"])


def test_crafted_mat_through_score_cli(tmp_path: Path) -> None:
    """DetEval predictions and Total-Text .mat GT, each crafted to segfault
    scipy: `tcmbench score` ends with one line naming the file, exit 2."""
    gt = make_zip(tmp_path / "gt.zip", {"poly_gt_img1.txt": "1,1,10,1,10,8,1,8,word\n"})
    preds = tmp_path / "preds"
    preds.mkdir()
    (preds / "img1.mat").write_bytes(CRAFTED["null dtype (numeric)"])
    bad_gt = tmp_path / "gt_mat"
    bad_gt.mkdir()
    (bad_gt / "poly_gt_img1.mat").write_bytes(_mat(_cell([_nested(20000)], name=b"polygt")))
    good_preds = make_zip(tmp_path / "good.zip", {"img1.txt": "1,1,10,1,10,8,1,8\n"})
    for gt_path, pred_path, culprit in (
        (gt, preds, preds / "img1.mat"),
        (bad_gt, good_preds, bad_gt / "poly_gt_img1.mat"),
    ):
        res = subprocess.run(
            [sys.executable, "-m", "tcmbench", "score", "--protocol", "totaltext-deteval"]
            + ["--gt", str(gt_path), "--pred", str(pred_path)],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )
        assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
        assert_one_line_error(res.returncode, res.stderr, str(culprit), "not a readable MATLAB")


def test_crafted_synthtext_gt_through_datasets_cli(tmp_path: Path) -> None:
    root = tmp_path / "synthtext"
    root.mkdir()
    imnames = _cell([_matrix(4, [1, 5], b"", _el(16, b"a.jpg"))], name=b"imnames")
    word_bb = _cell([_double(np.zeros((2, 4)), mdtype=11)], name=b"wordBB")
    (root / "gt.mat").write_bytes(_mat(imnames, word_bb, _cell([], name=b"txt")))
    res = subprocess.run(
        [sys.executable, "-m", "tcmbench", "datasets", "stats", "synthtext"]
        + ["--split", "train", "--data-root", str(root)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert_one_line_error(res.returncode, res.stderr, "gt.mat", "data type code 11")


# --------------------------------------------------------------------------- 11. datasets prepare

IC15_GT = {"gt_img_1.txt": "10,10,50,10,50,30,10,30,hello\n"}


def prepare(capsys: pytest.CaptureFixture[str], src: Path, dest: Path, *extra: str) -> tuple:
    return run(
        capsys, "datasets", "prepare", "icdar2015", "--from", str(src), "--dest", str(dest),
        "--split", "test", *extra,
    )  # fmt: skip


def _zip_with(path: Path, members: list[tuple[str, bytes]]) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in members:
                z.writestr(name, data)
    return path


def _patch_zip(path: Path, local_off: int, central_off: int, value: bytes) -> None:
    """Overwrite a field of the (single) member in both of its headers."""
    data = bytearray(path.read_bytes())
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    data[local + local_off : local + local_off + len(value)] = value
    data[central + central_off : central + central_off + len(value)] = value
    path.write_bytes(bytes(data))


def hostile_archives(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (archive, what the one-line error must say)."""
    gt = b"10,10,50,10,50,30,10,30,hello\n"
    out: dict[str, tuple[Path, str]] = {
        "twice": (
            _zip_with(tmp / "twice.zip", [("gt_img_1.txt", gt), ("gt_img_1.txt", b"0,0\n")]),
            "appears twice",
        ),
        "file and folder": (
            _zip_with(tmp / "clash.zip", [("gt", gt), ("gt/gt_img_1.txt", gt)]),
            "both a file",
        ),
        "long name": (_zip_with(tmp / "long.zip", [("x" * 300 + ".txt", gt)]), "304 bytes"),
    }
    enc = _zip_with(tmp / "enc.zip", [("gt_img_1.txt", gt)])
    _patch_zip(enc, 6, 8, struct.pack("<H", 0x1))  # general purpose flag: encrypted
    out["encrypted"] = (enc, "encrypted")
    d64 = _zip_with(tmp / "d64.zip", [("gt_img_1.txt", gt)])
    _patch_zip(d64, 8, 10, struct.pack("<H", 9))  # compression method 9: Deflate64
    out["deflate64"] = (d64, "Deflate64")
    crc = _zip_with(tmp / "crc.zip", [("gt_img_1.txt", gt)])
    _patch_zip(crc, 14, 16, b"\xde\xad\xbe\xef")
    out["bad crc"] = (crc, "CRC")
    import tarfile

    for mode, ext in (("w:gz", "tar.gz"), ("w", "tar")):
        full = tmp / f"full.{ext}"
        with tarfile.open(full, mode) as t:
            for i in range(3):
                info = tarfile.TarInfo(f"gt_img_{i + 1}.txt")
                payload = bytes(np.random.default_rng(i).integers(48, 58, 4000, dtype=np.uint8))
                info.size = len(payload)
                t.addfile(info, io.BytesIO(payload))
        cut = tmp / f"cut.{ext}"
        cut.write_bytes(full.read_bytes()[: len(full.read_bytes()) * 2 // 3])
        out[f"truncated {ext}"] = (cut, "truncated")
    return out


def test_hostile_archives_give_one_line_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for what, (archive, needle) in hostile_archives(tmp_path).items():
        dest = tmp_path / f"root-{archive.stem}"
        code, _, err = prepare(capsys, archive, dest)
        assert code == 2, (what, code, err)  # not 130 ("Aborted.") nor a traceback
        assert_one_line_error(code, err, str(archive), needle)
        assert not dest.exists(), what  # nothing half-prepared
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{dest.name}.")]


def test_prepare_refuses_fifo_and_devices(tmp_path: Path) -> None:
    fifo = tmp_path / "archive.zip"
    os.mkfifo(fifo)
    link = tmp_path / "zero.zip"
    link.symlink_to("/dev/zero")
    for src in (fifo, Path("/dev/zero"), link):
        res = subprocess.run(
            [sys.executable, "-m", "tcmbench", "datasets", "prepare", "icdar2015"]
            + ["--from", str(src), "--dest", str(tmp_path / "root"), "--split", "test"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,  # a regression hangs: fail, don't block the suite
            cwd=REPO,
        )
        assert_one_line_error(res.returncode, res.stderr, str(src), "not a regular file")


def test_prepare_limits_decompression_bombs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import tarfile

    zeros = bytes(80 << 20)  # 80 MiB that deflate to ~80 KB
    bomb = _zip_with(tmp_path / "bomb.zip", [("gt_img_1.txt", zeros)])
    tar_bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(tar_bomb, "w:gz") as t:
        info = tarfile.TarInfo("gt_img_1.txt")
        info.size = len(zeros)
        t.addfile(info, io.BytesIO(zeros))
    del zeros
    for archive in (bomb, tar_bomb):
        assert archive.stat().st_size < 1 << 20
        code, _, err = prepare(capsys, archive, tmp_path / "root")
        assert_one_line_error(code, err, str(archive), "decompression bomb", "--max-ratio")
    # Turning the ratio off leaves the total limit; both can be set.
    code, _, err = prepare(
        capsys, bomb, tmp_path / "root", "--max-ratio", "0", "--max-unpacked-size", "1M"
    )
    assert_one_line_error(code, err, str(bomb), "1.0 MiB", "--max-unpacked-size")
    small = make_zip(tmp_path / "small.zip", IC15_GT)
    code, _, err = prepare(capsys, small, tmp_path / "root", "--max-unpacked-size", "10")
    assert_one_line_error(code, err, str(small), "--max-unpacked-size")
    code, _, err = prepare(capsys, small, tmp_path / "root")
    assert code == 0, err
    assert (tmp_path / "root" / "test_gts" / "gt_img_1.txt").is_file()


# Enters atomic_dir(argv[1]), prints its temporary folder, then dies by
# SIGKILL (argv[2] == "kill") or sleeps until killed.
WRITER = r"""
import os, signal, sys, time
from tcmbench.safety.paths import atomic_dir
with atomic_dir(sys.argv[1]) as tmp:
    (tmp / "partial.txt").write_text("half")
    print(tmp, flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(120)
"""


def _writer(target: Path, mode: str) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target), mode],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    tmp = Path(proc.stdout.readline().strip())
    return proc, tmp


def test_prepare_cleans_folders_of_killed_runs_not_live_ones(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dest = tmp_path / "root"
    live, live_tmp = _writer(dest, "sleep")
    killed, dead_tmp = _writer(dest, "kill")  # (started second: the live one would clean it)
    killed.wait(timeout=60)
    try:
        assert dead_tmp.is_dir() and live_tmp.is_dir()
        lockless_old = tmp_path / ".root.legacy.tmp"
        lockless_new = tmp_path / ".root.recent.tmp"
        lockless_old.mkdir()
        lockless_new.mkdir()
        two_days_ago = __import__("time").time() - 48 * 3600
        os.utime(lockless_old, (two_days_ago, two_days_ago))
        code, _, err = prepare(capsys, make_zip(tmp_path / "mine.zip", IC15_GT), dest)
        assert code == 0, err
        assert not dead_tmp.exists() and not Path(f"{dead_tmp}.lock").exists()
        assert not lockless_old.exists()
        assert live_tmp.is_dir() and (live_tmp / "partial.txt").is_file()  # still being written
        assert lockless_new.is_dir()  # too recent to judge without a lock
    finally:
        live.kill()
        live.wait(timeout=60)
    from tcmbench.safety.paths import clean_stale_temps

    assert clean_stale_temps(dest) == [live_tmp]  # its writer is gone now


def test_run_killed_between_its_renames_is_restored(tmp_path: Path) -> None:
    """Killed after moving the old folder aside, before the new one is in
    place: the old version comes back rather than being deleted."""
    from tcmbench.safety.paths import clean_stale_temps

    dest = tmp_path / "root"
    aside = tmp_path / ".root.abcd.tmp.old"
    aside.mkdir()
    (aside / "gt.txt").write_text("previous")
    (tmp_path / ".root.abcd.tmp.lock").write_text("")  # its owner is dead: lock free
    clean_stale_temps(dest)
    assert (dest / "gt.txt").read_text() == "previous" and not aside.exists()


def test_killed_generation_is_cleaned(tmp_path: Path) -> None:
    from tcmbench.data.synthetic.generate import load_synthtext_mini, split_dir

    folder = split_dir("test", 0, 2, tmp_path)
    killed, dead_tmp = _writer(folder, "kill")
    killed.wait(timeout=60)
    assert dead_tmp.is_dir()
    samples = load_synthtext_mini("test", num_images=2, cache_dir=tmp_path)
    assert len(samples) == 2
    assert not dead_tmp.exists()
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]


# --------------------------------------------------------------------------- 12. prediction cache

CACHE_EDITS = {
    "a JSON list": lambda doc: [],
    "no predictions": lambda doc: {"key": doc["key"]},
    "predictions a list": lambda doc: {**doc, "predictions": []},
    "a prediction without polygon": lambda doc: {**doc, "predictions": {"a": [{"score": 1}]}},
    "an odd polygon": lambda doc: {**doc, "predictions": {"a": [{"polygon": [1, 2, 3]}]}},
    "a string prediction": lambda doc: {**doc, "predictions": {"a": ["box"]}},
    "a NaN coordinate": lambda doc: {
        **doc,
        "predictions": {"a": [{"polygon": [float("nan")] * 8}]},
        "predictions_sha256": None,
    },
    "moved coordinates": lambda doc: {
        **doc,
        "predictions": {"a": [{"polygon": [0, 0, 9, 0, 9, 9, 0, 9], "score": 0.9}]},
    },
}


@pytest.mark.parametrize("edit", [*CACHE_EDITS, "not gzip"])
def test_hand_edited_cache_entry_is_a_miss(
    edit: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import gzip

    from tcmbench.data.schema import Prediction
    from tcmbench.inference import PredictionCache, cached_predict

    cache = PredictionCache(tmp_path / "predictions")
    key = {"checkpoint": "abc", "dataset": "d", "split": "test", "version": 2}
    fresh = {"a": [Prediction(QUAD, 0.9)], "b": []}
    path = cache.save(key, fresh)
    if edit == "not gzip":
        path.write_bytes(b"{}")
    else:
        doc = json.loads(gzip.decompress(path.read_bytes()))
        path.write_bytes(gzip.compress(json.dumps(CACHE_EDITS[edit](doc)).encode()))
    calls = []

    def compute() -> dict[str, list[Prediction]]:
        calls.append(1)
        return fresh

    with caplog.at_level("WARNING", logger="tcmbench.inference"):
        preds, hit = cached_predict(key, compute, cache)
    assert (hit, len(calls)) == (False, 1)  # recomputed, not a traceback
    assert sorted(preds) == ["a", "b"] and preds["a"][0].score == 0.9
    warnings = [r for r in caplog.records if "damaged prediction cache" in r.getMessage()]
    assert len(warnings) == 1 and str(path) in warnings[0].getMessage()
    again = cache.load(key)  # the recomputed entry replaced the damaged one
    assert again is not None and np.array_equal(again["a"][0].polygon, QUAD)


@pytest.fixture
def tiny_plugins() -> object:
    from tiny_data import THRESHOLD_SPEC

    from tcmbench.contract import registry as plugins
    from tcmbench.contract.hookspecs import hookimpl

    class _Plugin:
        @hookimpl
        def register_detectors(self, register: object) -> None:
            register(THRESHOLD_SPEC)  # type: ignore[operator]

    pm = plugins.get_plugin_manager()
    plugin = _Plugin()
    pm.register(plugin, name="hostile-files-tiny")
    try:
        yield
    finally:
        pm.unregister(plugin)


def test_evaluate_recomputes_over_a_hand_edited_cache_entry(
    tmp_path: Path,
    tiny_plugins: None,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gzip

    from tiny_data import THRESHOLD_SPEC, make_ic15_folder

    # A cache of its own: the session's is shared with every other test.
    monkeypatch.setenv("TCMBENCH_CACHE", str(tmp_path / "cache"))

    from tcmbench.contract import registry as plugins
    from tcmbench.contract.spec import DetectorConfig
    from tcmbench.hub import checkpoints as hub

    ic15 = make_ic15_folder(tmp_path / "ic15", n_train=1, n_test=2)
    model = plugins.get_plugin_manager().hook.build_detector(
        spec=THRESHOLD_SPEC, config=DetectorConfig()
    )
    ckpt = hub.save_checkpoint(tmp_path / "threshold", model, THRESHOLD_SPEC, DetectorConfig())
    out = tmp_path / "r.json"
    args = ["evaluate", "--plugin", "tiny-threshold", "--dataset", "icdar2015"]
    args += ["--data-root", str(ic15), "--weights", str(ckpt), "--device", "cpu"]
    args += ["--no-progress", "--json", str(out)]
    code, _, err = run(capsys, *args)
    assert code == 0, err
    first = json.loads(out.read_text())
    (entry,) = (Path(os.environ["TCMBENCH_CACHE"]) / "predictions").glob("*.json.gz")
    for edited in ([], {"key": json.loads(gzip.decompress(entry.read_bytes()))["key"]}):
        entry.write_bytes(gzip.compress(json.dumps(edited).encode()))
        caplog.clear()
        code, _, err = run(capsys, *args)
        assert code == 0 and "Traceback" not in err, err
        doc = json.loads(out.read_text())
        assert doc["cached_predictions"] is False and doc["hmean"] == first["hmean"] == 1.0
        said = [r for r in caplog.records if "damaged prediction cache" in r.getMessage()]
        assert len(said) == 1
    code, _, err = run(capsys, *args)
    assert code == 0 and json.loads(out.read_text())["cached_predictions"] is True
