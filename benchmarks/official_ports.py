"""Build the Python 3 ports of the official scoring scripts that
``benchmarks/bench_eval.py`` times tcmbench against.

The scripts are not part of tcmbench (Python 2 code under their authors'
terms), so the repository holds only this recipe: point it at checkouts of
the two upstream repositories and it writes the three folders
``bench_eval.py`` takes (``--official-rrc``, ``--official-curved``,
``--official-deteval``):

    git clone https://github.com/Yuliang-Liu/TIoU-metric        # 1da1363, 2019-10-25
    git clone https://github.com/cs-chan/Total-Text-Dataset     # 9e8ff0a, 2023-08-29
    python benchmarks/official_ports.py --tiou-metric TIoU-metric \\
        --total-text Total-Text-Dataset --out /work/official

Each port is ``lib2to3`` of the original (Python 3.11 or 3.12: lib2to3 is
gone from 3.13) plus the few edits docs/benchmarks/eval.md lists:

- ``rrc`` (TIoU-metric's ICDAR 2015 ``script.py``): its two TIoU calls
  replaced by 0, which leaves the plain RRC computation; the per-sample
  ``iouRecall`` / ``iouPrecision`` that Python 2 carried over from the
  previous image set to 0 at each image; one line printing P / R / H at
  full precision.
- ``curved`` (``curved-tiou/script.py``): ``inp/2`` and ``num_points/2`` as
  integer divisions (Python 2's ``/`` on ints), the same two
  initialisations and the same added line.
- ``deteval`` (``Evaluation_Protocol/Python_scripts/Deteval.py`` with
  ``polygon_fast.py``): the prediction folder, the ground-truth folder and
  the result file taken from ``sys.argv`` instead of the empty strings the
  script leaves to be filled in.

Every edit must apply exactly once: a different upstream version stops the
script with the edit that did not fit, rather than timing something else.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

#: (file, old text, new text): the edits after lib2to3, each applied once.
FULL_PRECISION = "    print('full precision', methodPrecision, methodRecall, methodHmean)\n"
SAMPLE_INIT = "        detMatched_iou = 0 \n"
SAMPLE_INIT_NEW = SAMPLE_INIT + "        iouRecall = 0\n        iouPrecision = 0\n"
ORIGIN = "    print('Origin:')\n"

EDITS: dict[str, list[tuple[str, str, str]]] = {
    "rrc": [
        (
            "script.py",
            "= get_text_intersection_over_union_recall(pD,pG)",
            "= 0",
        ),
        (
            "script.py",
            "= get_text_intersection_over_union_precision(pD, pG, gtNum, gtPols, gtDontCarePolsNum)",
            "= 0",
        ),
        ("script.py", SAMPLE_INIT, SAMPLE_INIT_NEW),
        ("script.py", ORIGIN, FULL_PRECISION + ORIGIN),
    ],
    "curved": [
        ("script.py", "resBoxes[0, inp/2] =", "resBoxes[0, inp//2] ="),
        ("script.py", "resBoxes[0, inp/2+num_points/2] =", "resBoxes[0, inp//2+num_points//2] ="),
        ("script.py", ".reshape([2,num_points/2])", ".reshape([2,num_points//2])"),
        ("script.py", SAMPLE_INIT, SAMPLE_INIT_NEW),
        ("script.py", ORIGIN, FULL_PRECISION + ORIGIN),
    ],
    "deteval": [
        (
            "Deteval.py",
            "input_dir = '' #detection directory goes here",
            "import sys\ninput_dir = sys.argv[1] #detection directory goes here",
        ),
        (
            "Deteval.py",
            "gt_dir = '' #gt directory goes here",
            "gt_dir = sys.argv[2] #gt directory goes here",
        ),
        (
            "Deteval.py",
            "fid_path = '' #output text file directory goes here",
            "fid_path = sys.argv[3] #output text file directory goes here",
        ),
    ],
}

#: port -> (upstream checkout argument, files copied from it)
SOURCES = {
    "rrc": ("tiou_metric", ["script.py", "rrc_evaluation_funcs.py"]),
    "curved": ("tiou_metric", ["curved-tiou/script.py", "curved-tiou/rrc_evaluation_funcs.py"]),
    "deteval": (
        "total_text",
        [
            "Evaluation_Protocol/Python_scripts/Deteval.py",
            "Evaluation_Protocol/Python_scripts/polygon_fast.py",
        ],
    ),
}


class PortError(Exception):
    """An upstream file is missing or does not take an edit exactly once."""


def apply_edits(folder: Path, edits: list[tuple[str, str, str]]) -> None:
    """Apply ``edits`` to the files of ``folder``, each exactly once."""
    for name, old, new in edits:
        path = folder / name
        text = path.read_text(encoding="utf-8")
        found = text.count(old)
        if found != 1:
            raise PortError(f"{path}: expected {old!r} once, found it {found} times")
        path.write_text(text.replace(old, new), encoding="utf-8")


def build(upstream: dict[str, Path], out: Path) -> list[Path]:
    """Write the three ports under ``out`` (files of the same names there
    are overwritten, nothing else is touched); returns their folders."""
    done = []
    for port, (source, files) in SOURCES.items():
        folder = out / port
        folder.mkdir(parents=True, exist_ok=True)
        for rel in files:
            src = upstream[source] / rel
            if not src.is_file():
                raise PortError(f"{src}: not found (is {upstream[source]} the right checkout?)")
            shutil.copyfile(src, folder / Path(rel).name)
        subprocess.run(
            [sys.executable, "-W", "ignore", "-m", "lib2to3", "-w", "-n", str(folder)],
            check=True,
            capture_output=True,
        )
        apply_edits(folder, EDITS[port])
        done.append(folder)
    return done


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tiou-metric", type=Path, required=True, help="checkout of TIoU-metric")
    ap.add_argument("--total-text", type=Path, required=True, help="checkout of Total-Text-Dataset")
    ap.add_argument("--out", type=Path, required=True, help="folder for rrc/, curved/, deteval/")
    args = ap.parse_args()
    try:
        folders = build({"tiou_metric": args.tiou_metric, "total_text": args.total_text}, args.out)
    except (PortError, OSError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for folder in folders:
        print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
