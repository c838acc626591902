"""Where the report's aggregate used to live; it is now :mod:`edgeproof.analytics.aggregate`, the one
aggregate that ``logs summarize``, the weekly report and the rehearsal all count with.

Only a name kept for ``edgeproof.analytics.report``'s lazy exports (``LogAggregate``, ``path_family``)
and for code written against it; nothing is defined here.
"""

from __future__ import annotations

from edgeproof.analytics.aggregate import Counts, LogAggregate, path_family

__all__ = ["Counts", "LogAggregate", "path_family"]
