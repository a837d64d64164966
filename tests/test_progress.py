"""Long work is never silent (issue 19): heartbeats when the bar is off,
the first line of a model-loading command before torch is imported, and the
bench's timing note in words that agree with its counts."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from tiny_data import THRESHOLD_SPEC, TINY_RECIPE, TINY_SPEC, make_samples

from tcmbench.commands.bench import timing_note
from tcmbench.contract import registry as plugins
from tcmbench.contract.spec import DetectorConfig
from tcmbench.inference import predict_samples
from tcmbench.inference.heartbeat import (
    DEFAULT_HEARTBEAT_S,
    HEARTBEAT_ENV,
    Heartbeat,
    format_seconds,
    heartbeat_seconds,
)
from tcmbench.train.hyper import TrainConfig
from tcmbench.train.trainer import Trainer

# ------------------------------------------------------------ the heartbeat


class _Clock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_at_most_every_interval_with_elapsed_and_eta() -> None:
    clock, said = _Clock(), list[str]()
    beat = Heartbeat("train: step", 10, said.append, every=30, clock=clock)
    for step in range(1, 11):
        clock.now += 12  # 12 s a step: a line is due every third step
        beat.update(step, f"loss {step / 10:.4f}")
    assert len(said) == 3
    # 36 s for 3 steps: 12 s a step, 7 steps left -> 84 s
    assert said[0] == "train: step 3/10, 36 s elapsed, ETA 1 min 24 s, loss 0.3000"
    assert said[-1].startswith("train: step 9/10, 1 min 48 s elapsed")


def test_the_eta_counts_only_this_process_work() -> None:
    """A resumed run (start=90) must not read its 90 earlier steps as done
    in this process's few seconds."""
    clock, said = _Clock(), list[str]()
    beat = Heartbeat("train: step", 100, said.append, start=90, every=0, clock=clock)
    clock.now += 10
    beat.update(95)  # 5 steps in 10 s, 5 left
    assert said == ["train: step 95/100, 10 s elapsed, ETA 10 s"]


def test_a_disabled_heartbeat_says_nothing() -> None:
    said: list[str] = []
    beat = Heartbeat("x", 3, said.append, enabled=False, every=0)
    for k in range(3):
        beat.update(k + 1)
    assert said == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, DEFAULT_HEARTBEAT_S), ("0", 0.0), ("2.5", 2.5), ("", DEFAULT_HEARTBEAT_S)],
)
def test_the_interval_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str | None, expected: float
) -> None:
    if raw is None:
        monkeypatch.delenv(HEARTBEAT_ENV, raising=False)
    else:
        monkeypatch.setenv(HEARTBEAT_ENV, raw)
    assert heartbeat_seconds() == expected


@pytest.mark.parametrize("raw", ["soon", "-1", "nan", "inf"])
def test_a_bad_interval_is_logged_and_the_default_kept(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, raw: str
) -> None:
    monkeypatch.setenv(HEARTBEAT_ENV, raw)
    with caplog.at_level(logging.WARNING):
        assert heartbeat_seconds() == DEFAULT_HEARTBEAT_S
    assert HEARTBEAT_ENV in caplog.text and repr(raw) in caplog.text


def test_durations_read_short() -> None:
    assert format_seconds(42.4) == "42 s"
    assert format_seconds(185) == "3 min 05 s"
    assert format_seconds(3720) == "1 h 02 min"
    assert format_seconds(float("nan")) == "?"


# ------------------------------------------------ heartbeats in real runs


def test_training_without_the_bar_says_where_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HEARTBEAT_ENV, "0")
    samples = make_samples(tmp_path / "data", n=4)
    cfg = TrainConfig(
        datasets=["tiny"],
        output=str(tmp_path / "run"),
        device="cpu",
        workers=0,
        progress=False,
        tensorboard=False,
        steps=3,
        batch_size=2,
    )
    trainer = Trainer(TINY_SPEC, DetectorConfig(), TINY_RECIPE, cfg, samples)
    said: list[str] = []
    trainer.announce = said.append
    trainer.fit()
    beats = [s for s in said if s.startswith("train: step")]
    assert [b.split(",")[0] for b in beats] == [f"train: step {k}/3" for k in (1, 2, 3)]
    assert all(" elapsed, ETA " in b and ", loss " in b and ", lr " in b for b in beats)


def test_training_with_the_bar_sends_no_heartbeat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HEARTBEAT_ENV, "0")
    samples = make_samples(tmp_path / "data", n=4)
    cfg = TrainConfig(
        datasets=["tiny"],
        output=str(tmp_path / "run"),
        device="cpu",
        workers=0,
        progress=True,
        tensorboard=False,
        steps=2,
        batch_size=2,
    )
    trainer = Trainer(TINY_SPEC, DetectorConfig(), TINY_RECIPE, cfg, samples)
    said: list[str] = []
    trainer.announce = said.append
    trainer.fit()
    assert not [s for s in said if s.startswith("train: step")]


def test_inference_without_the_bar_counts_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HEARTBEAT_ENV, "0")
    samples = make_samples(tmp_path / "data", n=5)
    model = plugins.get_plugin_manager().hook.build_detector(
        spec=THRESHOLD_SPEC, config=DetectorConfig()
    )
    said: list[str] = []
    preds = predict_samples(
        model,
        samples,
        THRESHOLD_SPEC.recipe("default"),
        torch.device("cpu"),
        batch_size=2,
        progress=False,
        announce=said.append,
    )
    assert len(preds) == 5
    assert [s.split(",")[0] for s in said] == [f"predict: image {k}/5" for k in (2, 4, 5)]


# --------------------------------------------- the first line, before torch

# Runs the CLI with an observer on the import system: when anything first
# imports torch, it writes a marker to stderr and ends the process (the
# test needs nothing after that point, and skips the 8-10 s of loading).
_WATCH = textwrap.dedent(
    """
    import importlib.abc, os, sys

    class Watch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch":
                sys.stderr.write("<torch imported>\\n")
                sys.stderr.flush()
                os._exit(0)
            return None

    sys.meta_path.insert(0, Watch())
    from tcmbench.cli import main
    main(sys.argv[1:])
    """
)


@pytest.mark.parametrize(
    ("args", "first"),
    [
        (
            # Data and weights present (synthtext-mini is generated, its
            # weights ship): what is missing is said before this line
            # (tests/test_mission.py), everything else after it.
            ["evaluate", "--plugin", "dbnet", "--dataset", "synthtext-mini", "--no-progress"],
            "evaluate: dbnet on synthtext-mini test (loading the model...)",
        ),
        (
            ["predict", "photo.png", "--plugin", "dbnet", "--out", "preds"],
            "predict: dbnet on photo.png (loading the model...)",
        ),
        (
            ["train", "--plugin", "dbnet", "--dataset", "synthtext-mini", "--tcm"],
            "train: dbnet on synthtext-mini (TCM) (loading the model...)",
        ),
        (
            ["bench", "--plugin", "dbnet", "--resolution", "320x320"],
            "bench: dbnet at 320x320 (loading the model...)",
        ),
    ],
)
def test_the_first_line_comes_before_torch_is_imported(
    tmp_path: Path, args: list[str], first: str
) -> None:
    (tmp_path / "photo.png").write_bytes(b"")  # predict's argument must exist
    proc = subprocess.run(
        [sys.executable, "-c", _WATCH, *args],
        cwd=tmp_path,
        # The line is for a terminal; a captured stderr gets it when asked.
        env={**os.environ, "TCMBENCH_ANNOUNCE": "1"},
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Torch imported, or an error found before any loading (a missing
    # dataset, weights): either way after the announce line.
    lines = proc.stderr.splitlines()
    assert lines and lines[0] == first, proc.stderr
    assert "<torch imported>" in lines or proc.returncode != 0, proc.stderr


# ------------------------------------------------------- bench's grammar


def test_the_bench_timing_note_agrees_with_its_counts() -> None:
    assert timing_note(1, 1) == "1 run after 1 warm-up run"
    assert timing_note(5, 2) == "median of 5 runs after 2 warm-up runs"
    assert timing_note(3, 0) == "median of 3 runs after 0 warm-up runs"
    assert timing_note(0, 2) == "no timing (--runs 0)"
