"""TCM as a pluggy wrapper around detector building.

Kept torch-free at import time (the CLI imports every hook module at start).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from tcmbench.contract.hookspecs import hookimpl
from tcmbench.contract.spec import tcm_not_supported_message
from tcmbench.errors import PluginError


@hookimpl(wrapper=True)
def build_detector(spec: Any, config: Any) -> Generator[None, Any, Any]:
    """When ``config.tcm`` is set, turn the detector into its TCM variant.

    A detector that has not declared :class:`~tcmbench.contract.spec.TCMSupport`
    gets a clear error instead of silently training without TCM.
    """
    if getattr(config, "tcm", None) is None:
        return (yield)
    if getattr(spec, "tcm", None) is None:
        raise PluginError(tcm_not_supported_message(spec.name))
    detector = yield
    from tcmbench.tcm.wrap import apply_tcm

    return apply_tcm(detector, spec, config)
