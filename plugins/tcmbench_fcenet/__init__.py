"""FCENet ("Fourier Contour Embedding for Arbitrary-Shaped Text Detection",
Zhu et al., CVPR 2021) as a tcmbench plugin.

Registered through the ``tcmbench`` entry-point group exactly like a
third-party plugin. This module stays torch-free.
"""

from __future__ import annotations

__version__ = "0.1.0"
