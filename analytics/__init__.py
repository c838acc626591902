"""edgeproof analytics: CloudFront log readers, metrics, strategies, replay and reports.

The public API is listed in ``__all__``; names are imported lazily so that ``import edgeproof.analytics``
stays cheap (no pandas, no boto3) until a name is used.
"""

from __future__ import annotations

from edgeproof.lazy import lazy_getattr

__all__ = [
    "LOG_SCHEMA",
    "compare_strategies",
    "get_strategy",
    "list_strategies",
    "read_logs",
    "summarize",
]

_LAZY = {
    "LOG_SCHEMA": "edgeproof.analytics.schema",
    "read_logs": "edgeproof.analytics.reader",
    "summarize": "edgeproof.analytics.summary",
    "get_strategy": "edgeproof.analytics.strategies",
    "list_strategies": "edgeproof.analytics.strategies",
    "compare_strategies": "edgeproof.analytics.replay",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
