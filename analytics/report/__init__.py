"""Reports over CloudFront logs and rehearsals (HTML, Markdown, PNG, JSON).

Names are imported lazily (matplotlib loads only when a chart or report is made).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Document", "LogAggregate", "WeeklyResult", "build_weekly", "path_family"]

_LAZY = {
    "Document": "analytics.report.document",
    "LogAggregate": "analytics.report.aggregate",
    "path_family": "analytics.report.aggregate",
    "WeeklyResult": "analytics.report.weekly",
    "build_weekly": "analytics.report.weekly",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'analytics.report' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
