"""Shared test fixtures.

``shared_data`` points at ../shared/data (override with
TCMBENCH_SHARED_DATA); tests using it carry the ``realdata`` marker and skip
with a reason when it is absent, so a user's fresh checkout still passes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("TCMBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real reference data not found at {SHARED_DATA} (set TCMBENCH_SHARED_DATA)")
    return SHARED_DATA


def shared_file(rel: str) -> Path:
    """A file under ../shared/data, skipping the test when it is absent."""
    p = SHARED_DATA / rel
    if not p.exists():
        pytest.skip(f"real reference file not found: {p} (set TCMBENCH_SHARED_DATA)")
    return p


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep tests from reading or writing the user's caches."""
    monkeypatch.setenv("TCMBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "tcmbench-cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(autouse=True)
def _fresh_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """tcmbench reads its ``TCMBENCH_*`` limits once per process
    (:func:`tcmbench.safety.run_limits.env_positive_int`); a test that sets one
    with ``monkeypatch.setenv`` / ``delenv`` sees the new value at once,
    and the next test starts from the environment again."""
    from tcmbench.safety.run_limits import clear_limit_cache

    def cleared(method: Callable[..., None]) -> Callable[..., None]:
        def call(*args: Any, **kwargs: Any) -> None:
            method(*args, **kwargs)
            clear_limit_cache()

        return call

    clear_limit_cache()
    monkeypatch.setenv = cleared(monkeypatch.setenv)  # type: ignore[method-assign]
    monkeypatch.delenv = cleared(monkeypatch.delenv)  # type: ignore[method-assign]
    yield
    clear_limit_cache()
