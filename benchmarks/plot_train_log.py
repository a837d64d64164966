"""Plot the loss curve of a training run from its ``train_log.jsonl``.

The figure docs/benchmarks.md shows for the PP-OCRv3 fine-tune on
MSRA-TD500 comes from this script:

    python benchmarks/plot_train_log.py /work/runs/ppv3-ft/train_log.jsonl \\
        --out docs/benchmarks/ppocrv3-finetune-td500-loss.png \\
        --title "PP-OCRv3 (imported) fine-tuned on MSRA-TD500 train"

Every ``train`` event's total loss and its parts (``loss_*``) are drawn
against the step; the learning rate goes on a second axis. Needs matplotlib
(``pip install 'tcmbench[report]'``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_train_events(path: Path) -> list[dict[str, float]]:
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        if event.get("event") == "train":
            events.append(event)
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path, help="train_log.jsonl of a run")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--title", default=None)
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = read_train_events(args.log)
    if not events:
        raise SystemExit(f"{args.log}: no train events")
    steps = [e["step"] for e in events]
    parts = sorted(k for k in events[0] if k.startswith("loss"))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for key in parts:
        ax.plot(steps, [e[key] for e in events], label=key, linewidth=2 if key == "loss" else 1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (mean over the logging interval)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    lr_ax = ax.twinx()
    lr_ax.plot(steps, [e["lr"] for e in events], color="grey", linestyle=":", label="lr")
    lr_ax.set_ylabel("learning rate")
    lines = ax.get_legend_handles_labels()
    lr_lines = lr_ax.get_legend_handles_labels()
    ax.legend(lines[0] + lr_lines[0], lines[1] + lr_lines[1], fontsize=8, loc="upper right")
    ax.set_title(args.title or str(args.log), fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out} ({len(events)} points, steps {steps[0]}..{steps[-1]})")


if __name__ == "__main__":
    main()
