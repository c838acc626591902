"""Reports over CloudFront logs and rehearsals (HTML, Markdown, PNG, JSON).

Names are imported lazily (matplotlib loads only when a chart or report is made).
"""

from __future__ import annotations

from edgeproof.lazy import lazy_getattr

__all__ = ["Document", "LogAggregate", "WeeklyResult", "build_weekly", "path_family"]

_LAZY = {
    "Document": "analytics.report.document",
    "LogAggregate": "analytics.report.aggregate",
    "path_family": "analytics.report.aggregate",
    "WeeklyResult": "analytics.report.weekly",
    "build_weekly": "analytics.report.weekly",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
