"""tcmbench: a workbench for scene text detection research.

Importing the package is cheap on purpose: torch and every heavy dependency
are imported lazily by the modules that need them, so ``tcmbench --help`` and
the dataset / scoring commands start fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
