"""Reports over CloudFront logs and rehearsals (HTML, Markdown, PNG, JSON).

Names are imported lazily (matplotlib loads only when a chart or report is made).
"""

from __future__ import annotations

from edgeproof.lazy import lazy_getattr

__all__ = ["Document", "LogAggregate", "WeeklyResult", "build_weekly", "path_family"]

_LAZY = {
    "Document": "edgeproof.analytics.report.document",
    "LogAggregate": "edgeproof.analytics.aggregate",
    "path_family": "edgeproof.analytics.aggregate",
    "WeeklyResult": "edgeproof.analytics.report.weekly",
    "build_weekly": "edgeproof.analytics.report.weekly",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
