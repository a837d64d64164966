"""CLIP weights for TCM: open_clip's pretrained path, local files, and the
one-off conversion of OpenAI's TorchScript ``RN50.pt``.

Sources, in order of precedence (``TCMConfig``):

1. ``clip_weights`` (``--clip-weights PATH``): an open_clip state dict
   (``.safetensors``, or a ``.bin`` / ``.pt`` pickle loaded with
   ``weights_only=True``), a folder holding one (what ``tcmbench tcm
   convert-clip`` writes), or OpenAI's TorchScript ``RN50.pt`` (read with
   ``torch.jit.load``, which does not run Python pickles; converting it once
   avoids re-reading the archive every run).
2. ``clip_pretrained`` (default ``"openai"``): an open_clip pretrained tag.
   open_clip's tables map it to the Hugging Face Hub repo
   ``timm/resnet50_clip.openai`` and the files ``open_clip_model.safetensors``
   then ``open_clip_pytorch_model.bin`` (``open_clip/pretrained.py:
   download_pretrained_from_hf``). tcmbench reads those tables and fetches
   the file itself through ``huggingface_hub`` (:mod:`tcmbench.hub.fetch`:
   the Hub cache, ``HF_HUB_CACHE`` / ``HF_HOME``, ``HF_ENDPOINT`` and
   ``HF_HUB_OFFLINE=1`` apply), because open_clip's download retries an
   unreachable Hub for about 50 s; open_clip then loads the local file.
3. ``clip_pretrained=None``: random initialisation (tests, smoke runs), with
   no download attempt.
"""

from __future__ import annotations

import logging
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

from tcmbench.errors import CheckpointError

log = logging.getLogger(__name__)

#: The file name ``convert-clip`` writes (the name open_clip looks for first).
CONVERTED_NAME = "open_clip_model.safetensors"
#: Keys of OpenAI's TorchScript state dict that are not weights.
_OPENAI_NON_WEIGHT_KEYS = ("input_resolution", "context_length", "vocab_size")


def hub_source(model_name: str, tag: str) -> tuple[str, list[str]] | None:
    """(Hub repo id, file names tried in order) for an open_clip pretrained
    tag, read from open_clip's own tables; None if the tag has no Hub entry."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name, tag)
    hub = (cfg or {}).get("hf_hub", "")
    if not hub:
        return None
    # Same split as open_clip: "org/name/" means the default file names.
    repo, filename = os.path.split(hub)
    if filename:
        names = [filename]
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        return repo, names
    return repo, [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]


def hub_cache_dir() -> Path:
    """The Hugging Face Hub cache huggingface_hub uses in this process."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _model_config(model_name: str) -> dict[str, Any]:
    import open_clip

    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise CheckpointError(
            f"unknown CLIP model {model_name!r}; TCM uses open_clip's 'RN50-quickgelu'"
        )
    return cfg


def random_clip(model_name: str = "RN50-quickgelu") -> Any:
    """An open_clip CLIP model with random weights (no file, no download).

    Built with the class directly (not ``create_model``) so that it also
    works under ``torch.device('meta')`` for cheap parameter counting.
    """
    from open_clip.model import CLIP

    return CLIP(**_model_config(model_name))


def is_torchscript_archive(path: str | os.PathLike[str]) -> bool:
    """True for a TorchScript zip (has ``code/`` and ``constants.pkl``), the
    format of OpenAI's ``RN50.pt``; False for ``torch.save`` files."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def read_torchscript_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The weights of an OpenAI CLIP TorchScript archive, in CLIP's layout
    (``visual.*``, ``transformer.*``, ``token_embedding.weight`` ...), with
    the non-weight entries dropped and dtypes kept (OpenAI stores fp16)."""
    import torch

    try:
        with warnings.catch_warnings():
            # torch marks TorchScript deprecated; OpenAI's release is TorchScript.
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # a corrupt or foreign archive
        raise CheckpointError(f"{path}: not a readable TorchScript CLIP archive ({exc})") from exc
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    for key in _OPENAI_NON_WEIGHT_KEYS:
        state.pop(key, None)
    return state


def _pick_file_in_dir(folder: Path) -> Path:
    preferred = (
        CONVERTED_NAME,
        "open_clip_pytorch_model.safetensors",
        "open_clip_pytorch_model.bin",
        "model.safetensors",
        "pytorch_model.bin",
    )
    for name in preferred:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    if len(found) == 1:
        return found[0]
    raise CheckpointError(
        f"{folder}: expected one CLIP weight file ({CONVERTED_NAME} or a single *.safetensors / *.bin)"
    )


def resolve_clip_weights(path: str | os.PathLike[str]) -> Path:
    """The weight file ``--clip-weights`` names (a file, or a folder with one)."""
    p = Path(path).expanduser()
    if p.is_dir():
        return _pick_file_in_dir(p)
    if not p.is_file():
        raise CheckpointError(
            f"--clip-weights {path}: no such file or folder (give an open_clip state dict, "
            "OpenAI's RN50.pt, or the folder `tcmbench tcm convert-clip` wrote)"
        )
    return p


def expected_clip_shapes(model_name: str = "RN50-quickgelu") -> dict[str, tuple[int, ...]]:
    """Parameter/buffer shapes of open_clip's CLIP state dict (built on the
    meta device: no memory, no init time)."""
    import torch

    with torch.device("meta"):
        model = random_clip(model_name)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_clip_state_dict(state: dict[str, Any], model_name: str, source: str) -> None:
    """Raise a CheckpointError listing missing / unexpected / mis-shaped keys."""
    expected = expected_clip_shapes(model_name)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} of another shape (e.g. {k}: {tuple(state[k].shape)} "
                f"instead of {expected[k]})"
            )
        raise CheckpointError(f"{source}: not a {model_name} CLIP state dict: " + "; ".join(parts))


def _load_local(model_name: str, path: Path) -> Any:
    """A CLIP model with the weights of a local file."""
    if is_torchscript_archive(path):
        log.info(
            "reading OpenAI TorchScript archive %s (convert it once with "
            "`tcmbench tcm convert-clip` to skip this step)",
            path,
        )
        state = read_torchscript_state_dict(path)
        check_clip_state_dict(state, model_name, str(path))
        model = random_clip(model_name)
        model.load_state_dict(state, strict=True)
        return model
    import open_clip

    try:
        # open_clip's own loader: safetensors, or torch.load(weights_only=True).
        return open_clip.create_model(model_name, pretrained=str(path), weights_only=True)
    except Exception as exc:
        msg = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"--clip-weights {path}: cannot load as {model_name} CLIP weights ({msg})"
        ) from exc


def _clip_unavailable(model_name: str, tag: str, where: str, reason: str) -> CheckpointError:
    from tcmbench.hub import fetch as hub_fetch

    again = " (same command without HF_HUB_OFFLINE)" if hub_fetch.offline() else ""
    return CheckpointError(
        f"CLIP weights {model_name}/{tag} not available: {where}; {reason}. Download them once "
        f"with network access{again}, or pass --clip-weights PATH "
        "(an open_clip state dict, or OpenAI's RN50.pt converted by `tcmbench tcm convert-clip`)."
    )


def fetch_pretrained_file(model_name: str, tag: str) -> Path:
    """The local file of an open_clip pretrained tag that lives on the Hub:
    from the Hugging Face cache, else downloaded -- failing at once, with
    one message, when the Hub cannot be reached (see :mod:`tcmbench.hub.fetch`;
    open_clip's own download would retry for about 50 s, logging each try)."""
    from huggingface_hub import try_to_load_from_cache

    from tcmbench.hub import fetch as hub_fetch

    source = hub_source(model_name, tag)
    if source is None:
        raise CheckpointError(f"open_clip pretrained tag {model_name}/{tag} is not on the Hub")
    repo, names = source
    for name in names:  # open_clip's order: safetensors first
        cached = try_to_load_from_cache(repo, name)
        if isinstance(cached, str):
            return Path(cached)
    cache = hub_cache_dir() / ("models--" + repo.replace("/", "--"))
    where = (
        f"Hugging Face Hub repo {repo} (file {' or '.join(names)}), looked up in the cache {cache}"
    )
    if hub_fetch.offline():
        raise _clip_unavailable(
            model_name, tag, where, "HF_HUB_OFFLINE is set and the file is not cached"
        )
    for name in names:
        try:
            return hub_fetch.fetch(repo, name, None)
        except hub_fetch.HubFileNotFoundError:
            continue
        except CheckpointError as exc:  # unreachable Hub, or no such repo there
            raise _clip_unavailable(model_name, tag, where, str(exc)) from None
    raise _clip_unavailable(
        model_name, tag, where, f"the Hub at {hub_fetch.endpoint()} has none of them"
    )


def _load_pretrained(model_name: str, tag: str) -> Any:
    import open_clip

    if hub_source(model_name, tag) is not None:
        path = fetch_pretrained_file(model_name, tag)
        try:
            # open_clip's own loader: safetensors, or torch.load(weights_only=True).
            return open_clip.create_model(model_name, pretrained=str(path), weights_only=True)
        except Exception as exc:
            msg = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise CheckpointError(
                f"CLIP weights {model_name}/{tag}: the cached file {path} cannot be loaded ({msg}); "
                "delete it to download it again"
            ) from exc
    try:  # a tag open_clip fetches from elsewhere than the Hub
        return open_clip.create_model(model_name, pretrained=tag, weights_only=True)
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise _clip_unavailable(
            model_name, tag, f"open_clip pretrained tag {tag!r}", reason
        ) from exc


def load_clip(tcm: Any) -> Any:
    """The open_clip ``CLIP`` model TCM takes its encoders from, per
    ``tcm`` (a :class:`~tcmbench.contract.spec.TCMConfig`)."""
    if tcm.clip_weights:
        return _load_local(tcm.clip_model, resolve_clip_weights(tcm.clip_weights))
    if tcm.clip_pretrained:
        return _load_pretrained(tcm.clip_model, tcm.clip_pretrained)
    log.info("TCM: CLIP %s with random weights (clip_pretrained=None)", tcm.clip_model)
    return random_clip(tcm.clip_model)


def convert_openai_clip(
    src: str | os.PathLike[str], out_dir: str | os.PathLike[str], model_name: str = "RN50-quickgelu"
) -> Path:
    """Convert OpenAI's TorchScript CLIP (``RN50.pt``) to an open_clip
    safetensors state dict ``out_dir/open_clip_model.safetensors``.

    The weights are renamed by nothing (OpenAI's layout *is* open_clip's for
    the ResNet CLIPs) and kept in their stored dtype, so the conversion is
    lossless; the file is checked against the architecture before it is
    written, atomically.
    """
    from safetensors.torch import save_file

    from tcmbench.safety.paths import atomic_path

    src = Path(src)
    if not src.is_file():
        raise CheckpointError(f"{src}: no such file (OpenAI's RN50.pt is a TorchScript archive)")
    if not is_torchscript_archive(src):
        raise CheckpointError(
            f"{src}: not a TorchScript archive; an open_clip state dict needs no conversion "
            "(pass it to --clip-weights directly)"
        )
    state = read_torchscript_state_dict(src)
    check_clip_state_dict(state, model_name, str(src))
    out = Path(out_dir) / CONVERTED_NAME
    with atomic_path(out) as tmp:
        save_file(
            {k: v.contiguous() for k, v in state.items()},
            str(tmp),
            metadata={"format": "pt", "source": src.name, "model": model_name},
        )
    return out
