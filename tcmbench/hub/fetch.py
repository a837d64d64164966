"""Fetching from the Hugging Face Hub within the timeouts, failing fast and once.

huggingface_hub's download functions are built to ride out a flaky network,
which is the opposite of what a command-line user with no network (or a
broken ``HF_ENDPOINT`` mirror) needs:

- ``snapshot_download`` queries the repo API with no timeout at all, so a
  stalled endpoint hangs whatever ``HF_HUB_ETAG_TIMEOUT`` says;
- ``hf_hub_download`` retries a failed metadata request five times with
  backoff (1 + 2 + 4 + 8 + 8 s), logging a warning per try. open_clip's CLIP
  download goes through it twice (safetensors, then .bin): about 50 s and 40
  warnings before the one error that matters;
- a redirect loop, a dropped connection or malformed JSON escape as the HTTP
  library's own exceptions.

So every fetch here starts with one bounded request that does not retry (the
repo API, or a HEAD of the file, with ``timeout=HF_HUB_ETAG_TIMEOUT``). When
it fails the caller gets :class:`HubUnreachableError` at once, with the
reason in words, and decides whether the cache can serve instead. Only after
it succeeds does the library download, with its cache, ETag and resume logic
(``HF_HUB_DOWNLOAD_TIMEOUT`` bounds that part).
"""

from __future__ import annotations

import logging
from pathlib import Path

from tcmbench import __version__
from tcmbench.errors import CheckpointError

log = logging.getLogger(__name__)


class HubUnreachableError(CheckpointError):
    """The Hub (``HF_ENDPOINT``) did not answer usefully: no connection, a
    timeout, a redirect loop, a dropped connection, a server error or
    malformed JSON. ``reason`` says which, in words."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"cannot use the Hugging Face Hub at {endpoint()}: {reason}")


class HubFileNotFoundError(CheckpointError):
    """The repo exists but does not hold the file asked for."""


def endpoint() -> str:
    """The Hub endpoint huggingface_hub talks to (``HF_ENDPOINT``)."""
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def etag_timeout() -> float:
    """Seconds the first request of a fetch may take (``HF_HUB_ETAG_TIMEOUT``)."""
    from huggingface_hub import constants

    return float(constants.HF_HUB_ETAG_TIMEOUT)


def offline() -> bool:
    """``HF_HUB_OFFLINE=1``: only the cache may be used."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def transport_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "the request did not get a usable answer". The
    HTTP library under huggingface_hub has changed (requests, then httpx2);
    requests' errors are OSErrors, httpx2's derive from ``httpx2.HTTPError``."""
    errors: list[type[BaseException]] = [OSError]
    try:
        import httpx2

        errors.append(httpx2.HTTPError)
    except ImportError:  # an older huggingface_hub on requests
        log.debug("httpx2 not installed; OSError covers requests' errors")
    return tuple(errors)


def describe(exc: BaseException) -> str:
    """What went wrong with a request, in words (no traceback, one line).

    Matched on class names so that the same words come out whichever HTTP
    library huggingface_hub uses."""
    names = {c.__name__ for c in type(exc).__mro__}
    detail = (str(exc).strip().splitlines() or [""])[0][:200]
    if "TooManyRedirects" in names:
        return "it answers with an endless redirect loop (too many redirects)"
    if names & {"TimeoutException", "Timeout", "TimeoutError"}:
        return f"no answer within {etag_timeout():g} s (HF_HUB_ETAG_TIMEOUT)"
    if names & {"RemoteProtocolError", "ChunkedEncodingError", "ReadError"}:
        return f"the server closed the connection without a complete answer ({detail})"
    if names & {"ConnectError", "ConnectionError"}:
        return f"cannot connect ({detail})"
    if "JSONDecodeError" in names:
        return f"its answer is not valid JSON ({detail})"
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def repo_files(repo_id: str, revision: str | None) -> tuple[str, list[str]]:
    """(commit sha, file names) of a model repo, from one bounded API call.

    Raises :class:`CheckpointError` for a repo or revision the Hub does not
    have (or will not show), :class:`HubUnreachableError` for everything that
    makes the Hub unusable (so the caller may fall back to the cache).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision or 'main'}"
    api = HfApi(library_name="tcmbench", library_version=__version__)
    try:
        info = api.model_info(repo_id, revision=revision or "main", timeout=etag_timeout())
    except GatedRepoError:
        raise CheckpointError(
            f"Hub repo {repo_id} is gated: accept its terms on the Hub and set HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        raise CheckpointError(
            f"Hub repo {where} not found at {endpoint()} (or private: set HF_TOKEN)"
        ) from None
    except RevisionNotFoundError:
        raise CheckpointError(f"Hub repo {repo_id} has no revision {revision!r}") from None
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        if status in (401, 403):
            raise CheckpointError(
                f"Hub repo {where}: access denied (HTTP {status}); set HF_TOKEN"
            ) from None
        raise HubUnreachableError(f"HTTP {status} for {where}") from None
    except (ValueError, TypeError, KeyError) as exc:  # JSON that is malformed or of another shape
        raise HubUnreachableError(f"malformed answer for {where}: {describe(exc)}") from None
    except transport_errors() as exc:
        raise HubUnreachableError(describe(exc)) from None
    sha = getattr(info, "sha", None)
    siblings = getattr(info, "siblings", None)
    if not isinstance(sha, str) or not sha or not isinstance(siblings, list):
        raise HubUnreachableError(f"malformed answer for {where}: no commit sha or file list")
    return sha, [s.rfilename for s in siblings if isinstance(getattr(s, "rfilename", None), str)]


def fetch(repo_id: str, filename: str, revision: str | None, local_dir: Path | None = None) -> Path:
    """Download one file of a model repo (or take it from the cache).

    One bounded HEAD first, without retries; only when it answers does
    ``hf_hub_download`` run. Raises :class:`HubFileNotFoundError` when the
    repo has no such file, :class:`HubUnreachableError` when the Hub cannot
    be used.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    where = f"{repo_id}@{revision or 'main'}"
    try:
        get_hf_file_metadata(
            hf_hub_url(repo_id, filename, revision=revision),
            timeout=etag_timeout(),
            library_name="tcmbench",
            library_version=__version__,
        )
        path = hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            local_dir=str(local_dir) if local_dir is not None else None,
            etag_timeout=etag_timeout(),
            library_name="tcmbench",
            library_version=__version__,
        )
    except LocalEntryNotFoundError as exc:  # the library gave up on the network
        raise HubUnreachableError(describe(exc.__cause__ or exc)) from None
    except EntryNotFoundError:
        raise HubFileNotFoundError(f"Hub repo {where} has no file {filename}") from None
    except RepositoryNotFoundError:
        raise CheckpointError(f"Hub repo {where} not found at {endpoint()}") from None
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        raise HubUnreachableError(f"HTTP {status} for {filename} of {where}") from None
    except transport_errors() as exc:
        raise HubUnreachableError(describe(exc)) from None
    return Path(path)
