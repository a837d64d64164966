"""Training: exact resume, gradient accumulation, DDP, few-shot subsets,
the data order, the poly schedule and the Ranger optimizer."""

from __future__ import annotations

import copy
import json
import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_data import TINY_RECIPE, TINY_SPEC, make_ic15_folder, make_samples

from tcmbench.contract.spec import DetectorConfig
from tcmbench.errors import CheckpointError, TcmbenchError
from tcmbench.train.eval_sets import load_train_samples
from tcmbench.train.hyper import TrainConfig
from tcmbench.train.optim import Ranger, build_optimizer
from tcmbench.train.recipe_choice import build_detector_config
from tcmbench.train.sampler import StepSampler, epoch_permutation, few_shot_subset
from tcmbench.train.schedule import PolyLR
from tcmbench.train.state import find_resume_dir, load_training_state
from tcmbench.train.trainer import Trainer


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def _cfg(out: Path, **kw) -> TrainConfig:
    base = {
        "datasets": ["tiny"],
        "output": str(out),
        "device": "cpu",
        "workers": 0,
        "progress": False,
        "log_every": 1,
    }
    base.update(kw)
    return TrainConfig(**base)


# ------------------------------------------------------------ exact resume


def _dbnet_recipe() -> dict:
    from tcmbench.contract.registry import get_detector

    spec = get_detector("dbnet")
    recipe = spec.recipe("synthtext-mini")
    recipe["model"] = {
        "backbone": "mobilenetv3_small",
        "pretrained_backbone": False,
        "options": {"lateral_channels": 16, "min_text_size": 2},
    }
    recipe["train"] = {"augment": TINY_RECIPE["train"]["augment"], "pad_divisor": 32}
    return spec, recipe


@pytest.mark.parametrize(
    ("optimizer", "steps", "stop", "workers"), [("adam", 4, 2, 0), ("ranger", 8, 4, 1)]
)
def test_resume_equals_uninterrupted_training(
    tmp_path: Path, optimizer: str, steps: int, stop: int, workers: int
) -> None:
    """DBNet (small backbone, batch norm, dropout-free) trained for ``steps``
    straight vs. resumed from the checkpoint written at ``stop``: identical
    final weights. Ranger's Lookahead sync (every 6 steps) falls after the
    resume point, so its slow weights must have been restored too."""
    spec, recipe = _dbnet_recipe()
    recipe["optimizer"] = {"name": optimizer, "lr": 1e-3, "weight_decay": 1e-4}
    samples = make_samples(tmp_path / "data", n=5)
    kw = {
        "steps": steps,
        "batch_size": 2,
        "save_every": stop,
        "keep_checkpoints": 0,
        "workers": workers,
    }
    straight = _cfg(tmp_path / "straight", **kw)
    dc = build_detector_config(straight, recipe)
    Trainer(spec, dc, recipe, straight, samples).fit()

    ckpt = find_resume_dir(tmp_path / "straight" / "checkpoints" / f"step-{stop:07d}")
    assert load_training_state(ckpt)["step"] == stop
    resumed = _cfg(tmp_path / "resumed", **kw)
    torch.manual_seed(1234)  # a resumed process starts with other RNG states
    np.random.seed(99)
    Trainer(
        spec, build_detector_config(resumed, recipe), recipe, resumed, samples, resume_dir=ckpt
    ).fit()

    a, b = _weights(tmp_path / "straight" / "final"), _weights(tmp_path / "resumed" / "final")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][
        :5
    ]
    # and training did move the weights
    first = _weights(ckpt)
    assert any(not torch.equal(first[k], a[k]) for k in a)
    start = json.loads((tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()[0])
    assert start["start_step"] == stop


def test_resume_from_a_run_folder_picks_the_latest_checkpoint(tmp_path: Path) -> None:
    samples = make_samples(tmp_path / "data", n=4)
    cfg = _cfg(tmp_path / "run", steps=3, batch_size=2, save_every=1, keep_checkpoints=2)
    Trainer(TINY_SPEC, DetectorConfig(), TINY_RECIPE, cfg, samples).fit()
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept == ["step-0000002", "step-0000003"]
    assert find_resume_dir(tmp_path / "run").name == "step-0000003"
    with pytest.raises(CheckpointError, match="no training checkpoint"):
        find_resume_dir(tmp_path / "run" / "final")


def test_truncated_training_state_is_a_clear_error(tmp_path: Path) -> None:
    samples = make_samples(tmp_path / "data", n=2)
    Trainer(
        TINY_SPEC,
        DetectorConfig(),
        TINY_RECIPE,
        _cfg(tmp_path / "run", steps=1, save_every=1),
        samples,
    ).fit()
    state = tmp_path / "run" / "checkpoints" / "step-0000001" / "training_state.pt"
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or not a tcmbench training state"):
        load_training_state(state.parent)


# ------------------------------------------- accumulation, DDP, few-shot


def test_gradient_accumulation_matches_one_large_batch(tmp_path: Path) -> None:
    samples = make_samples(tmp_path / "data", n=6)
    torch.manual_seed(0)
    big = _cfg(tmp_path / "big", steps=3, batch_size=4, accumulate=1)
    small = _cfg(tmp_path / "small", steps=3, batch_size=2, accumulate=2)
    Trainer(TINY_SPEC, DetectorConfig(), TINY_RECIPE, big, samples).fit()
    Trainer(TINY_SPEC, DetectorConfig(), TINY_RECIPE, small, samples).fit()
    a, b = _weights(tmp_path / "big" / "final"), _weights(tmp_path / "small" / "final")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    # a different batch composition gives different weights: the test can fail
    other = _cfg(tmp_path / "other", steps=3, batch_size=2, accumulate=1)
    Trainer(TINY_SPEC, DetectorConfig(), TINY_RECIPE, other, samples).fit()
    c = _weights(tmp_path / "other" / "final")
    assert any(not torch.allclose(a[k], c[k], atol=1e-6) for k in a)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str, data: str) -> None:
    # A forked child must not start OpenMP threads (GNU libgomp hangs when
    # the parent already had a pool): one thread, first thing.
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    import torch.distributed as dist
    from tiny_data import make_samples as _make

    samples = _make(Path(data), n=6)
    try:
        cfg = TrainConfig(
            datasets=["tiny"],
            output=out,
            device="cpu",
            workers=0,
            progress=False,
            steps=3,
            batch_size=1,
            save_every=3,
        )
        Trainer(TINY_SPEC, DetectorConfig(), TINY_RECIPE, cfg, samples).fit()
    finally:
        dist.destroy_process_group()


def test_ddp_two_cpu_processes_match_one_process(tmp_path: Path) -> None:
    """torchrun-style env (gloo on CPU): 2 processes x batch 1 see the same
    images as 1 process x batch 2 and end with the same weights."""
    import torch.multiprocessing as mp

    make_samples(tmp_path / "data", n=6)
    # fork: no re-import of torch in the children (seconds on a busy 2-core box)
    mp.start_processes(
        _ddp_worker,
        args=(2, _free_port(), str(tmp_path / "ddp"), str(tmp_path / "data")),
        nprocs=2,
        start_method="fork",
    )
    single = _cfg(tmp_path / "single", steps=3, batch_size=2)
    Trainer(
        TINY_SPEC, DetectorConfig(), TINY_RECIPE, single, make_samples(tmp_path / "data", n=6)
    ).fit()
    a, b = _weights(tmp_path / "ddp" / "final"), _weights(tmp_path / "single" / "final")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    state = load_training_state(tmp_path / "ddp" / "checkpoints" / "step-0000003")
    assert state["world_size"] == 2 and len(state["rng"]) == 2


def test_few_shot_subsets_are_deterministic_and_nested() -> None:
    items = list(range(100))
    a = few_shot_subset(items, 0.1, seed=3)
    assert a == few_shot_subset(items, 0.1, seed=3) and len(a) == 10 and a == sorted(a)
    assert a != few_shot_subset(items, 0.1, seed=4)
    assert set(a) <= set(few_shot_subset(items, 0.3, seed=3))
    assert few_shot_subset(items, 0.001, seed=0) and len(few_shot_subset(items, 0.001, seed=0)) == 1
    assert few_shot_subset(items, 1.0, seed=5) == items
    with pytest.raises(ValueError):
        few_shot_subset(items, 0.0, seed=0)


def test_train_fraction_picks_the_same_images_from_a_dataset(tmp_path: Path) -> None:
    root = make_ic15_folder(tmp_path / "ic15", n_train=10, n_test=1)
    pick = [s.id for s in load_train_samples(["icdar2015"], str(root), 0.3, seed=7)]
    again = [s.id for s in load_train_samples(["icdar2015"], str(root), 0.3, seed=7)]
    full = [s.id for s in load_train_samples(["icdar2015"], str(root), 1.0, seed=7)]
    assert pick == again and len(pick) == 3 and set(pick) < set(full) and len(full) == 10


# ------------------------------------------------------------- data order


def test_step_sampler_order_is_a_function_of_seed_and_position() -> None:
    n, b = 7, 3
    full = list(StepSampler(n, b, seed=1, start_micro_step=0, end_micro_step=6))
    # draws are consecutive stream positions; each epoch is a permutation
    assert [d for _, d in full] == list(range(18))
    for e in range(2):
        assert sorted(i for i, d in full if e * n <= d < (e + 1) * n) == list(range(n))
    assert [i for i, _ in full[:n]] == list(epoch_permutation(n, 1, 0))
    # resuming at micro-step 4 gives the tail of the uninterrupted order
    assert list(StepSampler(n, b, 1, 4, 6)) == full[4 * b :]
    # two ranks with batch b split the stream of one rank with batch 2b
    one = list(StepSampler(n, 2 * b, 1, 0, 3))
    r0, r1 = list(StepSampler(n, b, 1, 0, 3, 0, 2)), list(StepSampler(n, b, 1, 0, 3, 1, 2))
    merged = [x for m in range(3) for x in r0[m * b : (m + 1) * b] + r1[m * b : (m + 1) * b]]
    assert merged == one
    assert list(StepSampler(n, b, 2, 0, 6)) != full


# -------------------------------------------------------------- schedule


def test_poly_lr_per_step_and_per_epoch() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p], "lr": 1e-2}], lr=1e-2)
    sched = PolyLR(opt, total_steps=10, power=0.9, min_lr=1e-7, by="step")
    sched.apply(5)
    assert opt.param_groups[0]["lr"] == pytest.approx((1e-2 - 1e-7) * 0.5**0.9 + 1e-7)
    sched.apply(10)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-7)
    # per epoch: 2.5 steps per epoch, 10 steps = 4 epochs; step 4 is in epoch 1
    opt2 = torch.optim.SGD([{"params": [p], "lr": 1e-2}], lr=1e-2)
    ep = PolyLR(opt2, total_steps=10, by="epoch", steps_per_epoch=2.5)
    lrs = []
    for s in range(10):
        ep.apply(s)
        lrs.append(opt2.param_groups[0]["lr"])
    assert lrs[0] == lrs[2] == pytest.approx(1e-2)
    assert lrs[3] == lrs[4] == pytest.approx((1e-2 - 1e-7) * 0.75**0.9 + 1e-7)
    assert lrs[5] == pytest.approx((1e-2 - 1e-7) * 0.5**0.9 + 1e-7)


def test_lr_factors_carry_through_the_schedule(tmp_path: Path) -> None:
    from tcmbench.contract.registry import get_plugin_manager

    model = get_plugin_manager().hook.build_detector(spec=TINY_SPEC, config=DetectorConfig())
    model.backbone.lr_factor = 0.1
    opt = build_optimizer("adamw", model.param_groups(1e-3, 1e-4), 1e-3, 1e-4)
    sched = PolyLR(opt, total_steps=4, by="step")
    sched.apply(2)
    by_factor = {g["lr_factor"]: g["lr"] for g in opt.param_groups}
    assert by_factor[0.1] == pytest.approx((1e-4 - 1e-7) * 0.5**0.9 + 1e-7)
    assert by_factor[1.0] == pytest.approx((1e-3 - 1e-7) * 0.5**0.9 + 1e-7)
    assert all(g["weight_decay"] == 0.0 for g in opt.param_groups if g["params"][0].ndim == 1)


# ---------------------------------------------------------------- Ranger


def test_ranger_without_lookahead_and_centralisation_is_radam() -> None:
    torch.manual_seed(0)
    w0 = torch.randn(5, 3)
    a, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(w0.clone())
    ours = Ranger([a], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, k=10**6, gc=False)
    ref = torch.optim.RAdam([b], lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    target = torch.randn(5, 3)
    for _ in range(12):  # crosses the rho_t > 5 switch at step 6
        for p, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            ((p - target) ** 2).sum().backward()
            opt.step()
    torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6)


def test_ranger_lookahead_pulls_fast_weights_halfway_back() -> None:
    torch.manual_seed(0)
    w0 = torch.randn(4)
    p, q = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(w0.clone())
    look = Ranger([p], lr=0.1, k=3, alpha=0.5, gc=False)
    plain = Ranger([q], lr=0.1, k=10**6, gc=False)
    for _ in range(3):
        for x, opt in ((p, look), (q, plain)):
            opt.zero_grad()
            (x**2).sum().backward()
            opt.step()
    # after k = 3 identical fast steps: slow = w0 + 0.5 * (fast - w0)
    torch.testing.assert_close(p.detach(), w0 + 0.5 * (q.detach() - w0))
    assert torch.equal(look.state[p]["slow"], p.detach())
    # and the state (slow weights included) survives a state_dict round trip
    p2 = torch.nn.Parameter(p.detach().clone())
    again = Ranger([p2], lr=0.1, k=3, alpha=0.5, gc=False)
    again.load_state_dict(copy.deepcopy(look.state_dict()))  # as if read from disk
    for x, opt in ((p, look), (p2, again)):
        for _ in range(4):
            opt.zero_grad()
            (x**2).sum().backward()
            opt.step()
    assert torch.equal(p.detach(), p2.detach())


def test_unknown_optimizer_is_a_clear_error() -> None:
    with pytest.raises(TcmbenchError, match="unknown optimizer 'lamb'"):
        build_optimizer("lamb", [{"params": [torch.nn.Parameter(torch.zeros(1))]}], 1e-3, 0.0)


# ------------------------------------------------------------ bad input


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from tcmbench.cli import main

    with pytest.raises(SystemExit) as exc:
        main(
            [
                "train",
                "--plugin",
                "dbnet",
                "--dataset",
                "icdar2015",
                "--device",
                "cuda",
                "--output",
                str(tmp_path / "x"),
                "--steps",
                "1",
            ]
        )
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--device cuda asked for CUDA" in err and "Traceback" not in err


def test_unsupported_image_type_fails_before_training(tmp_path: Path) -> None:
    from tcmbench.errors import ImageReadError

    samples = make_samples(tmp_path / "data", n=2)
    odd = tmp_path / "data" / "s1.xcf"
    odd.write_bytes(b"gimp")
    samples[1].image_path = str(odd)
    with pytest.raises(ImageReadError, match=r"s1.xcf: unsupported image type '\.xcf'"):
        Trainer(
            TINY_SPEC, DetectorConfig(), TINY_RECIPE, _cfg(tmp_path / "run", steps=1), samples
        ).fit()


def test_missing_image_in_a_loader_worker_is_one_clean_message(tmp_path: Path) -> None:
    from tcmbench.errors import ImageReadError

    samples = make_samples(tmp_path / "data", n=2)
    Path(samples[0].image_path).unlink()
    samples[1].image_path = samples[0].image_path
    cfg = _cfg(tmp_path / "run", steps=1, workers=1)
    with pytest.raises(ImageReadError) as exc:
        Trainer(TINY_SPEC, DetectorConfig(), TINY_RECIPE, cfg, samples).fit()
    assert str(exc.value).startswith("image not found:") and "Traceback" not in str(exc.value)


def test_epochs_convert_to_steps_with_the_effective_batch() -> None:
    from tcmbench.train.hyper import resolve_hyper

    cfg = TrainConfig(epochs=2, batch_size=4, accumulate=2)
    h = resolve_hyper(
        cfg, {"optimizer": {"name": "adam", "lr": 1e-4}}, num_samples=100, world_size=2
    )
    assert h.total_steps == math.ceil(2 * 100 / 16) and h.optimizer == "adam" and h.lr == 1e-4
    with pytest.raises(TcmbenchError, match="how long to train"):
        resolve_hyper(TrainConfig(), {}, 10, 1)
