"""Evaluation protocols equal to the official scripts.

``evaluate(gt, predictions, protocol="icdar2015", **params) -> Result`` is
the one entry point; ``docs/protocols.md`` lists the protocols and their
parameters. Importing this package stays light (no shapely, no torch).
"""

from tcmbench.eval.api import evaluate
from tcmbench.eval.result import Result

__all__ = ["Result", "evaluate"]
