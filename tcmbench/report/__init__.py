"""The HTML report of one evaluation (``tcmbench evaluate --report DIR``).

The figures with their provenance, a threshold curve re-scored by the
protocol, recall by text size / orientation / curvature, a sortable
per-image table and thumbnails of the worst images with every outcome drawn.
matplotlib (the ``report`` extra) is imported only when a report is written.
"""

from __future__ import annotations

from tcmbench.report.build import check_report_dir, write_evaluation_report

__all__ = ["check_report_dir", "write_evaluation_report"]
