"""benchmarks/official_ports.py: the recipe for the official scripts' ports.

The upstream scripts are not in the repository, so these tests build small
stand-in checkouts holding exactly the lines each edit looks for (written as
Python 2, as upstream is) and check what the recipe makes of them: lib2to3
runs, every edit lands once, the ports run, and an upstream that differs
stops the recipe naming the file and the edit instead of timing something
else.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    sys.version_info >= (3, 13), reason="lib2to3, which the recipe runs, is gone from Python 3.13"
)


@pytest.fixture(scope="module")
def ports() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "official_ports", REPO / "benchmarks" / "official_ports.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# What the edits anchor on, in upstream's Python 2 and layout.
RRC_SCRIPT = """\
import sys
def get_text_intersection_over_union_recall(pD, pG):
    return 1
def get_text_intersection_over_union_precision(pD, pG, gtNum, gtPols, gtDontCarePolsNum):
    return 1
def evaluate():
    for resFile in [1, 2]:
        detMatched = 0
        detMatched_iou = 0\x20
        tiouRecallMat = {}
        tiouPrecisionMat = {}
        pD = pG = gtNum = gtPols = gtDontCarePolsNum = None
        tiouRecallMat[resFile] = get_text_intersection_over_union_recall(pD,pG)
        tiouPrecisionMat[resFile] = get_text_intersection_over_union_precision(pD, pG, gtNum, gtPols, gtDontCarePolsNum)
        print "tiou", tiouRecallMat[resFile], tiouPrecisionMat[resFile], iouRecall, iouPrecision
    methodPrecision, methodRecall, methodHmean = 0.5, 0.25, 1.0 / 3
    print('Origin:')
evaluate()
"""

CURVED_SCRIPT = """\
import numpy as np
def polygon(points):
    num_points = len(points)
    resBoxes = np.empty([1, num_points], dtype='int32')
    for inp in range(0, num_points, 2):
            resBoxes[0, inp/2] = float(points[inp])
            resBoxes[0, inp/2+num_points/2] = float(points[inp+1])
    pointMat = resBoxes[0].reshape([2,num_points/2]).T
    return pointMat
def evaluate():
    for resFile in [1]:
        detMatched_iou = 0\x20
        print "shape", polygon([1, 2, 3, 4, 5, 6]).shape, iouRecall, iouPrecision
    methodPrecision, methodRecall, methodHmean = 0.5, 0.25, 1.0 / 3
    print('Origin:')
evaluate()
"""

DETEVAL = """\
from os import listdir
input_dir = '' #detection directory goes here
gt_dir = '' #gt directory goes here
fid_path = '' #output text file directory goes here
print len(listdir(input_dir)), len(listdir(gt_dir))
open(fid_path, 'a').write('done')
"""


def fake_upstream(root: Path, *, rrc: str = RRC_SCRIPT) -> dict[str, Path]:
    tiou = root / "TIoU-metric"
    (tiou / "curved-tiou").mkdir(parents=True)
    (tiou / "script.py").write_text(rrc)
    (tiou / "rrc_evaluation_funcs.py").write_text("def load():\n    print 'funcs'\n")
    (tiou / "curved-tiou" / "script.py").write_text(CURVED_SCRIPT)
    (tiou / "curved-tiou" / "rrc_evaluation_funcs.py").write_text("x = 1\n")
    tt = root / "Total-Text-Dataset" / "Evaluation_Protocol" / "Python_scripts"
    tt.mkdir(parents=True)
    (tt / "Deteval.py").write_text(DETEVAL)
    (tt / "polygon_fast.py").write_text("def area(x, y):\n    return 0\n")
    return {"tiou_metric": tiou, "total_text": root / "Total-Text-Dataset"}


def run(script: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(script), *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=script.parent,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_ports_are_python_3_with_every_edit(ports: ModuleType, tmp_path: Path) -> None:
    folders = ports.build(fake_upstream(tmp_path / "up"), tmp_path / "out")
    assert [f.name for f in folders] == ["rrc", "curved", "deteval"]
    rrc = run(tmp_path / "out" / "rrc" / "script.py")
    # the TIoU calls are gone (0, not the functions' 1), the per-image
    # iouRecall / iouPrecision exist from the first image on, and the added
    # line prints the figures at full precision before 'Origin:'
    assert rrc.splitlines() == [
        "tiou 0 0 0 0",
        "tiou 0 0 0 0",
        f"full precision 0.5 0.25 {1.0 / 3!r}",
        "Origin:",
    ]
    curved = run(tmp_path / "out" / "curved" / "script.py")
    assert curved.splitlines()[0] == "shape (3, 2) 0 0"  # integer divisions
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    (pred / "img1.txt").write_text("")
    result = tmp_path / "result.txt"
    assert run(tmp_path / "out" / "deteval" / "Deteval.py", str(pred), str(gt), str(result)) == (
        "1 0\n"
    )
    assert result.read_text() == "done"
    assert (tmp_path / "out" / "deteval" / "polygon_fast.py").is_file()


def test_an_upstream_that_differs_stops_the_recipe(ports: ModuleType, tmp_path: Path) -> None:
    changed = RRC_SCRIPT.replace("get_text_intersection_over_union_recall(pD,pG)", "recall(pD, pG)")
    with pytest.raises(ports.PortError, match=r"script\.py: expected .*recall.* once, found it 0"):
        ports.build(fake_upstream(tmp_path / "up", rrc=changed), tmp_path / "out")
    twice = RRC_SCRIPT.replace("    print('Origin:')\n", "    print('Origin:')\n" * 2)
    with pytest.raises(ports.PortError, match="found it 2 times"):
        ports.build(fake_upstream(tmp_path / "up2", rrc=twice), tmp_path / "out2")


def test_a_missing_checkout_file_is_named(ports: ModuleType, tmp_path: Path) -> None:
    upstream = fake_upstream(tmp_path / "up")
    (upstream["total_text"] / "Evaluation_Protocol" / "Python_scripts" / "Deteval.py").unlink()
    with pytest.raises(ports.PortError, match=r"Deteval\.py: not found"):
        ports.build(upstream, tmp_path / "out")


def test_only_the_ports_own_files_are_written(ports: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "rrc").mkdir(parents=True)
    mine = out / "rrc" / "notes.txt"
    mine.write_text("keep me")
    ports.build(fake_upstream(tmp_path / "up"), out)
    assert mine.read_text() == "keep me"
    assert sorted(p.name for p in (out / "rrc").iterdir()) == [
        "notes.txt",
        "rrc_evaluation_funcs.py",
        "script.py",
    ]
