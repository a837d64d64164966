"""The hostile-input suite: hypothesis profiles, the per-input contract and
a count of what ran.

Every fuzz test feeds generated input to a reader or a protocol and asserts
the one contract tcmbench promises for bad input (issue 10): the call either
returns a result that is well formed, or raises a
:class:`~tcmbench.errors.TcmbenchError` (the CLI turns it into one line,
exit 2) -- never another exception, and never slower than
:data:`TIME_BOUND_S` per input. A crash (segfault) ends the pytest process,
which the long run reports as a failure.

Profiles: the normal test run uses hypothesis' default settings (100
examples per test, fewer for the slow protocol tests). The long run::

    pytest -m fuzz --hypothesis-profile=long

uses :data:`LONG_EXAMPLES` examples per test; the terminal summary prints
how many inputs ran, per target.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings

from tcmbench.errors import TcmbenchError

#: Seconds one input may take (generous: the machine is a shared 2-core
#: CPU; real inputs of these sizes take milliseconds).
TIME_BOUND_S = float(os.environ.get("TCMBENCH_FUZZ_TIME_BOUND", "5"))
LONG_EXAMPLES = int(os.environ.get("TCMBENCH_FUZZ_LONG_EXAMPLES", "6000"))

settings.register_profile(
    "long",
    max_examples=LONG_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)

#: inputs run per target, and how each ended ("ok" / "rejected").
COUNTS: Counter[tuple[str, str]] = Counter()
_SLOWEST: dict[str, float] = {}

T = TypeVar("T")


def fuzz_settings(fast_examples: int | None = None) -> settings:
    """Settings for one fuzz test: the active profile (``long`` when asked
    for), else the default with ``fast_examples`` examples."""
    base = settings()
    examples = base.max_examples
    if fast_examples is not None and examples < LONG_EXAMPLES:
        examples = min(examples, fast_examples)
    return settings(
        base,
        max_examples=examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,
        ],
    )


def contract(target: str, call: Callable[[], T]) -> T | None:
    """Run ``call`` under the hostile-input contract; the result, or None
    when the input was rejected with a TcmbenchError."""
    start = time.perf_counter()
    try:
        result = call()
        outcome = "ok"
    except TcmbenchError as exc:
        message = str(exc)
        assert message.strip(), f"{target}: empty error message"
        assert "Traceback" not in message
        result = None
        outcome = "rejected"
    except BaseException as exc:
        _record_failure(target, f"{type(exc).__name__}: {exc}"[:500])
        raise
    elapsed = time.perf_counter() - start
    COUNTS[(target, outcome)] += 1
    _SLOWEST[target] = max(_SLOWEST.get(target, 0.0), elapsed)
    if elapsed >= TIME_BOUND_S:
        _record_failure(target, f"one input took {elapsed:.1f} s (bound {TIME_BOUND_S} s)")
    assert elapsed < TIME_BOUND_S, (
        f"{target}: one input took {elapsed:.1f} s (bound {TIME_BOUND_S} s)"
    )
    if COUNT_FILE and sum(COUNTS.values()) % 250 == 0:
        _write_counts()
    return result


#: Where a long run keeps its running totals (``TCMBENCH_FUZZ_COUNT_FILE``):
#: rewritten every 250 inputs and at the end, so a run stopped early still
#: says how many inputs it ran and whether any failed.
COUNT_FILE = os.environ.get("TCMBENCH_FUZZ_COUNT_FILE", "")
FAILURES: list[str] = []


def _record_failure(target: str, what: str) -> None:
    FAILURES.append(f"{target}: {what}")
    if COUNT_FILE:
        _write_counts()


def _write_counts() -> None:
    import json

    doc = {
        "inputs": sum(COUNTS.values()),
        "per_target": {
            t: {"ok": COUNTS[(t, "ok")], "rejected": COUNTS[(t, "rejected")]}
            for t in sorted({t for t, _ in COUNTS})
        },
        "slowest_ms": {t: round(v * 1000, 1) for t, v in sorted(_SLOWEST.items())},
        "failures": FAILURES,
    }
    tmp = f"{COUNT_FILE}.tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=1)
    os.replace(tmp, COUNT_FILE)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.fuzz)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not COUNTS:
        return
    if COUNT_FILE:
        _write_counts()
    targets = sorted({t for t, _ in COUNTS})
    total = sum(COUNTS.values())
    terminalreporter.section("fuzz inputs")
    for target in targets:
        ok, rejected = COUNTS[(target, "ok")], COUNTS[(target, "rejected")]
        terminalreporter.write_line(
            f"{target}: {ok + rejected} inputs ({ok} accepted, {rejected} rejected with a "
            f"one-line error), slowest {_SLOWEST[target] * 1000:.0f} ms"
        )
    terminalreporter.write_line(f"fuzz total: {total} inputs over {len(targets)} targets")
