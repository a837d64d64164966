"""Issue 15, cases 1, 2 and the last of 7: a dataset's own names are ids,
never paths; outputs joined from an id stay in their folder; destinations
that are not folders are refused with one line and left as they were.

Every hostile run here plants canary folders beside the data root and
beside each output folder, and checks them byte for byte and mtime for
mtime afterwards: nothing may be written (or renamed, or deleted) outside
the folder a run was given.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import scipy.io
from conftest import REPO, shared_file
from tiny_data import THRESHOLD_SPEC, TINY_SPEC, make_ic15_folder

from tcmbench.cli import main
from tcmbench.contract import registry as plugins
from tcmbench.contract.hookspecs import hookimpl
from tcmbench.contract.spec import DetectorConfig
from tcmbench.data.formats.api import read_annotations
from tcmbench.data.ids import FOLDER_SEPARATOR, check_id, file_id, id_problem, path_id
from tcmbench.data.schema import Prediction
from tcmbench.errors import TcmbenchError, UnsafePathError
from tcmbench.eval.submission import entry_names, write_submission
from tcmbench.hub import checkpoints as hub
from tcmbench.safety.paths import (
    atomic_dir,
    cache_dir,
    check_destination,
    name_problem,
    resolve_inside,
    safe_child,
)

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

# --------------------------------------------------------------------------- helpers


class _TinyPlugin:
    @hookimpl
    def register_detectors(self, register: Any) -> None:
        register(THRESHOLD_SPEC)
        register(TINY_SPEC)


@pytest.fixture
def threshold_ckpt(tmp_path: Path) -> Iterator[Path]:
    """A fixed (untrained) dark-box detector: inference in milliseconds."""
    pm = plugins.get_plugin_manager()
    plugin = _TinyPlugin()
    pm.register(plugin, name="tiny-hostile-names")
    try:
        model = pm.hook.build_detector(spec=THRESHOLD_SPEC, config=DetectorConfig())
        yield hub.save_checkpoint(
            tmp_path / "ckpt" / "threshold", model, THRESHOLD_SPEC, DetectorConfig()
        )
    finally:
        pm.unregister(plugin)


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def run_subprocess(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, under a timeout: a run that would block
    (opening a FIFO) fails the test instead of hanging the suite."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tcmbench", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=REPO,
    )


def assert_one_line_error(code: int, err: str, *needles: str) -> str:
    """Exit 2, no traceback, exactly one ``Error:`` line holding ``needles``."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert code == 2 and len(errors) == 1, (code, err)
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def snapshot(folder: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under ``folder`` (and itself): type, mtime, size, and the
    bytes of files or the target of links."""
    out: dict[str, tuple[Any, ...]] = {}
    for p in [folder, *sorted(folder.rglob("*"))]:
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            payload: Any = os.readlink(p)
        elif stat.S_ISREG(st.st_mode):
            payload = p.read_bytes()
        else:
            payload = None
        out[str(p.relative_to(folder))] = (stat.S_IFMT(st.st_mode), st.st_mtime_ns, payload)
    return out


def plant_canary(beside: Path) -> tuple[Path, dict[str, tuple[Any, ...]]]:
    """A canary folder next to ``beside`` (a file, a sub-folder, a link), and
    its snapshot."""
    canary = beside.parent / f"canary-{beside.name}"
    (canary / "nested").mkdir(parents=True)
    (canary / "keep.txt").write_text("untouched\n")
    (canary / "nested" / "deep.txt").write_text("also untouched\n")
    os.symlink("keep.txt", canary / "link")
    return canary, snapshot(canary)


def write_image(path: Path, size: tuple[int, int], box: bool = True) -> None:
    """A light image (width x height) with one dark box the threshold
    detector finds."""
    w, h = size
    img = np.full((h, w, 3), 210, np.uint8)
    if box:
        img[10:30, 8:40] = 20
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def cells(values: list[Any]) -> np.ndarray:
    out = np.empty((1, len(values)), dtype=object)
    for i, v in enumerate(values):
        out[0, i] = v
    return out


def write_gt_mat(path: Path, imnames: list[str]) -> None:
    """A real SynthText gt.mat (scipy's writer): one word per image."""
    box = np.array([[8, 40, 40, 8], [10, 10, 30, 30]], dtype=np.float64)
    scipy.io.savemat(
        path,
        {
            "imnames": cells([np.array([n]) for n in imnames]),
            "wordBB": cells([box] * len(imnames)),
            "txt": cells([np.array(["word"])] * len(imnames)),
        },
    )


VICTIM_SIZE = (77, 55)  # a victim read by mistake would show up with this size


def synthtext_site(tmp_path: Path) -> dict[str, Path]:
    """SynthText root ``outer/inner/ROOT`` holding ``8/ok_0.jpg`` and a gt.mat
    whose imnames also name, exactly as issue 15 did, ``/abs/victim.jpg`` and
    ``../../victim.jpg`` (which here is ``outer/victim.jpg``, a real image),
    plus an absolute path to a real image in the canary beside the root, a
    ``..`` into that canary, and a link inside the root that leads into it."""
    root = tmp_path / "outer" / "inner" / "ROOT"
    write_image(root / "8" / "ok_0.jpg", (64, 64))
    victim_rel = tmp_path / "outer" / "victim.jpg"
    write_image(victim_rel, VICTIM_SIZE)
    canary, _ = plant_canary(root)
    write_image(canary / "victim_abs.jpg", VICTIM_SIZE)
    write_image(canary / "victim_dotdot.jpg", VICTIM_SIZE)
    os.symlink(canary / "victim_abs.jpg", root / "8" / "link.jpg")
    imnames = [
        "8/ok_0.jpg",
        "/abs/victim.jpg",
        "../../victim.jpg",
        str(canary / "victim_abs.jpg"),
        f"../{canary.name}/victim_dotdot.jpg",
        "8/link.jpg",
    ]
    write_gt_mat(root / "gt.mat", imnames)
    return {"root": root, "canary": canary, "victim_rel": victim_rel}


# --------------------------------------------------------------------------- case 1: ids


def test_real_ids_do_not_change_and_folders_become_names() -> None:
    for real in ("img_1", "IMG_0059", "img12", "1001", "gt_17", "0001"):
        assert check_id(real) == real
    assert path_id("8/ballet_106_0.jpg") == f"8{FOLDER_SEPARATOR}ballet_106_0" == "8__ballet_106_0"
    assert file_id("textdet_imgs/test/img_1.jpg") == "img_1"
    assert file_id("IMG_0059.JPG") == "IMG_0059"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/abs/victim.jpg", "absolute"),
        ("../../victim.jpg", "'..'"),
        ("8/../../victim.jpg", "'..'"),
        ("C:\\victim.jpg", "absolute"),
        ("..\\..\\victim.jpg", "'..'"),
        ("...jpg", "names a folder"),  # stem '..'
        ("8/a\x00b.jpg", "NUL"),
        ("8/a\nb.jpg", "control character"),
        ("", "names no file"),
    ],
)
def test_hostile_dataset_names_never_become_ids(name: str, reason: str) -> None:
    for make in (path_id, file_id):
        with pytest.raises(ValueError, match=reason.replace("(", r"\(")):
            make(name)


def test_synthtext_names_outside_the_root_are_entries_in_error(tmp_path: Path) -> None:
    """Issue 15 case 1 at the reader: each escaping imname is a malformed
    entry naming gt.mat and the image index; only the safe image is read."""
    site = synthtext_site(tmp_path)
    root = site["root"]
    with pytest.raises(
        TcmbenchError, match=r"gt\.mat, line 2: .*'/abs/victim\.jpg' is an absolute"
    ):
        read_annotations("synthtext", root, images=root)
    samples, report = read_annotations("synthtext", root, images=root, skip_invalid=True)
    assert [s.id for s in samples] == ["8__ok_0"]
    assert samples[0].image_path == str(root / "8" / "ok_0.jpg")
    assert (samples[0].width, samples[0].height) == (64, 64)
    assert len(report.skipped) == 5
    details = " | ".join(str(s) for s in report.skipped)
    assert "climbs out of its folder" in details and "points outside the image folder" in details
    # without images, the ids alone are still refused (never '/abs/victim')
    samples, report = read_annotations("synthtext", root, skip_invalid=True)
    assert all(id_problem(s.id) is None for s in samples), [s.id for s in samples]
    assert "/abs/victim" not in [s.id for s in samples]


def test_coco_and_mmocr_file_names_stay_in_the_image_folder(tmp_path: Path) -> None:
    images = tmp_path / "root" / "images"
    write_image(images / "ok.jpg", (64, 64))
    canary, _ = plant_canary(tmp_path / "root")
    write_image(canary / "v.jpg", VICTIM_SIZE)
    coco = {
        "images": [
            {"id": 1, "file_name": "ok.jpg"},
            {"id": 2, "file_name": str(canary / "v.jpg")},
            {"id": 3, "file_name": f"../../{canary.name}/v.jpg"},
        ],
        "annotations": [],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    samples, report = read_annotations(
        "coco-text", tmp_path / "coco.json", images=images, skip_invalid=True
    )
    assert [(s.id, s.width) for s in samples] == [("ok", 64)] and len(report.skipped) == 2
    mm = {"data_list": [{"img_path": "../../x/../../v.jpg", "instances": []}]}
    (tmp_path / "mm.json").write_text(json.dumps(mm))
    with pytest.raises(TcmbenchError, match=r"mm\.json.*data_list.*climbs out"):
        read_annotations("mmocr", tmp_path / "mm.json", images=images)


@pytest.mark.parametrize(
    ("fmt", "file", "text"),
    [
        ("jsonl", "a.jsonl", '{"id": "../../outside/victim"}\n'),
        ("jsonl", "a.jsonl", '{"id": "/abs/victim"}\n'),
        ("art", "a.json", '{"../x": []}'),
        ("icdar2015", "gt_...txt", "0,0,1,0,1,1,0,1,w\n"),  # file name -> id '..'
    ],
)
def test_every_reader_refuses_path_ids(tmp_path: Path, fmt: str, file: str, text: str) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / file).write_text(text)
    with pytest.raises(TcmbenchError, match="sample id"):
        read_annotations(fmt, tmp_path / "d")
    samples, report = read_annotations(fmt, tmp_path / "d", skip_invalid=True)
    assert samples == [] and len(report.skipped) == 1


def test_safe_child_refuses_what_leads_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    canary, before = plant_canary(out)
    assert safe_child(out, "img_1.png") == out / "img_1.png"
    for name in ("../x.png", "/abs/x.png", "..", ".", "", "a\\b.png", "a\0b", "x" * 256):
        with pytest.raises(UnsafePathError):
            safe_child(out, name)
    os.symlink(canary / "keep.txt", out / "planted.png")  # a link planted in the output
    with pytest.raises(UnsafePathError, match="outside the folder"):
        safe_child(out, "planted.png")
    assert snapshot(canary) == before
    assert resolve_inside(out, "a/b.jpg") == out / "a" / "b.jpg"
    assert resolve_inside(out, "../x.jpg") is None and resolve_inside(out, "/etc/hosts") is None


def test_submission_members_are_plain_names(tmp_path: Path) -> None:
    """``res_../../x.txt`` and ``res_/abs/x.txt`` cannot be written, whatever
    ids a caller (or an edited prediction cache) hands in."""
    out = tmp_path / "subm"
    canary, before = plant_canary(out)
    pred = [Prediction(np.array([[0, 0], [5, 0], [5, 5], [0, 5]], float), 0.9)]
    for sid in ("../../outside/victim_rel", "/abs/outside/victim_abs"):
        for protocol in ("icdar2015", "totaltext-iou", "plugin-protocol"):
            with pytest.raises(UnsafePathError, match="cannot name a submission file"):
                write_submission(out, {"img_1": pred, sid: pred}, protocol)
    assert not out.exists() and snapshot(canary) == before
    paths = write_submission(out, {"8__ok_0": pred, "img_1": pred}, "icdar2015")
    with zipfile.ZipFile(paths["zip"]) as zf:
        names = zf.namelist()
    assert sorted(names) == ["res_8__ok_0.txt", "res_img_1.txt"]
    assert all(name_problem(n) is None for n in names)


@pytest.mark.parametrize("skip_invalid", [False, True])
def test_evaluate_synthtext_hostile_imnames_writes_and_reads_nothing_outside(
    tmp_path: Path, threshold_ckpt: Path, capsys: pytest.CaptureFixture[str], skip_invalid: bool
) -> None:
    """Issue 15 case 1, the exact run: evaluate --dataset synthtext --split
    train --visualize V --save-predictions S on a gt.mat naming
    ``/abs/victim.jpg`` and ``../../victim.jpg`` (and links / absolute paths
    into a canary). Strict: one line naming gt.mat and the entry, nothing
    written. --skip-invalid: only the safe image is evaluated; V and the zip
    hold its files only; canaries beside ROOT, V and S are untouched."""
    site = synthtext_site(tmp_path)
    root_canary_before = snapshot(site["canary"])
    victim_before = site["victim_rel"].read_bytes()
    outputs = tmp_path / "outputs"
    vis, subm = outputs / "V", outputs / "S"
    vis_canary, vis_before = plant_canary(vis)
    subm_canary, subm_before = plant_canary(subm)
    args = [
        "evaluate",
        "--plugin",
        "tiny-threshold",
        "--dataset",
        "synthtext",
        "--split",
        "train",
        "--data-root",
        str(site["root"]),
        "--weights",
        str(threshold_ckpt),
        "--device",
        "cpu",
        "--visualize",
        str(vis),
        "--save-predictions",
        str(subm),
        "--no-progress",
        "--no-cache",
    ]
    code, out, err = run(args + (["--skip-invalid"] if skip_invalid else []), capsys)
    if not skip_invalid:
        assert_one_line_error(code, err, "gt.mat, line 2", "/abs/victim.jpg", "absolute")
        assert not vis.exists() and not subm.exists()
    else:
        assert code == 0, err
        assert "| synthtext | train | icdar2015 | 1 |" in out
        assert sorted(p.name for p in vis.iterdir()) == ["8__ok_0.png"]
        with zipfile.ZipFile(subm / "submit.zip") as zf:
            members = zf.namelist()
        assert members == ["res_8__ok_0.txt"]
        doc = json.loads((subm / "predictions.json").read_text())
        assert list(doc["predictions"]) == ["8__ok_0"]
    assert snapshot(site["canary"]) == root_canary_before
    assert snapshot(vis_canary) == vis_before and snapshot(subm_canary) == subm_before
    assert site["victim_rel"].read_bytes() == victim_before
    assert not (tmp_path / "outer" / "victim.png").exists()
    written = ["V", "S"] if skip_invalid else []
    assert sorted(p.name for p in outputs.iterdir()) == sorted(
        [*written, vis_canary.name, subm_canary.name]
    )


@pytest.mark.realdata
def test_evaluate_synthtext_hostile_imnames_with_the_ppocr_onnx_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's own run: the onnx plugin on ch_PP-OCRv3_det_infer.onnx."""
    model = shared_file("models/ch_PP-OCRv3_det_infer.onnx")
    site = synthtext_site(tmp_path)
    before = snapshot(site["canary"])
    vis, subm = tmp_path / "out" / "V", tmp_path / "out" / "S"
    base = ["evaluate", "--plugin", "onnx", "--weights", str(model), "--dataset", "synthtext"]
    base += ["--split", "train", "--data-root", str(site["root"]), "--visualize", str(vis)]
    base += ["--save-predictions", str(subm), "--no-progress", "--no-cache"]
    code, _, err = run(base, capsys)
    assert_one_line_error(code, err, "gt.mat, line 2", "absolute")
    code, _, err = run([*base, "--skip-invalid"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in vis.iterdir()) == ["8__ok_0.png"]
    with zipfile.ZipFile(subm / "submit.zip") as zf:
        assert zf.namelist() == ["res_8__ok_0.txt"]
    assert snapshot(site["canary"]) == before


# --------------------------------------------------------------------------- case 2: destinations


def _gt_zip(tmp_path: Path) -> Path:
    ic15 = make_ic15_folder(tmp_path / "ic15", n_train=1, n_test=1)
    gt = tmp_path / "gts.zip"
    with zipfile.ZipFile(gt, "w") as zf:
        zf.write(ic15 / "test_gts" / "gt_img_1.txt", "gt_img_1.txt")
    return gt


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def _char_device(tmp_path: Path) -> Path:
    """A character device to hand in as a destination: a fresh node like
    /dev/full inside the temporary folder when root (where a rename would
    succeed), else /dev/null itself (which no one but root can rename)."""
    if IS_ROOT:
        node = tmp_path / "dev" / "full"
        node.parent.mkdir()
        try:
            os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 7))
        except OSError as exc:  # a container without CAP_MKNOD
            pytest.skip(f"cannot create a device node here: {exc}")
        return node
    return Path("/dev/null")


def _prepare(gt: Path, dest: Path) -> subprocess.CompletedProcess[str]:
    return run_subprocess(
        ["datasets", "prepare", "icdar2015", "--split", "test", "--from", str(gt)]
        + ["--dest", str(dest)],
        timeout=120,
    )


def test_prepare_dest_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "dests" / "fifo"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    canary, before = plant_canary(fifo)
    result = _prepare(_gt_zip(tmp_path), fifo)  # a blocking open would time out here
    assert_one_line_error(result.returncode, result.stderr, f"--dest {fifo} is a FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert _siblings(fifo) == sorted([fifo.name, canary.name]) and snapshot(canary) == before


def test_prepare_dest_symlink_is_refused_and_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "real-root"
    target.mkdir()
    (target / "mine.txt").write_text("mine\n")
    target_before = snapshot(target)
    link = tmp_path / "dests" / "link"
    link.parent.mkdir()
    os.symlink(target, link)
    canary, before = plant_canary(link)
    result = _prepare(_gt_zip(tmp_path), link)
    assert_one_line_error(result.returncode, result.stderr, "is a symbolic link")
    assert os.readlink(link) == str(target) and snapshot(target) == target_before
    assert _siblings(link) == sorted([link.name, canary.name])  # no .tmp.old link left behind
    assert snapshot(canary) == before


def test_prepare_dest_regular_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "dests" / "file"
    file.parent.mkdir()
    file.write_text("precious\n")
    canary, before = plant_canary(file)
    result = _prepare(_gt_zip(tmp_path), file)
    assert_one_line_error(result.returncode, result.stderr, "is a regular file")
    assert file.read_text() == "precious\n" and snapshot(canary) == before
    assert _siblings(file) == sorted([file.name, canary.name])


def test_prepare_dest_device_is_refused_and_not_renamed(tmp_path: Path) -> None:
    device = _char_device(tmp_path)
    before = os.lstat(device)
    result = _prepare(_gt_zip(tmp_path), device)
    assert_one_line_error(result.returncode, result.stderr, "is a character device")
    after = os.lstat(device)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert after.st_ino == before.st_ino
    if IS_ROOT:
        assert _siblings(device) == [device.name]


def test_prepare_into_an_existing_folder_never_renames_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An existing --dest is filled in place: same inode, the user's own
    files kept, and no sibling left behind."""
    dest = tmp_path / "dests" / "root"
    dest.mkdir(parents=True)
    (dest / "notes.txt").write_text("mine\n")
    (dest / "empty-folder").mkdir()
    inode = os.lstat(dest).st_ino
    canary, before = plant_canary(dest)
    code, _, err = run(
        ["datasets", "prepare", "icdar2015", "--split", "test"]
        + ["--from", str(_gt_zip(tmp_path)), "--dest", str(dest)],
        capsys,
    )
    assert code == 0, err
    assert os.lstat(dest).st_ino == inode and (dest / "notes.txt").read_text() == "mine\n"
    assert (dest / "empty-folder").is_dir() and (dest / "test_gts" / "gt_img_1.txt").is_file()
    assert _siblings(dest) == sorted([dest.name, canary.name]) and snapshot(canary) == before


def test_atomic_dir_never_swaps_what_is_not_a_folder(tmp_path: Path) -> None:
    for make in (
        lambda p: p.write_text("x"),
        lambda p: os.symlink(tmp_path, p),
        os.mkfifo,
    ):
        target = tmp_path / "t" / "dest"
        target.parent.mkdir(exist_ok=True)
        make(target)
        before = snapshot(target.parent)
        with pytest.raises(TcmbenchError, match="not a folder"), atomic_dir(target):
            pass
        assert snapshot(target.parent) == before
        target.unlink()


@pytest.mark.parametrize(
    "make",
    ["fifo", "link", "file", "below-file", "device"],
)
def test_check_destination_kinds(tmp_path: Path, make: str) -> None:
    base = tmp_path / "d"
    base.mkdir()
    path = base / "x"
    if make == "fifo":
        os.mkfifo(path)
    elif make == "link":
        (base / "real").mkdir()
        os.symlink(base / "real", path)
    elif make == "file":
        path.write_text("x")
    elif make == "below-file":
        (base / "f").write_text("x")
        path = base / "f" / "new"
    else:
        path = _char_device(tmp_path)
    before = snapshot(base)
    with pytest.raises(TcmbenchError) as info:
        check_destination(path, "--out")
    assert "\n" not in str(info.value) and str(
        path.parent if make == "below-file" else path
    ) in str(info.value)
    assert snapshot(base) == before
    assert check_destination(base / "new" / "deeper", "--out") == base / "new" / "deeper"
    assert check_destination(base, "--out") == base


def test_predict_out_dev_full_is_one_line(
    tmp_path: Path, threshold_ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "in" / "a.png"
    write_image(image, (64, 64))
    code, _, err = run(
        ["predict", str(image), "--plugin", "tiny-threshold", "--weights", str(threshold_ckpt)]
        + ["--device", "cpu", "--no-progress", "--out", "/dev/full"],
        capsys,
    )
    assert_one_line_error(code, err, "--out /dev/full is a character device")


def test_experiment_run_out_dev_full_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["experiment", "run", "few-shot", "--tiny", "--out", "/dev/full"], capsys)
    assert_one_line_error(code, err, "--out /dev/full is a character device")


def test_evaluate_outputs_that_are_not_folders_are_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ic15 = make_ic15_folder(tmp_path / "ic15", n_train=1, n_test=1)
    file = tmp_path / "a-file"
    file.write_text("x")
    fifo = tmp_path / "a-fifo"
    os.mkfifo(fifo)
    base = ["evaluate", "--dataset", "icdar2015", "--data-root", str(ic15)]
    base += ["--weights", str(tmp_path / "no-such-checkpoint")]  # never reached
    for option, target in (
        ("--save-predictions", file),
        ("--visualize", fifo),
        ("--report", file),
        ("--save-predictions", Path("/dev/full")),
    ):
        code, _, err = run([*base, option, str(target)], capsys)
        # click refuses a regular file itself; the rest is check_destination's line
        assert_one_line_error(code, err, option, str(target), "is a")
    assert file.read_text() == "x" and stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize("kind", ["file", "link"])
def test_tcmbench_cache_that_is_not_a_folder_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    cache = tmp_path / "cache"
    if kind == "file":
        cache.write_text("hostname\n")
    else:
        (tmp_path / "elsewhere").mkdir()
        os.symlink(tmp_path / "elsewhere", cache)
    monkeypatch.setenv("TCMBENCH_CACHE", str(cache))
    monkeypatch.delenv("TCMBENCH_DATA", raising=False)
    with pytest.raises(TcmbenchError, match=f"TCMBENCH_CACHE={cache} is a"):
        cache_dir()
    # a command that writes to the cache (prepare's default --dest is in it)
    code, _, err = run(
        ["datasets", "prepare", "icdar2015", "--split", "test", "--from", str(_gt_zip(tmp_path))],
        capsys,
    )
    assert_one_line_error(code, err, f"TCMBENCH_CACHE={cache} is a")
    if kind == "file":
        assert cache.read_text() == "hostname\n"
    else:
        assert list((tmp_path / "elsewhere").iterdir()) == []


def test_json_stdout_and_device_files_still_work(
    tmp_path: Path, threshold_ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--json -`` and ``--json /dev/null`` are reports, not destinations."""
    ic15 = make_ic15_folder(tmp_path / "ic15", n_train=1, n_test=1)
    base = ["evaluate", "--plugin", "tiny-threshold", "--dataset", "icdar2015"]
    base += ["--data-root", str(ic15), "--weights", str(threshold_ckpt), "--device", "cpu"]
    base += ["--no-progress"]
    code, out, err = run([*base, "--json", "-"], capsys)
    assert code == 0, err
    assert json.loads(out)["images"] == 1
    code, out, err = run([*base, "--json", "/dev/null"], capsys)
    assert code == 0, err


# --------------------------------------------------------------------------- case 7: IMG_0059 / IMG_59


def test_td500_ids_sharing_a_submission_file_are_one_line_before_inference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 15 case 7: IMG_0059 and IMG_59 both give res_img_59.txt. The
    error names both ids and comes before the model is even loaded (the
    --weights given does not exist)."""
    td = tmp_path / "td500"
    for stem in ("IMG_0059", "IMG_59"):
        write_image(td / f"{stem}.JPG", (64, 64))
        (td / f"{stem}.gt").write_text("0 0 8 10 32 20 0\n")
    subm = tmp_path / "out" / "S"
    canary, before = plant_canary(subm)
    code, _, err = run(
        ["evaluate", "--dataset", "msra-td500", "--data-root", str(td)]
        + ["--weights", str(tmp_path / "no-such-checkpoint"), "--save-predictions", str(subm)],
        capsys,
    )
    assert_one_line_error(code, err, "'IMG_0059'", "'IMG_59'", "res_img_59.txt")
    assert not subm.exists() and snapshot(canary) == before
    with pytest.raises(TcmbenchError, match=r"IMG_0059.*IMG_59"):
        entry_names(["IMG_0059", "IMG_59"], "msra-td500")


# --------------------------------------------------------------------------- canary


def test_canaries_beside_every_target_survive_all_hostile_runs(
    tmp_path: Path, threshold_ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib", reason="--report needs tcmbench[report]")
    """One canary beside the data root and one beside each output folder;
    every hostile run of this file's cases in a row; then each canary must
    be exactly as planted (contents, links and mtimes)."""
    site = synthtext_site(tmp_path / "site")
    outs = tmp_path / "outs"
    targets = {name: outs / name for name in ("V", "S", "R", "P", "E", "D")}
    canaries = {site["canary"]: snapshot(site["canary"])}
    for target in targets.values():
        canary, snap = plant_canary(target)
        canaries[canary] = snap
    hostile = [
        ["evaluate", "--plugin", "tiny-threshold", "--dataset", "synthtext", "--split", "train"]
        + ["--data-root", str(site["root"]), "--weights", str(threshold_ckpt), "--device", "cpu"]
        + ["--visualize", str(targets["V"]), "--save-predictions", str(targets["S"])]
        + ["--report", str(targets["R"]), "--no-progress", "--no-cache", *extra]
        for extra in ([], ["--skip-invalid"])
    ]
    image = site["root"] / "8" / "ok_0.jpg"
    hostile.append(
        ["predict", str(image), "--plugin", "tiny-threshold", "--weights", str(threshold_ckpt)]
        + ["--device", "cpu", "--no-progress", "--out", str(targets["P"])]
    )
    # destinations that are links into the canaries: refused, nothing written through them
    for name in ("P", "D"):
        os.symlink(outs / f"canary-{name}", outs / f"{name}-link")
    hostile.append(
        ["predict", str(image), "--plugin", "tiny-threshold", "--weights", str(threshold_ckpt)]
        + ["--device", "cpu", "--no-progress", "--out", str(outs / "P-link")]
    )
    hostile.append(
        ["datasets", "prepare", "icdar2015", "--split", "test", "--from", str(_gt_zip(tmp_path))]
        + ["--dest", str(outs / "D-link")]
    )
    hostile.append(["experiment", "run", "few-shot", "--tiny", "--out", str(outs / "P-link")])
    codes = []
    for args in hostile:
        code, _, err = run(args, capsys)
        assert "Traceback" not in err, err
        codes.append(code)
    # strict: refused; --skip-invalid: the safe image only; predict: fine;
    # the three link destinations: refused
    assert codes == [2, 0, 0, 2, 2, 2]
    for canary, snap in canaries.items():
        assert snapshot(canary) == snap, canary
    assert sorted(p.name for p in targets["V"].iterdir()) == ["8__ok_0.png"]
    assert sorted(p.name for p in targets["P"].iterdir()) == ["ok_0.png", "predictions.json"]


def test_a_plugin_reader_is_held_to_the_same_id_rule(tmp_path: Path) -> None:
    from tcmbench.contract.registry import DatasetFormat
    from tcmbench.data.schema import Sample

    def reader(source: Any, images: Any, report: Any, **options: Any) -> list[Sample]:
        return [Sample("../../outside/victim", None, 0, 0)]

    class _Formats:
        @hookimpl
        def register_dataset_formats(self, register: Any) -> None:
            register(DatasetFormat(name="hostile-ids", reader=reader, summary="x", pattern="*"))

    pm = plugins.get_plugin_manager()
    plugin = _Formats()
    pm.register(plugin, name="hostile-id-formats")
    (tmp_path / "a.txt").write_text("x")
    try:
        with pytest.raises(UnsafePathError, match=r"'hostile-ids'.*'\.\./\.\./outside/victim'"):
            read_annotations("hostile-ids", tmp_path / "a.txt")
    finally:
        pm.unregister(plugin)


def _hf_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tcmbench.data.hf import sample_features

    f = sample_features()
    pq.write_table(
        pa.Table.from_pylist([f.encode_example(r) for r in rows], schema=f.arrow_schema), path
    )


def test_hf_ids_and_stored_image_paths(tmp_path: Path) -> None:
    """Parquet rows: an id that is a path is a row in error; an image stored
    as a path outside the dataset's folder is never read; ids that clean up
    to the same file name ('a b', 'a_b') keep their own images."""
    from tcmbench.data.hf import load_hf

    pytest.importorskip("datasets")
    canary, _ = plant_canary(tmp_path / "data")
    write_image(canary / "v.png", VICTIM_SIZE)
    before = snapshot(canary)
    pngs = {}
    for name, size in (("one", (20, 10)), ("two", (30, 15))):
        write_image(tmp_path / f"{name}.png", size, box=False)
        pngs[name] = (tmp_path / f"{name}.png").read_bytes()
    row = {"width": 0, "height": 0, "polygons": [], "ignore": [], "text": []}
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "t.parquet"
    _hf_rows(
        path,
        [
            {**row, "id": "a b", "image": {"bytes": pngs["one"], "path": "x.png"}},
            {**row, "id": "a_b", "image": {"bytes": pngs["two"], "path": "x.png"}},
            {**row, "id": "../../victim", "image": None},
            {**row, "id": "c", "image": {"bytes": None, "path": str(canary / "v.png")}},
        ],
    )
    with pytest.raises(TcmbenchError, match=r"line 3.*'\.\./\.\./victim'"):
        load_hf(path, split="test")
    samples, report = load_hf(path, split="test", skip_invalid=True)
    assert [s.id for s in samples] == ["a b", "a_b"] and len(report.skipped) == 2
    assert "lies outside" in str(report.skipped[1])
    one, two = (Path(s.image_path or "").read_bytes() for s in samples)
    assert (one, two) == (pngs["one"], pngs["two"])
    assert snapshot(canary) == before


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--plugin", "dbnet", "--dataset", "synthtext-mini", "--steps", "1", "--output"],
        ["hub", "pull", "org/repo", "--out"],
        ["import", "ppocr", "model.onnx", "--out"],
    ],
    ids=["train", "hub-pull", "import-ppocr"],
)
def test_every_command_output_folder_refuses_a_device(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The same check (paths.check_destination) on the other commands'
    output folders: one line before any work (no training, no download)."""
    code, _, err = run([*args, "/dev/full"], capsys)
    assert_one_line_error(code, err, "/dev/full is a character device")
