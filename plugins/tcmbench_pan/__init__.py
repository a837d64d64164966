"""PANet ("Efficient and Accurate Arbitrary-Shaped Text Detection with Pixel
Aggregation Network", Wang et al., ICCV 2019) as a tcmbench plugin.

Registered through the ``tcmbench`` entry-point group exactly like a
third-party plugin. This module stays torch-free.
"""

from __future__ import annotations

__version__ = "0.1.0"
