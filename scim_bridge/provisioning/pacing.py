"""Pacing GitLab's counted limits the way GitLab counts them: N calls in any rolling window.

GitLab allows 60 member deletions per group per minute (gitlab.md). A token bucket with a burst
of 60 refilling at one a second admits 60 + t deletions in t seconds, one more than GitLab takes
in the same minute; a rolling window admits exactly what GitLab does. The window is a second
longer than GitLab's, because the bridge counts a call just before GitLab receives it.

The count lives in the database (``store/pacing.py``): a deletion one process made counts for
every other (gunicorn's workers, the background worker, other instances), and a paced job that
another process takes up later still waits.
"""

from __future__ import annotations

from scim_bridge.store.pacing import CallWindows

MARGIN_SECONDS = 1.0


class SharedWindow:
    """At most ``limit`` calls per key within any ``window`` seconds (plus a margin)."""

    def __init__(self, windows: CallWindows, limit: int, window: float) -> None:
        self.windows = windows
        self.limit = limit
        self.window = window + MARGIN_SECONDS

    def take(self, key: str) -> float | None:
        """Count one call for ``key``: None if allowed now, else the seconds until one is."""
        return self.windows.take(key, self.limit, self.window)
