"""Checkpoints: folders on disk and repositories on the Hugging Face Hub.

A checkpoint is a folder following huggingface_hub's ModelHubMixin
conventions, so it can be pushed to and pulled from the Hub as is:

- ``config.json``: ``library_name`` (tcmbench), plugin name and version,
  the architecture (:class:`~tcmbench.contract.spec.DetectorConfig`, TCM
  switches included), the training recipe and library versions;
- ``model.safetensors``: the weights (never a pickle);
- ``README.md``: a model card with ``library_name: tcmbench`` metadata.

``--weights`` accepts such a folder, a ``.safetensors`` file (its
``config.json`` is read from the same folder), or ``hf://org/repo[@rev]``
resolved by ``huggingface_hub`` (its cache, ``HF_HUB_OFFLINE`` and
``HF_ENDPOINT`` are honoured because we call the library, not HTTP).

A checkpoint is untrusted input: its config.json is parsed under size and
depth limits and checked against :mod:`tcmbench.safety.checkpoint_schema` (its
``architecture.options`` by the plugin's option resolver, its
``recipe.postprocess`` by the plugin's postprocessor) before a model is
built; the safetensors header is size-checked before safetensors parses it
(:func:`check_safetensors_header`), and the tensors' dtypes and values are
checked before they are loaded.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from tcmbench import __version__
from tcmbench.errors import CheckpointError, TcmbenchError
from tcmbench.safety.checkpoint_schema import check_postprocess, check_tensors, read_config
from tcmbench.safety.paths import _default_mode, atomic_dir

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
HF_PREFIX = "hf://"
CHECKPOINT_FILES = [CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]


@dataclass
class LoadedCheckpoint:
    """A model rebuilt from a checkpoint, with what it was built from."""

    model: Any
    spec: Any
    config: Any
    meta: dict[str, Any]
    path: Path
    sha256: str


def _versions() -> dict[str, str]:
    import torch

    out = {"tcmbench": __version__, "torch": torch.__version__, "python": platform.python_version()}
    try:
        import open_clip

        out["open_clip"] = open_clip.__version__
    except (ImportError, AttributeError):  # optional at save time
        log.debug("open_clip not installed: its version is not recorded")
    return out


def model_card(meta: dict[str, Any]) -> str:
    """A Hub model card whose metadata marks the repo as a tcmbench model."""
    plugin = meta.get("plugin", "detector")
    tcm = bool((meta.get("architecture") or {}).get("tcm"))
    title = f"TCM-{plugin}" if tcm else plugin
    datasets = meta.get("datasets") or []
    lines = [
        "---",
        "library_name: tcmbench",
        "pipeline_tag: object-detection",
        "tags:",
        "- tcmbench",
        "- scene-text-detection",
        f"- {plugin}",
    ]
    if tcm:
        lines.append("- tcm")
    if datasets:
        lines.append("datasets:")
        lines.extend(f"- {d}" for d in datasets)
    if meta.get("license"):
        lines.append(f"license: {meta['license']}")
    lines += ["---", "", f"# {title} (tcmbench)", ""]
    lines.append(
        f"A `{plugin}` scene text detector{' with the TCM CLIP module' if tcm else ''}, "
        "saved by [tcmbench](https://pypi.org/project/tcmbench/)."
    )
    lines += ["", "## Use", "", "```bash", "pip install tcmbench"]
    lines.append(
        f"tcmbench evaluate --plugin {plugin}{' --tcm' if tcm else ''} --dataset DATASET "
        "--weights hf://ORG/REPO"
    )
    lines += ["```", ""]
    # Sections an importer adds (source, licence of converted weights).
    for heading, text in meta.get("model_card") or []:
        lines += [f"## {heading}", "", str(text), ""]
    results = meta.get("results")
    if results:
        lines += [
            "## Results",
            "",
            "| dataset | protocol | precision | recall | hmean |",
            "|---|---|---|---|---|",
        ]
        for r in results:
            lines.append(
                f"| {r.get('dataset')} | {r.get('protocol')} | {r.get('precision', 0):.4f} | "
                f"{r.get('recall', 0):.4f} | {r.get('hmean', 0):.4f} |"
            )
        lines.append("")
    lines += [
        "## Architecture",
        "",
        "```json",
        json.dumps(meta.get("architecture", {}), indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def save_checkpoint(
    out_dir: str | Path,
    model: Any,
    spec: Any,
    config: Any,
    *,
    recipe: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically (a crash leaves the old one).

    Only tensors of ``model.state_dict()`` go to safetensors; everything
    needed to rebuild the architecture goes to config.json.
    """
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    meta: dict[str, Any] = {
        "library_name": "tcmbench",
        "format_version": 1,
        "plugin": spec.name,
        "plugin_version": getattr(spec, "version", ""),
        "architecture": config.to_dict(),
        "recipe": recipe or {},
        "versions": _versions(),
    }
    if extra:
        meta.update(extra)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_dir(out_dir) as tmp:
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "library": "tcmbench"})
        # safetensors creates its file 0600 (0.8: a private file renamed into
        # place); give it the mode of the files beside it, as open() makes them.
        os.chmod(tmp / WEIGHTS_NAME, _default_mode())
        (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        (tmp / CARD_NAME).write_text(model_card(meta))
    log.info("saved checkpoint to %s", out_dir)
    return out_dir


def parse_hf_uri(uri: str) -> tuple[str, str | None]:
    """``hf://org/repo[@revision]`` -> (repo_id, revision)."""
    body = uri[len(HF_PREFIX) :]
    repo, _, rev = body.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise CheckpointError(f"invalid Hub reference {uri!r}; expected hf://org/repo[@revision]")
    return repo, rev or None


def _from_cache(repo_id: str, revision: str | None, local_dir: str | Path | None) -> Path | None:
    """The cached snapshot of a checkpoint repo, or None; never touches the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=CHECKPOINT_FILES,
            local_dir=str(local_dir) if local_dir is not None else None,
            local_files_only=True,
        )
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return Path(path)


def download(
    repo_id: str, revision: str | None = None, local_dir: str | Path | None = None
) -> Path:
    """Fetch a checkpoint repo through huggingface_hub (cache / offline aware).

    One bounded request asks the Hub for the repo's files; when the Hub
    cannot be used (no network, timeout, redirect loop, dropped connection,
    malformed JSON, server error) the cached copy serves if there is one,
    else one line says why (see :mod:`tcmbench.hub.fetch`).
    """
    from huggingface_hub import constants as hf_constants

    from tcmbench.hub import fetch as hub_fetch

    where = f"{repo_id}@{revision or 'main'}"
    if hub_fetch.offline():
        cached = _from_cache(repo_id, revision, local_dir)
        if cached is None:
            raise CheckpointError(
                f"{where} is not in the Hugging Face cache ({hf_constants.HF_HUB_CACHE}) and "
                "HF_HUB_OFFLINE=1 forbids the network; run "
                f"`tcmbench hub pull {repo_id}` where the Hub is reachable, or pass a local folder"
            )
        return cached
    try:
        _, files = hub_fetch.repo_files(repo_id, revision)
        absent = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if name not in files]
        if absent:
            raise CheckpointError(
                f"Hub repo {where} is not a tcmbench checkpoint: it has no {' and no '.join(absent)}"
            )
        target = Path(local_dir) if local_dir is not None else None
        paths = [
            hub_fetch.fetch(repo_id, name, revision, target)
            for name in CHECKPOINT_FILES
            if name in files
        ]
    except hub_fetch.HubUnreachableError as exc:
        cached = _from_cache(repo_id, revision, local_dir)
        if cached is not None:
            log.warning("%s; using the cached copy of %s", exc, where)
            return cached
        raise CheckpointError(
            f"could not download {where}: {exc}; it is not in the Hugging Face cache "
            f"({hf_constants.HF_HUB_CACHE}) either (check the network and HF_ENDPOINT, "
            "or pass a local folder)"
        ) from None
    return paths[0].parent


def resolve_weights(weights: str | Path) -> Path:
    """A local checkpoint folder for ``--weights`` (folder, file or hf://)."""
    text = str(weights)
    if text.startswith(HF_PREFIX):
        repo, rev = parse_hf_uri(text)
        return download(repo, rev)
    path = Path(text).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def read_checkpoint_meta(path: Path) -> tuple[dict[str, Any], Path]:
    """(config.json contents, weights file) of a checkpoint folder or file."""
    if path.is_dir():
        weights_file, config_file = path / WEIGHTS_NAME, path / CONFIG_NAME
    else:
        weights_file, config_file = path, path.with_name(CONFIG_NAME)
    if not weights_file.is_file():
        raise CheckpointError(f"{path} holds no {WEIGHTS_NAME}")
    if not config_file.is_file():
        raise CheckpointError(
            f"{config_file} is missing: a tcmbench checkpoint needs config.json beside "
            f"{weights_file.name} (import foreign checkpoints with `tcmbench import`)"
        )
    return read_config(config_file), weights_file


#: Largest safetensors header read (the JSON index of the tensors, before
#: the data): a TCM checkpoint's is under 100 kB. A forged header of a
#: million entries kept safetensors busy for 40 s at 2 GB of memory.
MAX_SAFETENSORS_HEADER_BYTES = 10 * 1024 * 1024
#: Most tensors one checkpoint may hold (a TCM detector holds a few hundred).
MAX_SAFETENSORS_TENSORS = 50_000


def check_safetensors_header(weights_file: Path) -> None:
    """Refuse a safetensors file whose header (an 8-byte little-endian
    length, then that many bytes of JSON) is over
    :data:`MAX_SAFETENSORS_HEADER_BYTES`, longer than the file, not a JSON
    object under the depth limits, or lists more than
    :data:`MAX_SAFETENSORS_TENSORS` tensors -- before safetensors parses
    it. Everything else (offsets, dtypes) safetensors checks itself."""
    from tcmbench.safety.validation import DocumentError, parse_json

    try:
        size = weights_file.stat().st_size
        with weights_file.open("rb") as fh:
            head = fh.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if length < 0 or length > MAX_SAFETENSORS_HEADER_BYTES or length > size - 8:
                header = b""
            else:
                header = fh.read(length)
    except OSError as exc:
        raise CheckpointError(f"{weights_file} cannot be read: {exc.strerror or exc}") from None
    if length < 0:
        raise CheckpointError(f"{weights_file} is truncated or not a safetensors file (no header)")
    if length > MAX_SAFETENSORS_HEADER_BYTES:
        raise CheckpointError(
            f"{weights_file}: the safetensors header is {length} bytes, over the "
            f"{MAX_SAFETENSORS_HEADER_BYTES}-byte limit; the file is forged or not a tcmbench "
            "checkpoint"
        )
    if length > size - 8:
        raise CheckpointError(
            f"{weights_file} is truncated or not a safetensors file (its header claims {length} "
            f"bytes; the file holds {size})"
        )
    try:
        entries = parse_json(header, f"{weights_file}: the safetensors header")
    except DocumentError as exc:
        raise CheckpointError(str(exc)) from None
    if not isinstance(entries, dict):
        raise CheckpointError(
            f"{weights_file}: the safetensors header is not a JSON object "
            f"(got a {type(entries).__name__})"
        )
    count = len(entries) - ("__metadata__" in entries)
    if count > MAX_SAFETENSORS_TENSORS:
        raise CheckpointError(
            f"{weights_file}: the safetensors header lists {count} tensors, over the limit of "
            f"{MAX_SAFETENSORS_TENSORS}; the file is forged or not a tcmbench checkpoint"
        )


def load_state_dict(weights_file: Path) -> dict[str, Any]:
    """Read safetensors; a truncated or foreign file, or a forged header
    (:func:`check_safetensors_header`), becomes a CheckpointError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    check_safetensors_header(weights_file)
    try:
        return load_file(str(weights_file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{weights_file} is truncated or not a safetensors file: {exc}"
        ) from None


def checkpoint_architecture(
    path: Path,
    meta: dict[str, Any],
    *,
    plugin: str | None = None,
    expect_tcm: bool | None = None,
) -> Any:
    """The :class:`~tcmbench.contract.spec.DetectorConfig` a checkpoint's
    config.json (``meta``) describes, set up to rebuild it for inference:
    no pretrained backbone or CLIP weights fetched (the checkpoint holds
    them). A checkpoint of another plugin than ``plugin``, or a TCM / plain
    one against ``expect_tcm``, is a CheckpointError saying which flag to
    change. Torch-free (``--runtime onnxruntime`` on an exported checkpoint
    reads it too)."""
    from tcmbench.contract.spec import DetectorConfig

    if plugin is not None and meta["plugin"] != plugin:
        raise CheckpointError(
            f"{path} is a checkpoint of plugin {meta['plugin']!r}, not {plugin!r}; "
            f"use --plugin {meta['plugin']}"
        )
    config = DetectorConfig.from_dict(meta["architecture"])
    if expect_tcm is not None and (config.tcm is not None) != expect_tcm:
        kind = "a TCM" if config.tcm is not None else "a plain (non-TCM)"
        fix = "add --tcm" if config.tcm is not None else "drop --tcm"
        raise CheckpointError(f"{path} is {kind} checkpoint; {fix}")
    config.pretrained_backbone = False
    if config.tcm is not None:
        config.tcm.clip_pretrained = None
        config.tcm.clip_weights = None
    return config


def load_checkpoint(
    weights: str | Path,
    *,
    device: str = "cpu",
    plugin: str | None = None,
    expect_tcm: bool | None = None,
) -> LoadedCheckpoint:
    """Rebuild the model a checkpoint describes and load its weights.

    ``plugin``: the plugin the caller asked for; a checkpoint of another
    plugin is refused with a clear message. ``expect_tcm``: likewise for
    TCM / plain checkpoints. CLIP weights are not downloaded: the
    checkpoint holds them.
    """
    from tcmbench.contract.registry import get_detector, get_plugin_manager

    path = resolve_weights(weights)
    meta, weights_file = read_checkpoint_meta(path)
    config = checkpoint_architecture(path, meta, plugin=plugin, expect_tcm=expect_tcm)
    config_file = weights_file.with_name(CONFIG_NAME)
    try:
        spec = get_detector(meta["plugin"])
        # The plugin's option resolver checks architecture.options (types, ranges).
        model = get_plugin_manager().hook.build_detector(spec=spec, config=config)
    except CheckpointError:
        raise
    except TcmbenchError as exc:
        raise CheckpointError(f"{config_file}: architecture: {exc}") from None
    # The plugin's postprocessor checks the recipe's postprocess parameters.
    check_postprocess(
        model.postprocessor,
        (meta.get("recipe") or {}).get("postprocess"),
        str(config_file),
        "recipe.postprocess",
    )
    state = load_state_dict(weights_file)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape)
    )
    if missing or unexpected or mismatched:

        def few(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")

        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {few(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: {few(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatch {len(mismatched)}: {few(mismatched)}")
        raise CheckpointError(
            f"{weights_file} does not fit the {meta['plugin']} architecture in its config.json: "
            + "; ".join(parts)
        )
    check_tensors(state, own, weights_file)
    model.load_state_dict(state)
    model.to(device).eval()
    from tcmbench.data.archives import sha256_file

    return LoadedCheckpoint(model, spec, config, meta, path, sha256_file(weights_file))


def push(
    folder: str | Path,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload a checkpoint folder to the Hub; returns the commit URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from tcmbench.hub import fetch as hub_fetch

    folder = Path(folder)
    read_checkpoint_meta(folder)  # refuse to push something that is not a checkpoint
    api = HfApi(token=token, library_name="tcmbench", library_version=__version__)
    failed: tuple[type[BaseException], ...] = (ValueError, *hub_fetch.transport_errors())
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            revision=revision,
            allow_patterns=CHECKPOINT_FILES,
            commit_message=commit_message or "Upload tcmbench checkpoint",
        )
    except HfHubHTTPError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"could not push {folder} to {repo_id}: {first}") from None
    except failed as exc:
        raise CheckpointError(
            f"could not push {folder} to {repo_id}: the Hub at {hub_fetch.endpoint()} failed: "
            f"{hub_fetch.describe(exc)}"
        ) from None
    return str(getattr(info, "commit_url", info))


def pull(repo_id: str, *, revision: str | None = None, out_dir: str | Path | None = None) -> Path:
    """Download a checkpoint repo (into the HF cache, and copy to ``out_dir``)."""
    path = download(repo_id, revision)
    read_checkpoint_meta(path)
    if out_dir is None:
        return path
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        for name in CHECKPOINT_FILES:
            src = path / name
            if src.exists():
                shutil.copyfile(src, tmp / name)
    return out_dir


def embedded_weights(spec: Any) -> Path | None:
    """The checkpoint shipped inside the plugin package (``<package>/weights``): the default
    ``--weights`` of ``evaluate`` / ``predict`` on the plugin's embedded dataset,
    or None when the plugin ships none."""
    module = getattr(spec.build_parts, "__module__", "") or ""
    package = module.split(".", 1)[0]
    if not package:
        return None
    try:
        folder = Path(str(resources.files(package) / "weights"))
    except (ModuleNotFoundError, TypeError):
        return None
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return folder
    return None
