"""The core's default ``build_detector`` implementation.

It runs last so that wrappers (TCM) and plugins that build their own model
take precedence; it only assembles the parts the spec builds.
"""

from __future__ import annotations

from typing import Any

from tcmbench.contract.hookspecs import hookimpl


@hookimpl(trylast=True)
def build_detector(spec: Any, config: Any) -> Any:
    from tcmbench.models.detector import Detector

    return Detector(spec.build_parts(config))
