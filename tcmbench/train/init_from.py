"""``tcmbench train --init-from``: start a run from existing weights.

Every paper run starts this way: pretrain (SynthText, + real data), then
fine-tune from those weights with a fresh optimizer, schedule and step
count. :func:`init_weights` therefore reads weights only -- never an
optimizer, scheduler or step -- and loads them into the freshly built model
*by key name*, parameters and buffers alike (BatchNorm running statistics
are part of what was learnt). A key whose shape differs is left as the
model built it, so a checkpoint of a related model (a plain detector for a
TCM run, another backbone) still gives what it can; the returned
:class:`InitReport` says key by key what happened, and
:meth:`InitReport.table` is what ``tcmbench train`` prints.

Sources, all read by the existing loaders so their checks apply (config.json
schema, truncated or foreign safetensors, tensors of another dtype, NaN /
infinite weights, ``torch.load(weights_only=True)`` for pickles):

- a tcmbench checkpoint folder (config.json + model.safetensors), a run
  folder (its ``final/``, else its latest ``checkpoints/step-N``) or a
  ``checkpoints/step-N`` folder;
- a ``.safetensors`` file (config.json beside it is read when present);
- ``hf://org/repo[@rev]``, resolved like ``--weights`` (:mod:`tcmbench.hub.checkpoints`);
- any other file: an official TCM checkpoint (mmocr / mmcv ``.pth``), its
  keys renamed by the importer's rules (:mod:`tcmbench.tcm.importer`) for
  the run's plugin. Keys no rule covers are reported as unexpected.

One exception to loading by name: when one side is a TCM model and the
other a plain detector, their ``backbone.*`` are different networks (CLIP's
image encoder vs the detector's own ResNet) whose key names coincide
(``backbone.layer1.0.conv1.weight`` in both); copying them would overwrite
CLIP's weights with unrelated ones, so they are *skipped* (reported as such).

Loading nothing is an error, not a silent from-scratch run: a run that
meant to fine-tune but trains from random weights wastes its whole budget.
BatchNorm's ``num_batches_tracked`` counters do not count as loaded
weights (their scalar shape matches whatever the layer).

Loading *little* is refused by the trainer too (:func:`check_coverage`):
the report counts the parameter values the load fills, plus those the
build itself took from pretrained weights (ImageNet backbone, CLIP's
encoders), and a run where less than :data:`MIN_INIT_SHARE` of the
model's parameter values start trained is stopped with the figures --
``train --allow-partial-init`` runs it on purpose. The shipped
MobileNetV3 DBNet into a ResNet-50 DBNet loads 6 of 356 keys, 2 of 25.4M
values: a from-scratch run with a fine-tune's schedule.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcmbench.errors import CheckpointError

log = logging.getLogger(__name__)

#: Keys shown per category in the table and in error messages.
SHOW = 3
#: Buffers that match any layer of their kind; they alone do not make a load.
COUNTER_SUFFIX = "num_batches_tracked"
#: The detector's backbone and TCM's matching module (tcmbench.models.detector).
BACKBONE_PREFIX = "backbone."
TCM_PREFIX = "feature_transform."
#: CLIP's text encoder inside TCM's module (built from CLIP's weights).
CLIP_TEXT_PREFIX = "feature_transform.text_encoder."
#: Share of the model's parameter values that must start trained (loaded
#: here, or pretrained by the build) for ``train --init-from`` to run
#: without ``--allow-partial-init``. Why one half: a fine-tune keeps the
#: network it starts from and adapts it with a short schedule and a small
#: learning rate; below one half most of the network would train from
#: random values under that schedule. The legitimate partial loads stay
#: far above it: a same-backbone checkpoint with another head or neck (a
#: ResNet-50 is 92 % of DBNet-R50's values), a TCM run from a plain
#: detector (CLIP's pretrained encoders count: ~85 %), a plain run from a
#: TCM checkpoint with an ImageNet backbone.
MIN_INIT_SHARE = 0.5

Shape = tuple[int, ...]


@dataclass
class InitReport:
    """What ``--init-from`` did, key by key.

    ``loaded``: in both, same shape, copied. ``missing``: in the model, not
    in the checkpoint (kept as built). ``unexpected``: in the checkpoint, not
    in the model (ignored). ``mismatched``: in both under the same name with
    another shape, as (key, checkpoint shape, model shape); not loaded.
    ``skipped``: would fit but belongs to another network (TCM vs plain
    backbone); not loaded.
    """

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, Shape, Shape]] = field(default_factory=list)
    #: In both with the same shape but not loaded: backbone keys across
    #: TCM / plain (see the module docstring).
    skipped: list[str] = field(default_factory=list)
    #: The file the weights were read from.
    resolved: str = ""
    #: "tcmbench checkpoint", "safetensors file" or "official TCM checkpoint".
    kind: str = ""
    #: What the checkpoint's config.json says it is ("" when it has none).
    checkpoint: str = ""
    #: What this run builds.
    model: str = ""
    #: Warnings worth the user's attention (also logged).
    notes: list[str] = field(default_factory=list)
    #: Parameter values (elements of ``model.parameters()``, buffers not
    #: counted): the model's, those loaded, and those the build took from
    #: pretrained weights and the load left alone (what they are: ``pretrained_by``).
    params_total: int = 0
    params_loaded: int = 0
    params_pretrained: int = 0
    pretrained_by: str = ""

    @property
    def share_filled(self) -> float:
        """Share of the parameter values that start trained: loaded, or
        pretrained by the build (1.0 for a model without parameters)."""
        if not self.params_total:
            return 1.0
        return (self.params_loaded + self.params_pretrained) / self.params_total

    def coverage(self) -> str:
        """``loads 6 of 356 keys (2 of 25,409,730 parameter values, 0.0000079%)``
        and, when the build pretrained some, how many."""
        n_keys = len(self.loaded) + len(self.missing) + len(self.mismatched) + len(self.skipped)
        text = (
            f"loads {len(self.loaded)} of {n_keys} keys ({self.params_loaded:,} of "
            f"{self.params_total:,} parameter values, {_pct(self.params_loaded, self.params_total)})"
        )
        if self.params_pretrained:
            text += (
                f"; {self.params_pretrained:,} more ({_pct(self.params_pretrained, self.params_total)})"
                f" come from {self.pretrained_by}"
            )
        return text

    def table(self) -> str:
        """A markdown table: per category its count, the count per
        top-level module and the first few keys."""
        what = f"{self.kind} {self.resolved}" if self.resolved else self.kind
        if self.checkpoint:
            what += f" ({self.checkpoint})"
        lines = [
            f"--init-from {self.source}: {what} -> {self.model}",
            "",
            "| keys | count | by module | first keys |",
            "|---|---|---|---|",
        ]
        mismatched = [k for k, _, _ in self.mismatched]
        shown_mismatch = [f"{k} {list(c)} vs {list(m)}" for k, c, m in self.mismatched[:SHOW]]
        rows = [
            ("loaded", self.loaded, _first(self.loaded)),
            ("missing (kept as built)", self.missing, _first(self.missing)),
            ("unexpected (ignored)", self.unexpected, _first(self.unexpected)),
            (
                "shape mismatch (checkpoint vs model; not loaded)",
                mismatched,
                _more(shown_mismatch, len(mismatched)),
            ),
        ]
        if self.skipped:
            rows.append(
                ("skipped (TCM vs plain backbone; not loaded)", self.skipped, _first(self.skipped))
            )
        for name, keys, first in rows:
            lines.append(f"| {name} | {len(keys)} | {_by_module(keys)} | {first} |")
        lines.append(f"\n{self.coverage()}")
        lines.extend(f"\nnote: {note}" for note in self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (for train_log.jsonl): counts, loaded keys per
        module, and the full lists of the keys that were not loaded."""
        return {
            "source": self.source,
            "resolved": self.resolved,
            "kind": self.kind,
            "checkpoint": self.checkpoint,
            "model": self.model,
            "counts": {
                "loaded": len(self.loaded),
                "missing": len(self.missing),
                "unexpected": len(self.unexpected),
                "mismatched": len(self.mismatched),
                "skipped": len(self.skipped),
            },
            "loaded_by_module": _module_counts(self.loaded),
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
            "mismatched": [
                {"key": k, "checkpoint": list(c), "model": list(m)} for k, c, m in self.mismatched
            ],
            "skipped": list(self.skipped),
            "notes": list(self.notes),
            "params": {
                "total": self.params_total,
                "loaded": self.params_loaded,
                "pretrained": self.params_pretrained,
                "pretrained_by": self.pretrained_by,
                "share_filled": self.share_filled,
            },
        }


def _pct(part: int, total: int) -> str:
    """A percentage with two significant digits below 1 % (so a tiny share
    never reads as 0), one decimal above."""
    if not total:
        return "100%"
    value = 100.0 * part / total
    if value == 0 or value >= 1:
        return f"{value:.1f}%"
    digits = 1 - math.floor(math.log10(value))
    return f"{value:.{digits}f}%"


def _module_counts(keys: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key in keys:
        top = key.split(".", 1)[0]
        counts[top] = counts.get(top, 0) + 1
    return counts


def _by_module(keys: list[str]) -> str:
    return ", ".join(f"{top}.* {n}" for top, n in _module_counts(keys).items())


def _more(shown: list[str], total: int) -> str:
    return ", ".join(shown) + (f" (+{total - len(shown)} more)" if total > len(shown) else "")


def _first(keys: list[str]) -> str:
    return _more(keys[:SHOW], len(keys))


# --------------------------------------------------------------------------
# What a model is, in words


def describe_architecture(plugin: str, arch: Mapping[str, Any]) -> str:
    """``dbnet / resnet18`` or ``dbnet + TCM (CLIP RN50-quickgelu)`` from a
    config.json ``architecture`` (or a DetectorConfig's ``to_dict``)."""
    tcm = arch.get("tcm")
    if tcm:
        return f"{plugin} + TCM (CLIP {tcm.get('clip_model', 'RN50-quickgelu')})"
    return f"{plugin} / {arch.get('backbone', '?')}"


def _describe_model(model: Any, spec: Any, config: Any) -> str:
    if config is not None:
        return describe_architecture(spec.name, config.to_dict())
    # Without the config the backbone's name is unknown; its class says enough.
    if getattr(model, "feature_transform", None) is not None:
        return f"{spec.name} + TCM"
    return f"{spec.name} / {type(getattr(model, 'backbone', model)).__name__}"


def _backbone_kind(tcm: bool | None) -> str:
    return "CLIP's image encoder (TCM)" if tcm else "a plain detector's"


# --------------------------------------------------------------------------
# Finding and reading the weights


@dataclass
class _Source:
    kind: str
    weights_file: Path
    state: dict[str, Any]
    meta: dict[str, Any] | None = None
    #: Whether the weights are a TCM model's (None: cannot tell).
    tcm: bool | None = None
    #: Official keys that no importer rule renames (reported as unexpected).
    unmapped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _checkpoint_in_folder(folder: Path) -> Path:
    """The checkpoint folder ``folder`` stands for: itself, its ``final/``,
    or its latest ``checkpoints/step-N`` (a run stopped before the end)."""
    from tcmbench.hub.checkpoints import WEIGHTS_NAME
    from tcmbench.train.state import STEP_DIR_RE

    if (folder / WEIGHTS_NAME).is_file():
        return folder
    if (folder / "final" / WEIGHTS_NAME).is_file():
        return folder / "final"
    steps = [
        (int(m.group(1)), child)
        for parent in (folder / "checkpoints", folder)
        if parent.is_dir()
        for child in parent.iterdir()
        if (m := STEP_DIR_RE.match(child.name)) and (child / WEIGHTS_NAME).is_file()
    ]
    if steps:
        latest = max(steps)[1]
        log.info("--init-from %s: no final/ checkpoint, using the latest one, %s", folder, latest)
        return latest
    raise CheckpointError(
        f"--init-from {folder}: not a checkpoint folder (config.json + {WEIGHTS_NAME}) nor a run "
        "folder (final/ or checkpoints/step-N)"
    )


def _read_safetensors(path: Path) -> _Source:
    """A checkpoint folder or a .safetensors file, with config.json when
    there is one (checked against the schema like ``--weights``)."""
    from tcmbench.hub.checkpoints import CONFIG_NAME, load_state_dict, read_checkpoint_meta

    if path.is_dir() or path.with_name(CONFIG_NAME).is_file():
        meta, weights_file = read_checkpoint_meta(path)
        return _Source("tcmbench checkpoint", weights_file, load_state_dict(weights_file), meta)
    return _Source("safetensors file", path, load_state_dict(path))


def _read_official(path: Path, spec: Any) -> _Source:
    """An official TCM (mmocr) checkpoint, keys renamed by the importer's
    rules for ``spec``'s plugin; unrenamed keys are kept apart."""
    from tcmbench.tcm.importer import map_official_keys, read_official_checkpoint

    state = read_official_checkpoint(path)
    not_tensor = [k for k, v in state.items() if not _is_tensor(v)]
    if not_tensor:
        raise CheckpointError(
            f"{path}: state_dict entry {not_tensor[0]!r} is not a tensor; not a model checkpoint"
        )
    try:
        mapping, unmapped = map_official_keys(list(state), spec.name)
    except CheckpointError as exc:
        raise CheckpointError(f"--init-from {path}: {exc}") from None
    renamed: dict[str, Any] = {}
    for official, ours in mapping.items():
        if ours in renamed:  # two official names for one of ours: keep the first
            unmapped.append(official)
        else:
            renamed[ours] = state[official]
    notes = []
    if unmapped:
        notes.append(
            f"{len(unmapped)} official key(s) have no tcmbench name ({_first(unmapped)}); "
            "listed as unexpected"
        )
    # An mmocr checkpoint of a plain detector has no learnable contexts.
    return _Source(
        "official TCM checkpoint", path, renamed, None, "contexts" in state, unmapped, notes
    )


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _safetensors_path(ref: str) -> tuple[Path, bool]:
    """(resolved path, whether it holds safetensors weights): a checkpoint
    folder or .safetensors file, or another file (an official .pth)."""
    from tcmbench.hub.checkpoints import resolve_weights
    from tcmbench.train.state import TRAINING_STATE_NAME

    path = resolve_weights(ref)  # downloads hf://; CheckpointError if absent
    if path.is_dir():
        return _checkpoint_in_folder(path), True
    if path.name == TRAINING_STATE_NAME:  # the weights are beside it, not in it
        return _checkpoint_in_folder(path.parent), True
    return path, path.suffix == ".safetensors"


def checkpoint_meta(ref: str) -> dict[str, Any] | None:
    """The config.json of the tcmbench checkpoint ``ref`` names (checked
    against the schema), without reading its weights; None for a bare
    .safetensors file or an official .pth. Lets ``train`` take the
    architecture and recipe from the checkpoint before building the model."""
    from tcmbench.hub.checkpoints import CONFIG_NAME, read_checkpoint_meta

    path, is_safetensors = _safetensors_path(ref)
    if not is_safetensors or not (path.is_dir() or path.with_name(CONFIG_NAME).is_file()):
        return None
    return read_checkpoint_meta(path)[0]


def read_source(ref: str, spec: Any) -> _Source:
    """Resolve ``ref`` (folder, file or hf://) and read its weights."""
    path, is_safetensors = _safetensors_path(ref)
    if not is_safetensors:
        return _read_official(path, spec)
    source = _read_safetensors(path)
    if source.meta is not None:
        source.tcm = bool((source.meta.get("architecture") or {}).get("tcm"))
    else:  # a bare file: TCM models hold the matching module
        source.tcm = any(k.startswith(TCM_PREFIX) for k in source.state)
    return source


# --------------------------------------------------------------------------
# Loading


def _mismatch_note(source: _Source, run_tcm: bool, model_desc: str, spec: Any, config: Any) -> str:
    """'the checkpoint is a X model; this run builds Y' when its config.json
    names another plugin, backbone or TCM setting; else ''."""
    if source.meta is None:
        return ""
    plugin = str(source.meta.get("plugin"))
    arch = source.meta.get("architecture") or {}
    differs = plugin != spec.name or source.tcm != run_tcm
    if config is not None and not run_tcm and not source.tcm:
        differs = differs or arch.get("backbone") != config.backbone
    if not differs:
        return ""
    return f"the checkpoint is a {describe_architecture(plugin, arch)} model; this run builds {model_desc}"


def init_weights(
    model: Any, ref: str, spec: Any, config: Any = None, min_share: float | None = None
) -> InitReport:
    """Load the weights named by ``ref`` into ``model`` by key name.

    ``config``: the run's DetectorConfig, used to describe the model (its
    backbone, what its build pretrained) in the report and messages;
    optional. Raises :class:`CheckpointError` (one line) when no weight fits
    the model, and with ``min_share`` (``train`` passes
    :data:`MIN_INIT_SHARE`) when less than that share of the parameter
    values would start trained (:func:`check_coverage`); then nothing is
    loaded and nothing logged.
    """
    from tcmbench.safety.checkpoint_schema import check_tensors
    from tcmbench.tcm.importer import _fit_shapes

    source = read_source(ref, spec)
    own = model.state_dict()
    state = source.state
    if source.kind == "official TCM checkpoint":
        # The importer's exact or documented reshapes (positional embeddings).
        _fit_shapes(state, own)
    model_desc = _describe_model(model, spec, config)
    ckpt_desc = (
        describe_architecture(str(source.meta.get("plugin")), source.meta.get("architecture") or {})
        if source.meta is not None
        else ""
    )
    report = InitReport(
        source=str(ref),
        resolved=str(source.weights_file),
        kind=source.kind,
        checkpoint=ckpt_desc,
        model=model_desc,
        notes=list(source.notes),
    )
    run_tcm = getattr(model, "feature_transform", None) is not None
    other_backbone = source.tcm is not None and source.tcm != run_tcm
    for key, value in own.items():
        if key not in state:
            report.missing.append(key)
        elif tuple(state[key].shape) != tuple(value.shape):
            report.mismatched.append((key, tuple(state[key].shape), tuple(value.shape)))
        elif other_backbone and key.startswith(BACKBONE_PREFIX):
            report.skipped.append(key)
        else:
            report.loaded.append(key)
    if report.skipped:
        report.notes.append(
            f"{len(report.skipped)} backbone.* key(s) fit by name and shape but were not loaded: "
            f"the checkpoint's backbone is {_backbone_kind(source.tcm)}, this run's "
            f"{_backbone_kind(run_tcm)} (different networks whose key names coincide)"
        )
    report.unexpected = [k for k in state if k not in own] + list(source.unmapped)
    differs = _mismatch_note(source, run_tcm, model_desc, spec, config)
    weights = [k for k in report.loaded if not k.endswith(COUNTER_SUFFIX)]
    if not weights:
        ckpt_keys = list(state) + list(source.unmapped)
        raise CheckpointError(_nothing_fits(report, ckpt_keys, list(own), differs))
    subset = {k: state[k] for k in report.loaded}
    check_tensors(subset, own, source.weights_file)  # dtype and NaN / inf, as --weights
    _count_params(report, model, config)
    if min_share is not None:
        check_coverage(report, min_share)
    model.load_state_dict(subset, strict=False)
    if differs:
        report.notes.insert(0, f"{differs}: only the keys above that fit were loaded")
    for note in report.notes:
        log.warning("--init-from %s: %s", ref, note)
    log.info(
        "--init-from %s: %d loaded, %d missing, %d unexpected, %d shape-mismatched keys",
        ref,
        len(report.loaded),
        len(report.missing),
        len(report.unexpected),
        len(report.mismatched),
    )
    return report


def _built_pretrained(config: Any) -> tuple[tuple[str, ...], str]:
    """(key prefixes the build filled from pretrained weights, what those
    weights are): CLIP's image and text encoders of a TCM model built with
    CLIP weights, else an ImageNet backbone; nothing when ``config`` is
    unknown or says random."""
    if config is None:
        return (), ""
    tcm = getattr(config, "tcm", None)
    if tcm is not None:
        if getattr(tcm, "clip_weights", None) or getattr(tcm, "clip_pretrained", None):
            return (BACKBONE_PREFIX, CLIP_TEXT_PREFIX), "CLIP's pretrained encoders"
        return (), ""
    if getattr(config, "pretrained_backbone", False):
        return (BACKBONE_PREFIX,), "the ImageNet backbone"
    return (), ""


def _count_params(report: InitReport, model: Any, config: Any) -> None:
    """Fill the report's parameter-value counts (see :class:`InitReport`)."""
    loaded = set(report.loaded)
    prefixes, by = _built_pretrained(config)
    total = done = pretrained = 0
    for name, param in model.named_parameters():
        n = int(param.numel())
        total += n
        if name in loaded:
            done += n
        elif prefixes and name.startswith(prefixes):
            pretrained += n
    report.params_total, report.params_loaded = total, done
    report.params_pretrained, report.pretrained_by = pretrained, by if pretrained else ""


def check_coverage(report: InitReport, min_share: float = MIN_INIT_SHARE) -> None:
    """Raise :class:`CheckpointError` (one line, with the figures) when
    less than ``min_share`` of the model's parameter values start trained
    (see :data:`MIN_INIT_SHARE`); ``train --allow-partial-init`` skips it."""
    if report.share_filled >= min_share:
        return
    what = report.kind + (f" ({report.checkpoint})" if report.checkpoint else "")
    left = report.params_total - report.params_loaded - report.params_pretrained
    random_share = _pct(left, report.params_total)
    if random_share == "100.0%" and left < report.params_total:
        random_share = ">99.9%"
    raise CheckpointError(
        f"--init-from {report.source}: this {what} {report.coverage()} of {report.model}: "
        f"{random_share} of its parameter values would train from random initialisation, "
        f"and a fine-tune needs at least {min_share:.0%} of them trained; build the "
        "checkpoint's architecture (leave out --recipe / --backbone to take it from the "
        "checkpoint) or give --allow-partial-init to train this way on purpose"
    )


def _nothing_fits(report: InitReport, ckpt_keys: list[str], own: list[str], differs: str) -> str:
    """The one-line refusal: what the checkpoint and the model are, and why
    nothing fits."""
    what = report.kind + (f" ({report.checkpoint})" if report.checkpoint else "")
    n_named = len(report.mismatched) + len(report.loaded) + len(report.skipped)
    if report.mismatched:
        key, theirs, ours = report.mismatched[0]
        why = (
            f"{n_named} key name(s) match but every weight differs in shape "
            f"(e.g. {key}: {list(theirs)} in the checkpoint, {list(ours)} in the model)"
        )
    elif report.skipped:
        why = (
            f"only backbone keys match ({len(report.skipped)}), and the checkpoint's backbone is "
            "another network (TCM vs plain)"
        )
    elif report.loaded:
        why = f"only {len(report.loaded)} BatchNorm counter(s) ({COUNTER_SUFFIX}) match by name"
    else:
        why = "no key name matches"
    hint = f"; {differs}" if differs else ""
    if report.kind == "official TCM checkpoint":
        hint += "; official keys were renamed by the importer's rules for this plugin"
    return (
        f"--init-from {report.source}: nothing to load into {report.model} ({len(own)} keys) "
        f"from this {what} ({len(ckpt_keys)} keys): {why}{hint}; checkpoint keys e.g. "
        f"{_first(_weights_first(ckpt_keys))}; model keys e.g. {_first(_weights_first(own))}"
    )


def _weights_first(keys: list[str]) -> list[str]:
    """``keys`` with the BatchNorm counters last: they say little as examples."""
    return sorted(keys, key=lambda k: k.endswith(COUNTER_SUFFIX))
