"""The trainer: one code path for a single process and for torchrun DDP.

What a run does is fixed by a :class:`TrainConfig` (the command line) merged
with the detector's recipe for the dataset (:func:`resolve_hyper`). Data
comes from :class:`tcmbench.train.sampler.StepSampler`, so optimizer step
``s`` always sees the same images with the same augmentation. Together with
the saved optimizer / scheduler / scaler / RNG states this makes
``--resume`` continue exactly: a run interrupted at step k and resumed ends
with the same weights as the uninterrupted run.

Layout of the output folder::

    OUT/train_log.jsonl          one JSON line per log / eval event
    OUT/tensorboard/             the same scalars as TensorBoard event files
    OUT/checkpoints/step-NNNNNNN checkpoint + training_state.pt (--save-every)
    OUT/best                     the best checkpoint on the VALIDATION split
                                 (--val-fraction); a test split never selects
    OUT/final                    the checkpoint at the last step (always)
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcmbench.data.schema import Sample
from tcmbench.errors import TcmbenchError
from tcmbench.train.eval_sets import EvalSet
from tcmbench.train.hyper import (
    _BAR_FORMAT,
    LEGACY_NO_DECAY,
    TrainConfig,
    TrainingDivergedError,
    resolve_hyper,
    too_short,
    too_short_message,
)

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    output: Path
    final: Path | None
    step: int
    losses: dict[str, float]
    evals: list[dict[str, Any]]
    seconds: float
    # best/ and what it was chosen on (validation split, step, hmean); None
    # when no validation split was evaluated (best/ is then not written).
    best: Path | None = None
    best_selected_on: dict[str, Any] | None = None


# --------------------------------------------------------------------------
# Data


class Trainer:
    """Trains ``spec``'s detector on ``train_samples``. Library entry point;
    :func:`run_training` builds one from a :class:`TrainConfig`."""

    def __init__(
        self,
        spec: Any,
        detector_config: Any,
        recipe: Mapping[str, Any],
        cfg: TrainConfig,
        train_samples: Sequence[Sample],
        eval_sets: Sequence[EvalSet] = (),
        resume_dir: Path | None = None,
    ) -> None:
        from tcmbench.inference.world import init_distributed, resolve_device

        self.spec = spec
        self.detector_config = detector_config
        self.recipe = dict(recipe)
        self.cfg = cfg
        self.train_samples = list(train_samples)
        self.eval_sets = list(eval_sets)
        self.resume_dir = resume_dir
        self.device = resolve_device(cfg.device)
        self.world = init_distributed(self.device)
        self.hyper = resolve_hyper(cfg, self.recipe, len(self.train_samples), self.world.world_size)
        self.output = Path(cfg.output or "runs/train")
        self.use_amp = bool(cfg.amp) and self.device.type == "cuda"
        # best/: the mean hmean over the validation sets at its step, and
        # what it was chosen on (None until a validation eval wrote it).
        self.best_hmean = -1.0
        self.best_info: dict[str, Any] | None = None
        self.evals: list[dict[str, Any]] = []
        self.latest_hmean: float | None = None
        # Where user-facing reports (the --init-from key table, warnings)
        # go: the CLI passes click.echo, library use logs them.
        self.announce: Any = log.info
        self.init_report: Any = None
        # Share of the parameter values --init-from's load started trained
        # (None: not a fine-tune); carried over by --resume.
        self.init_share: float | None = None
        # The recipe's provenance (recipe_choice.RecipeChoice.record()),
        # set by run_training; recorded in the log and every checkpoint.
        self.recipe_record: dict[str, Any] | None = None
        # Seconds the run had trained before this process (--resume).
        self.elapsed_offset = 0.0
        self._t0 = time.monotonic()
        from tcmbench.train.tblog import TensorBoardLog

        self.tensorboard = TensorBoardLog()

    def warn(self, message: str) -> None:
        """A warning for the user (main rank only): ``announce``d with a
        ``warning:`` prefix, or logged as a warning in library use."""
        if not self.world.is_main:
            return
        if self.announce == log.info:
            log.warning("%s", message)
        else:
            log.debug("warning: %s", message)
            self.announce(f"warning: {message}")

    @property
    def validation_sets(self) -> list[EvalSet]:
        return [es for es in self.eval_sets if es.role == "validation"]

    # ---- building -------------------------------------------------------
    def _build(self) -> None:
        import torch

        from tcmbench.contract.registry import get_plugin_manager
        from tcmbench.train.optim import build_optimizer
        from tcmbench.train.schedule import PolyLR

        h = self.hyper
        state = None
        if self.resume_dir is None:
            torch.manual_seed(self.cfg.seed)  # same initial weights on every rank
        else:
            from tcmbench.train.state import load_training_state

            state = load_training_state(self.resume_dir)
            saved_hyper = state.get("hyper") or {}
            if "no_decay" not in saved_hyper:
                self._resume_legacy()
        self.model = get_plugin_manager().hook.build_detector(
            spec=self.spec, config=self.detector_config
        )
        if self.cfg.init_from and self.resume_dir is None:
            from tcmbench.train.init_from import MIN_INIT_SHARE, init_weights

            self.init_report = init_weights(
                self.model,
                self.cfg.init_from,
                self.spec,
                self.detector_config,
                min_share=None if self.cfg.allow_partial_init else MIN_INIT_SHARE,
            )
            self.init_share = self.init_report.share_filled
            if self.world.is_main:
                self.announce(self.init_report.table())
        self.model.to(self.device)
        from tcmbench.train.train_only import TrainOnly, describe, held_parameters

        self.train_only = TrainOnly(list(h.train_only_prefixes), h.train_only_steps)
        self._held = held_parameters(self.model, self.train_only)
        if self.train_only.steps and self.world.is_main:
            self.announce(describe(self.model, self.train_only))
        self.optimizer = build_optimizer(
            h.optimizer,
            self.model.param_groups(h.lr, h.weight_decay, h.no_decay),
            h.lr,
            h.weight_decay,
            h.momentum,
        )
        per_step = h.batch_size * h.accumulate * self.world.world_size
        self.scheduler = PolyLR(
            self.optimizer,
            h.total_steps,
            h.lr_power,
            h.min_lr,
            h.lr_by,
            steps_per_epoch=len(self.train_samples) / per_step,
            warmup=h.warmup,
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.start_step = 0
        if self.resume_dir is not None and state is not None:
            self._restore(self.resume_dir, state)
        self.net: Any = self.model
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)

    def _resume_legacy(self) -> None:
        """A checkpoint saved before the exempt set and the augmentation
        order were configurable continues as it was trained: norm layers
        and biases exempt (its optimizer state has those groups) and
        normalisation after all augmentations, unless set explicitly."""
        if self.cfg.no_decay is None:
            self.hyper.no_decay = list(LEGACY_NO_DECAY)
        train = dict(self.recipe.get("train") or {})
        train.setdefault("normalize_at", "end")
        self.recipe["train"] = train
        log.info(
            "checkpoint predates issue 9: resuming with no_decay %s, train.normalize_at %s",
            self.hyper.no_decay,
            train["normalize_at"],
        )

    def _restore(self, step_dir: Path, state: Mapping[str, Any]) -> None:
        from tcmbench.train.state import load_model_weights, restore_rng_state

        load_model_weights(self.model, step_dir)
        self.model.to(self.device)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.start_step = int(state["step"])
        self.evals = list(state.get("evals", []))
        share = state.get("init_share")
        if isinstance(share, (int, float)):
            self.init_share = float(share)
        elif self.cfg.init_from:  # saved before the share was recorded: a fine-tune
            self.init_share = 1.0
        elapsed = state.get("elapsed_s")
        if not isinstance(elapsed, (int, float)):  # saved before it was recorded
            from tcmbench.train.runlog import LOG_NAME, elapsed_at

            elapsed = elapsed_at(self.output / LOG_NAME, self.start_step)
        self.elapsed_offset = float(elapsed or 0.0)
        if "best" in state:
            self.best_info = dict(state["best"]) if state["best"] else None
            self.best_hmean = float(state.get("best_hmean", -1.0))
        # else: saved when best/ followed any eval (a test split included);
        # such a choice is not carried over.
        rngs = state.get("rng") or []
        if len(rngs) == self.world.world_size:
            restore_rng_state(rngs[self.world.rank])
        elif rngs:
            log.warning(
                "resuming with %d processes, saved with %d: RNG states not restored",
                self.world.world_size,
                len(rngs),
            )
        log.info("resumed from %s at step %d", step_dir, self.start_step)

    def _loader(self) -> Any:
        import torch
        from torch.utils.data import DataLoader

        from tcmbench.data.torch_data import TrainDataset, collate
        from tcmbench.data.transforms import TrainTransform
        from tcmbench.train.sampler import StepSampler

        h = self.hyper
        dataset = TrainDataset(
            self.train_samples,
            TrainTransform.from_recipe(self.recipe),
            self.model.target_builder,
            seed=self.cfg.seed,
            cache_images=h.cache_images,
        )
        sampler = StepSampler(
            len(dataset),
            h.batch_size,
            self.cfg.seed,
            self.start_step * h.accumulate,
            h.total_steps * h.accumulate,
            self.world.rank,
            self.world.world_size,
        )
        return DataLoader(
            # A map-style dataset (__len__ / __getitem__) that does not
            # subclass torch's Dataset: torch_data imports no torch.
            dataset,  # type: ignore[arg-type]
            batch_size=h.batch_size,
            sampler=sampler,
            num_workers=h.workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            # The loader draws its worker seed from this generator, not from
            # the global RNG, so creating it does not shift the RNG stream.
            generator=torch.Generator().manual_seed(self.cfg.seed),
        )

    # ---- the loop --------------------------------------------------------
    @property
    def fine_tune(self) -> bool:
        """Whether the run starts from trained weights: --init-from filled
        at least MIN_INIT_SHARE of the parameter values."""
        from tcmbench.train.init_from import MIN_INIT_SHARE

        return self.init_share is not None and self.init_share >= MIN_INIT_SHARE

    def too_short(self) -> dict[str, Any] | None:
        """:func:`too_short` for a run from scratch; None for a fine-tune,
        whose minimum is not the from-scratch one (it starts from what its
        weights already detect)."""
        if self.fine_tune:
            return None
        return too_short(self.hyper, self.world.world_size)

    def _rewind_log(self) -> None:
        """On --resume: say from which step the run continues and how many
        steps the interruption lost, and drop the log rows of those steps
        (:func:`tcmbench.train.runlog.rewind`)."""
        from tcmbench.train.runlog import LOG_NAME, rewind

        found = rewind(self.output / LOG_NAME, self.start_step)
        lost = found.lost_steps(self.start_step)
        where = (
            f"resuming from step {self.start_step} of {self.hyper.total_steps} ({self.resume_dir})"
        )
        if lost:
            self.announce(
                f"{where}: the interrupted run had logged up to step {found.last_logged_step}, "
                f"so {lost} step(s) after the checkpoint are lost and trained again "
                f"({found.dropped_rows} row(s) dropped from {LOG_NAME}); elapsed time "
                f"continues from {self.elapsed_offset:.1f} s"
            )
        else:
            self.announce(
                f"{where}: no step was lost (nothing logged after the checkpoint"
                + (f"; {found.dropped_rows} unfinished row dropped" if found.dropped_rows else "")
                + f"); elapsed time continues from {self.elapsed_offset:.1f} s"
            )

    def fit(self) -> TrainResult:
        short = self.begin()
        try:
            if self.cfg.tensorboard and self.world.is_main:
                self.tensorboard.open(self.output, self.start_step, self.warn)
            return self._loop(short)
        finally:
            self.tensorboard.close()

    def begin(self) -> dict[str, Any] | None:
        """Everything before the first step: build (and load --init-from's
        weights or the resumed state), say where a resumed run continues,
        log the start event and warn about the run. Returns the too-short
        description (None when the run is long enough or fine-tunes)."""
        self._build()
        h, w = self.hyper, self.world
        short = self.too_short()
        if w.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
            if self.resume_dir is not None:
                self._rewind_log()
            self._log_event(
                {
                    "event": "start",
                    "config": self.cfg.to_dict(),
                    "hyper": h.to_dict(),
                    "world_size": w.world_size,
                    "device": str(self.device),
                    "start_step": self.start_step,
                    "train_images": len(self.train_samples),
                    "eval_sets": [
                        {
                            "dataset": es.name,
                            "split": es.split,
                            "role": es.role,
                            "images": len(es.samples),
                            "description": es.description,
                        }
                        for es in self.eval_sets
                    ],
                    "elapsed_s": round(self.elapsed_offset, 2),
                    **(short or {}),
                    **({"too_short_check": "skipped: fine-tune"} if self.fine_tune else {}),
                    **(
                        {"init_from": self.init_report.to_dict()}
                        if self.init_report is not None
                        else {}
                    ),
                    **({"recipe_choice": self.recipe_record} if self.recipe_record else {}),
                }
            )
        if short:
            self.warn(too_short_message(h, short, w.world_size))
        elif self.fine_tune and too_short(h, w.world_size):
            log.info(
                "too-short check skipped: the run fine-tunes --init-from's weights (%.0f%% of "
                "the parameter values start trained); the minimum is for training from scratch",
                100 * (self.init_share or 0.0),
            )
        if self.eval_sets and not self.validation_sets:
            self.warn(
                "no validation split: best/ is not written (a test split never chooses a "
                "checkpoint); give --val-fraction F to hold out training images for it"
            )
        return short

    def _loop(self, short: dict[str, Any] | None) -> TrainResult:
        from tqdm.auto import tqdm

        from tcmbench.inference.heartbeat import Heartbeat

        h, w = self.hyper, self.world
        self._train_mode()
        batches = iter(self._loader())
        t0 = self._t0 = time.monotonic()
        bar = tqdm(
            total=h.total_steps,
            initial=self.start_step,
            desc="train",
            unit="step",
            disable=not (self.cfg.progress and w.is_main),
            dynamic_ncols=True,
            bar_format=_BAR_FORMAT,
        )
        # Without the bar, a line now and then (at most every 30 s by default).
        beat = Heartbeat(
            "train: step",
            h.total_steps,
            self.announce,
            enabled=not self.cfg.progress and w.is_main,
            start=self.start_step,
        )
        last_losses: dict[str, float] = {}
        window: dict[str, Any] = {}
        window_n = 0
        step = self.start_step
        try:
            while step < h.total_steps:
                terms = self._train_step(batches, step + 1)
                step += 1
                self.scheduler.apply(step)
                for k, v in terms.items():
                    window[k] = window.get(k, 0.0) + v
                window_n += 1
                lr = self.optimizer.param_groups[0]["lr"]
                # This process's running mean until the next log step (cheap:
                # no cross-process reduction every step).
                bar.set_postfix(self._postfix(window["loss"] / window_n, lr), refresh=False)
                bar.update(1)
                beat.update(step, f"loss {window['loss'] / window_n:.4f}, lr {lr:.2e}")
                if step % max(1, self.cfg.log_every) == 0 or step == h.total_steps:
                    last_losses = self._reduce({k: v / window_n for k, v in window.items()})
                    window, window_n = {}, 0
                    bar.set_postfix(self._postfix(last_losses.get("loss", math.nan), lr))
                    if w.is_main:
                        self._log_event(
                            {
                                "event": "train",
                                "step": step,
                                "lr": lr,
                                **last_losses,
                                "elapsed_s": round(self.elapsed(), 2),
                            }
                        )
                        self.tensorboard.train(step, lr, last_losses)
                if self.eval_sets and (
                    (h.eval_every and step % h.eval_every == 0) or step == h.total_steps
                ):
                    self._evaluate(step)
                    self._train_mode()  # inference switched every layer to train mode
                    # The evaluation pause is not training time: keep it out
                    # of the rate the ETA is computed from.
                    bar.unpause()
                    shown = window["loss"] / window_n if window_n else last_losses.get("loss")
                    bar.set_postfix(self._postfix(math.nan if shown is None else shown, lr))
                if h.save_every and step % h.save_every == 0:
                    self._save_step(step)
        finally:
            bar.close()
        final = self._save_final(step, short)
        return TrainResult(
            self.output,
            final,
            step,
            last_losses,
            self.evals,
            time.monotonic() - t0,
            best=Path(self.best_info["path"]) if self.best_info else None,
            best_selected_on=self.best_info,
        )

    def elapsed(self) -> float:
        """Seconds this run has trained, over interruptions (--resume)."""
        return self.elapsed_offset + time.monotonic() - self._t0

    def _train_mode(self) -> None:
        """Train mode; with ``norm_eval`` the BatchNorm layers stay in eval
        mode: their running statistics, which a small fine-tuning batch
        would overwrite with noisy ones, stay frozen (their affine weights
        still train)."""
        from torch.nn.modules.batchnorm import _BatchNorm

        self.net.train()
        if self.hyper.norm_eval:
            for module in self.model.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()

    def _postfix(self, loss: float, lr: float) -> dict[str, str]:
        """Progress-bar postfix: loss, learning rate, latest hmean."""
        out = {"loss": f"{loss:.4f}", "lr": f"{lr:.2e}"}
        if self.latest_hmean is not None:
            out["hmean"] = f"{self.latest_hmean:.4f}"
        return out

    def _train_step(self, batches: Any, step: int = 0) -> dict[str, float]:
        """One optimizer step (number ``step``, 1-based) over ``accumulate``
        micro-batches."""
        import torch

        h = self.hyper
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, Any] = {}
        for k in range(h.accumulate):
            batch = _next_batch(batches)
            images = batch["images"].to(self.device, non_blocking=True)
            targets = {n: t.to(self.device, non_blocking=True) for n, t in batch["targets"].items()}
            sync = k == h.accumulate - 1
            ctx = (
                self.net.no_sync()
                if (self.world.distributed and not sync)
                else contextlib.nullcontext()
            )
            with ctx:
                with torch.autocast("cuda", dtype=torch.float16, enabled=self.use_amp):
                    losses = self.net(images, targets)["losses"]
                loss = losses["loss"]
                if not self.use_amp and not torch.isfinite(loss.detach()):
                    raise TrainingDivergedError(
                        f"loss is {loss.item()} at step {self.scheduler.step_count + 1}; "
                        "lower --lr or check the data (tcmbench datasets verify)"
                    )
                self.scaler.scale(loss / h.accumulate).backward()
            for n, v in losses.items():
                sums[n] = sums.get(n, 0.0) + v.detach().float()
        if self.train_only.active(step):
            for param in self._held:  # no update, no decay, no optimizer state
                param.grad = None
        if h.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), h.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {n: float(v) / h.accumulate for n, v in sums.items()}

    def _reduce(self, terms: dict[str, float]) -> dict[str, float]:
        """Mean of each loss term over ranks."""
        if not self.world.distributed:
            return terms
        import torch
        import torch.distributed as dist

        keys = sorted(terms)
        t = torch.tensor([terms[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return {k: float(v) / self.world.world_size for k, v in zip(keys, t.tolist())}

    # ---- evaluation and checkpoints -------------------------------------
    def _evaluate(self, step: int) -> None:
        """Score every eval set; the mean hmean over the validation sets
        chooses best/ (test sets are logged only)."""
        from tcmbench.eval import evaluate
        from tcmbench.eval.submission import submitted_predictions
        from tcmbench.inference import predict_samples
        from tcmbench.inference.world import broadcast_object

        records = []
        for es in self.eval_sets:
            preds = predict_samples(
                self.model,
                es.samples,
                es.recipe,
                self.device,
                batch_size=self.cfg.eval_batch_size,
                progress=self.cfg.progress,
                announce=self.announce,
            )
            if not self.world.is_main:
                continue
            # As submitted (tcmbench.eval.submission): the figure evaluate prints.
            result = evaluate(
                es.samples, submitted_predictions(preds, es.protocol), es.protocol, **es.params
            )
            record = {
                "event": "eval",
                "step": step,
                "dataset": es.name,
                "split": es.split,
                "role": es.role,
                "protocol": es.protocol,
                "precision": result.precision,
                "recall": result.recall,
                "hmean": result.hmean,
                "images": len(es.samples),
            }
            self.evals.append(record)
            self._log_event(record)
            self.tensorboard.eval(record)
            log.info(
                "step %d %s/%s (%s) %s: P %.4f R %.4f H %.4f",
                step,
                es.name,
                es.split,
                es.role,
                es.protocol,
                result.precision,
                result.recall,
                result.hmean,
            )
            records.append(record)
        self.tensorboard.flush()
        val = [r for r in records if r["role"] == "validation"]
        val_hm = _mean_hmean(val) if val else None
        self.latest_hmean = broadcast_object(val_hm if val else _mean_hmean(records))
        val_hm = broadcast_object(val_hm)
        if val_hm is None or val_hm <= self.best_hmean:
            return
        self.best_hmean = val_hm
        if self.world.is_main:
            path = self.output / "best"
            self.best_info = {
                "path": str(path),
                "role": "validation",
                "step": step,
                "hmean": val_hm,
                "splits": [
                    {
                        "dataset": es.name,
                        "split": es.split,
                        "images": len(es.samples),
                        "description": es.description,
                        "hmean": r["hmean"],
                    }
                    for es, r in zip(self.validation_sets, val)
                ],
            }
            self._save_model(path, step, {"selected_on": self.best_info})
            self._log_event({"event": "best", **self.best_info})
        self.best_info = broadcast_object(self.best_info)

    def _extra(self, step: int) -> dict[str, Any]:
        results = []
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for e in self.evals:
            latest[(e["dataset"], e["split"])] = e
        for e in latest.values():
            results.append(
                {
                    k: e.get(k, "test" if k == "role" else None)
                    for k in (
                        "dataset",
                        "split",
                        "role",
                        "protocol",
                        "precision",
                        "recall",
                        "hmean",
                        "step",
                    )
                }
            )
        extra = {
            "datasets": list(self.cfg.datasets),
            "step": step,
            "train": self.cfg.to_dict(),
            "hyper": self.hyper.to_dict(),
            "results": results,
        }
        short = self.too_short()
        if short:
            extra["too_short"] = True
            extra["min_steps"] = short["min_steps"]
        if self.recipe_record:
            extra["recipe_choice"] = dict(self.recipe_record)
        return extra

    def _save_model(self, path: Path, step: int, more: Mapping[str, Any] | None = None) -> Path:
        from tcmbench.hub.checkpoints import save_checkpoint

        return save_checkpoint(
            path,
            self.model,
            self.spec,
            self.detector_config,
            recipe=self.recipe,
            extra={**self._extra(step), **(more or {})},
        )

    def _save_step(self, step: int) -> None:
        from tcmbench.inference.world import all_gather_objects, barrier
        from tcmbench.train.state import (
            capture_rng_state,
            prune_checkpoints,
            save_training_checkpoint,
            step_dir_name,
        )

        rngs = all_gather_objects(capture_rng_state())
        if self.world.is_main:
            state = {
                "step": step,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.use_amp else {},
                "rng": rngs,
                "best_hmean": self.best_hmean,
                "best": self.best_info,
                "evals": self.evals,
                "elapsed_s": self.elapsed(),
                "init_share": self.init_share,
                "train_config": json.loads(json.dumps(self.cfg.to_dict())),
                "hyper": self.hyper.to_dict(),
                "detector_config": self.detector_config.to_dict(),
                "world_size": self.world.world_size,
            }
            ckdir = self.output / "checkpoints"
            save_training_checkpoint(
                ckdir / step_dir_name(step),
                self.model,
                self.spec,
                self.detector_config,
                state,
                recipe=self.recipe,
                extra=self._extra(step),
            )
            prune_checkpoints(ckdir, self.cfg.keep_checkpoints)
            self._log_event(
                {"event": "checkpoint", "step": step, "path": str(ckdir / step_dir_name(step))}
            )
        barrier()

    def _save_final(self, step: int, short: dict[str, Any] | None = None) -> Path | None:
        """final/: the last step's weights, always (best/ is separate)."""
        from tcmbench.inference.world import barrier

        path = None
        if self.world.is_main:
            path = self._save_model(self.output / "final", step)
            self._log_event(
                {
                    "event": "end",
                    "step": step,
                    "final": str(path),
                    "best": self.best_info["path"] if self.best_info else None,
                    "best_selected_on": self.best_info,
                    "best_hmean": self.best_hmean if self.best_info else None,
                    **({"too_short": True, "min_steps": short["min_steps"]} if short else {}),
                }
            )
        barrier()
        return path

    def _log_event(self, record: dict[str, Any]) -> None:
        with open(self.output / "train_log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=str) + "\n")


def _mean_hmean(records: Sequence[Mapping[str, Any]]) -> float:
    return sum(float(r["hmean"]) for r in records) / len(records) if records else -1.0


def _next_batch(batches: Any) -> Any:
    """``next(batches)``; a user error raised in a loader worker comes back
    wrapped with the worker's traceback in its message -- keep only the
    original one-line message so the CLI prints no traceback."""
    try:
        return next(batches)
    except TcmbenchError as exc:
        text = str(exc)
        if "Original Traceback" not in text:
            raise
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        _, sep, message = last.partition(f"{type(exc).__name__}: ")
        try:
            clean = type(exc)(message if sep else last)
        except TypeError:  # an error class with a richer constructor
            clean = TcmbenchError(message if sep else last)
        raise clean from None
