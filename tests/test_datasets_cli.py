"""``tcmbench datasets ...``: stats on the real data, bad input, prepare,
verify, root resolution through the CLI, and start-up without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, shared_file

from tcmbench.cli import main
from tcmbench.data import dataset as ds

IC15_GT = {
    "gt_img_1.txt": "\ufeff10,10,50,10,50,30,10,30,hello\n60,10,90,10,90,30,60,30,###\n",
    "gt_img_2.txt": "0,0,20,0,20,20,0,20,world\n",
}


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No $TCMBENCH_DATA, and a cache of this test's own: prepared datasets
    must not leak from one test into another's "not found" expectations."""
    monkeypatch.delenv(ds.DATA_ENV, raising=False)
    monkeypatch.setenv("TCMBENCH_CACHE", str(tmp_path / "tcmbench-cache"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The real entry point in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        # Like the console script: sys.exit(main()).
        code = int(main(list(argv)) or 0)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def run_process(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop(ds.DATA_ENV, None)
    return subprocess.run(
        [sys.executable, "-m", "tcmbench", *argv],
        check=False,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=REPO,
        timeout=120,
    )


def stats_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code, out, err = run(capsys, "datasets", "stats", *argv, "--json", "-")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1, "stats --json must print exactly one JSON object"
    return json.loads(lines[0])


# --------------------------------------------------------------------------- the Done-when counts


@pytest.mark.realdata
@pytest.mark.parametrize(
    "name, split, rel, want",
    [
        ("msra-td500", "test", "msra-td500", (200, 651, 69)),
        ("msra-td500", "train", "msra-td500", (300, 1068, 101)),
        ("icdar2015", "test", "icdar2015/test_gt.zip", (500, 5230, 3153)),
        ("ctw1500", "test", "ctw1500/test_gt.zip", (500, 3068, 0)),
        ("totaltext", "test", "totaltext/test_gt.zip", (300, 2545, 331)),
        ("icdar2013", "test", "icdar2013/test_gt.zip", (233, 1095, 0)),
    ],
)
def test_stats_on_the_shared_data(
    capsys: pytest.CaptureFixture[str], name: str, split: str, rel: str, want: tuple[int, int, int]
) -> None:
    st = stats_json(capsys, name, "--split", split, "--data-root", str(shared_file(rel)))
    assert (st["images"], st["instances"], st["ignored"]) == want
    assert all(isinstance(st[k], int) for k in ("images", "instances", "ignored"))
    assert sum(st["points_hist"].values()) == st["instances"]
    assert st["skipped_lines"] == 0


@pytest.mark.realdata
def test_verify_real_msra_passes_and_a_partial_copy_fails(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(
        capsys, "datasets", "verify", "msra-td500", "--data-root", str(shared_file("msra-td500"))
    )
    assert code == 0, out
    assert "| split test instances | ok | 651, expected 651 |" in out
    assert "| split train image files | ok | 300 of 300 found |" in out
    # A copy with one annotation file missing: counts no longer match.
    src = shared_file("msra-td500/test")
    partial = tmp_path / "msra" / "test"
    partial.mkdir(parents=True)
    for p in sorted(src.glob("*.gt"))[1:]:
        (partial / p.name).write_bytes(p.read_bytes())
    for p in src.glob("*.JPG"):
        (partial / p.name).symlink_to(p)
    code, out, _ = run(
        capsys, "datasets", "verify", "msra-td500", "--data-root", str(tmp_path / "msra")
    )
    assert code == 1
    assert "| split test images | mismatch | 199, expected 200 |" in out
    assert "FAILED" in out


@pytest.mark.realdata
def test_verify_checks_the_sha256_of_a_gt_zip(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(
        capsys,
        "datasets",
        "verify",
        "ctw1500",
        "--data-root",
        str(shared_file("ctw1500/test_gt.zip")),
    )
    assert code == 0, out
    assert "= known ctw1500-gt.zip" in out
    # Same name as the known TIoU-metric file, other bytes: a checksum mismatch.
    fake = tmp_path / "ctw1500-gt.zip"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr(
            "1001.txt",
            "0,0,10,0,10,10,0,10,0,0,10,0,10,10,0,10,0,0,10,0,10,10,0,10,0,0,10,0,CARE\n",
        )
    code, out, _ = run(capsys, "datasets", "verify", "ctw1500", "--data-root", str(fake))
    assert code == 1
    assert "does not match the known ctw1500-gt.zip" in out


# --------------------------------------------------------------------------- bad input


def test_missing_dataset_message(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "datasets", "stats", "icdar2015", "--split", "test", "--json", "-")
    assert code == 2 and out == ""
    assert err.startswith("Error: dataset 'icdar2015' not found")
    assert "https://rrc.cvc.uab.es/?ch=4" in err
    assert "tcmbench datasets prepare icdar2015 --from ARCHIVE_OR_DIR" in err
    assert len(err.strip().splitlines()) == 1


def test_malformed_annotation_names_file_and_line_without_traceback(tmp_path: Path) -> None:
    gt = tmp_path / "gt"
    gt.mkdir()
    (gt / "gt_img_1.txt").write_text("10,10,50,10,50,30,10,30,ok\n10,10,50,ten,50,30,10,30,bad\n")
    proc = run_process(
        "datasets", "stats", "icdar2015", "--split", "test", "--data-root", str(gt), "--json", "-"
    )
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert f"{gt / 'gt_img_1.txt'}, line 2" in proc.stderr
    assert "expected" in proc.stderr


def test_skip_invalid_counts_and_reports(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gt = tmp_path / "gt"
    gt.mkdir()
    (gt / "gt_img_1.txt").write_text(
        "10,10,50,10,50,30,10,30,ok\n1,2,3\n60,10,90,10,90,30,60,30,###\nx,y,1,1,1,1,1,1,bad\n"
    )
    (gt / "gt_img_2.txt").write_text("0,0,20,0,20,20,0,20,fine\n")
    code, out, err = run(
        capsys,
        "datasets",
        "stats",
        "icdar2015",
        "--data-root",
        str(gt),
        "--skip-invalid",
        "--json",
        "-",
    )
    assert code == 0
    st = json.loads(out)
    assert (st["images"], st["instances"], st["ignored"], st["skipped_lines"]) == (2, 3, 1, 2)
    assert "2 malformed line(s) skipped" in err
    # Without the flag the same files fail.
    code, _, err = run(
        capsys, "datasets", "stats", "icdar2015", "--data-root", str(gt), "--json", "-"
    )
    assert code == 2 and "line 2" in err


def test_unknown_split_and_dataset_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "datasets", "stats", "icdar2015", "--split", "validation")
    assert code == 2 and "has no split 'validation'" in err
    code, _, err = run(capsys, "datasets", "show", "no-such-set")
    assert code == 2 and "unknown dataset 'no-such-set'" in err


# --------------------------------------------------------------------------- prepare


def _zip(path: Path, files: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_prepare_from_a_zip_then_stats_and_verify(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tcmbench.safety.paths import datasets_cache_dir

    archive = _zip(
        tmp_path / "my_ic15.zip", {f"icdar2015/test_gts/{k}": v for k, v in IC15_GT.items()}
    )
    code, out, err = run(capsys, "datasets", "prepare", "icdar2015", "--from", str(archive))
    assert code == 0, err
    root = datasets_cache_dir() / "icdar2015"
    assert "no known checksum" in out and str(root) in out
    # The wrapper folder is stripped: files land where the loader looks.
    assert sorted(p.name for p in (root / "test_gts").iterdir()) == sorted(IC15_GT)
    st = stats_json(capsys, "icdar2015", "--split", "test")
    assert (st["images"], st["instances"], st["ignored"]) == (2, 3, 1)
    # verify: the counts are not those of the full test set.
    code, out, _ = run(capsys, "datasets", "verify", "icdar2015")
    assert code == 1 and "| split test images | mismatch | 2, expected 500 |" in out
    assert "| prepared from my_ic15.zip | info |" in out
    # list shows it present.
    code, out, _ = run(capsys, "datasets", "list")
    assert f"| icdar2015 | icdar2015 | train, test | icdar2015 | yes: {root} |" in out


def test_prepare_known_archive_by_name_goes_to_its_target(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The RRC archives are flat; their YAML targets say where they go, and
    a later archive merges into the same root without losing the first."""
    dest = tmp_path / "ic15"
    gt = _zip(tmp_path / "Challenge4_Test_Task1_GT.zip", IC15_GT)
    from PIL import Image

    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    for i, size in ((1, (100, 40)), (2, (30, 30))):
        Image.new("RGB", size).save(img_dir / f"img_{i}.jpg")
    images = tmp_path / "ch4_test_images.tar.gz"
    with tarfile.open(images, "w:gz") as tf:
        for p in sorted(img_dir.iterdir()):
            tf.add(p, arcname=p.name)
    code, out, err = run(
        capsys, "datasets", "prepare", "icdar2015", "--from", str(gt), "--dest", str(dest)
    )
    assert code == 0, err
    assert "-> test_gts" in out and f"--data-root {dest}" in out
    code, out, err = run(
        capsys, "datasets", "prepare", "icdar2015", "--from", str(images), "--dest", str(dest)
    )
    assert code == 0, err
    assert "-> test_images" in out
    samples, _ = ds.load_split("icdar2015", "test", data_root=dest, need_images=True)
    assert [(s.id, s.width, s.height) for s in samples] == [("img_1", 100, 40), ("img_2", 30, 30)]
    assert oct(dest.stat().st_mode & 0o777) != oct(0o700)
    manifest = json.loads((dest / ds.MANIFEST_NAME).read_text())
    # The tar.gz is recognised by its stem (a repacked ch4_test_images.zip).
    assert [m["source"] for m in manifest] == [
        "Challenge4_Test_Task1_GT.zip",
        "ch4_test_images.zip",
    ]


def test_prepare_flat_archive_needs_a_split(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    flat = _zip(tmp_path / "whatever.zip", IC15_GT)
    dest = tmp_path / "root"
    code, _, err = run(
        capsys, "datasets", "prepare", "icdar2015", "--from", str(flat), "--dest", str(dest)
    )
    assert code == 2 and "pass --split SPLIT" in err and "Traceback" not in err
    assert not dest.exists()
    code, out, _ = run(
        capsys,
        "datasets",
        "prepare",
        "icdar2015",
        "--from",
        str(flat),
        "--dest",
        str(dest),
        "--split",
        "train",
    )
    assert code == 0 and "-> train_gts" in out
    assert len(ds.load_split("icdar2015", "train", data_root=dest)[0]) == 2


@pytest.mark.realdata
def test_prepare_known_gt_zip_checks_its_sha256(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dest = tmp_path / "ic13"
    code, out, err = run(
        capsys,
        "datasets",
        "prepare",
        "icdar2013",
        "--from",
        str(shared_file("icdar2013/test_gt.zip")),
        "--dest",
        str(dest),
    )
    assert code == 0, err
    assert "= gt_IC13.zip (verified) -> test_gt.zip" in out
    st = stats_json(capsys, "icdar2013", "--data-root", str(dest))
    assert (st["images"], st["instances"]) == (233, 1095)
    # A file with the known name and other bytes is refused, and the root is untouched.
    bad = _zip(tmp_path / "gt_IC13.zip", {"gt_img_1.txt": '1, 2, 3, 4, "x"\n'})
    before = (dest / "test_gt.zip").read_bytes()
    code, _, err = run(
        capsys, "datasets", "prepare", "icdar2013", "--from", str(bad), "--dest", str(dest)
    )
    assert code == 2 and "does not match the known gt_IC13.zip" in err
    assert (dest / "test_gt.zip").read_bytes() == before


def test_prepare_is_atomic_on_a_bad_archive(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dest = tmp_path / "root"
    good = _zip(tmp_path / "good.zip", {f"test_gts/{k}": v for k, v in IC15_GT.items()})
    assert (
        run(capsys, "datasets", "prepare", "icdar2015", "--from", str(good), "--dest", str(dest))[0]
        == 0
    )
    before = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*"))
    evil = _zip(
        tmp_path / "evil.zip",
        {"train_gts/gt_img_9.txt": "1,1,2,1,2,2,1,2,a\n", "../escape.txt": "x"},
    )
    code, _, err = run(
        capsys,
        "datasets",
        "prepare",
        "icdar2015",
        "--from",
        str(good),
        "--from",
        str(evil),
        "--dest",
        str(dest),
    )
    assert code == 2 and "outside the dataset folder" in err
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == before
    assert not (tmp_path / "escape.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".root")] == []


def test_prepare_a_folder_and_root_resolution_order(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """data-root > $TCMBENCH_DATA/<name> > cache, seen through stats."""
    one = {"gt_img_1.txt": IC15_GT["gt_img_1.txt"]}
    src_cache, src_env = tmp_path / "a", tmp_path / "b"
    for folder, files in ((src_cache, IC15_GT), (src_env, one)):
        (folder / "test_gts").mkdir(parents=True)
        for k, v in files.items():
            (folder / "test_gts" / k).write_text(v)
    assert (
        run(capsys, "datasets", "prepare", "icdar2015", "--from", str(src_cache))[0] == 0
    )  # -> cache
    assert stats_json(capsys, "icdar2015")["images"] == 2
    monkeypatch.setenv(ds.DATA_ENV, str(tmp_path / "data"))
    assert (
        run(capsys, "datasets", "prepare", "icdar2015", "--from", str(src_env))[0] == 0
    )  # -> $TCMBENCH_DATA
    assert (tmp_path / "data" / "icdar2015" / "test_gts").is_dir()
    assert stats_json(capsys, "icdar2015")["images"] == 1
    explicit = tmp_path / "explicit"
    (explicit / "test_gts").mkdir(parents=True)
    (explicit / "test_gts" / "gt_img_7.txt").write_text("0,0,1,0,1,1,0,1,a\n0,0,2,0,2,2,0,2,b\n")
    st = stats_json(capsys, "icdar2015", "--data-root", str(explicit))
    assert (st["images"], st["instances"]) == (1, 2)


# --------------------------------------------------------------------------- show / list / export


def test_show_prints_the_yaml_facts_and_root(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "datasets", "show", "totaltext", "--data-root", str(tmp_path))
    assert code == 0
    assert "protocol: totaltext-iou (also: totaltext-deteval, tiou)" in out
    assert f"root:     {tmp_path}" in out
    assert "BSD-3-Clause" in out and "@article{CK2019" in out
    code, out, _ = run(capsys, "datasets", "show", "ctw1500", "--json", "-")
    info = json.loads(out)
    assert info["root"].startswith("not found: dataset 'ctw1500' not found")
    assert info["splits"]["test"]["expected"] == {"images": 500, "instances": 3068, "ignored": 0}
    assert info["prepare"] == "tcmbench datasets prepare ctw1500 --from ARCHIVE_OR_DIR"


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "datasets", "list", "--json", "-")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0
    assert rows["totaltext"]["protocol"] == "totaltext-iou" and rows["totaltext"]["present"] == "no"
    assert rows["hust-tr400"]["splits"] == ["train"]


def test_export_writes_hub_layout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import datasets

    root = tmp_path / "icdar2015"
    (root / "test_gts").mkdir(parents=True)
    for k, v in IC15_GT.items():
        (root / "test_gts" / k).write_text(v)
    out_dir = tmp_path / "out"
    code, out, err = run(
        capsys,
        "datasets",
        "export",
        "icdar2015",
        "--split",
        "test",
        "--out",
        str(out_dir),
        "--data-root",
        str(root),
    )
    assert code == 0, err
    assert "2 of 2 samples have no image" in err
    shard = out_dir / "data" / "test-00000-of-00001.parquet"
    assert shard.is_file() and str(shard) in out
    card = (out_dir / "README.md").read_text()
    assert "path: data/test-*" in card and "karatzas2015icdar" in card
    loaded = datasets.load_dataset(str(out_dir), split="test", cache_dir=str(tmp_path / "hf"))
    assert loaded["id"] == ["img_1", "img_2"]
    assert loaded["ignore"] == [[False, True], [False]]
    assert loaded["text"] == [["hello", None], ["world"]]  # the reader drops the ### marker


# --------------------------------------------------------------------------- start-up cost


def test_datasets_commands_do_not_import_torch(tmp_path: Path) -> None:
    gt = tmp_path / "gt"
    gt.mkdir()
    (gt / "gt_img_1.txt").write_text(IC15_GT["gt_img_1.txt"])
    code = f"""
import sys
import tcmbench.commands.datasets
assert 'torch' not in sys.modules, 'import tcmbench.commands.datasets imported torch'
from tcmbench.cli import main
main(['datasets', 'list'])
assert 'torch' not in sys.modules, 'datasets list imported torch'
main(['datasets', 'stats', 'icdar2015', '--data-root', {str(gt)!r}, '--json', '-'])
main(['datasets', 'show', 'icdar2015'])
assert 'torch' not in sys.modules, 'datasets stats/show imported torch'
print('NO-TORCH-OK')
"""
    env = {**os.environ}
    env.pop(ds.DATA_ENV, None)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "NO-TORCH-OK" in proc.stdout
