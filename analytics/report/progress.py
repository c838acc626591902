"""The progress line of the reports: the kernel's one :class:`edgeproof.progress.Progress`.

Kept as a name (not a copy) so that ``edgeproof.analytics.report.weekly`` keeps importing it from here;
the line itself (terminal redraw, periodic plain lines in CI logs) is written once, in the kernel,
where the rehearsal and the origin's commands can use it too.
"""

from __future__ import annotations

from edgeproof.progress import Progress

__all__ = ["Progress"]
