"""Work the background worker repeats on a clock of its own, each in a daemon thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def every(
    seconds: float,
    action: Callable[[], object],
    stop: threading.Event,
    *,
    name: str,
    now: bool = False,
) -> threading.Thread:
    """Run ``action`` every ``seconds`` (the first time at once if ``now``) until ``stop`` is
    set. A failure is logged and the next time comes as usual: a database or a GitLab away for a
    while must not end the work for the life of the process."""

    def repeat() -> None:
        if now:
            _once(action, name)
        while not stop.wait(seconds):
            _once(action, name)

    thread = threading.Thread(target=repeat, name=name, daemon=True)
    thread.start()
    return thread


def _once(action: Callable[[], object], name: str) -> None:
    try:
        action()
    except Exception:
        log.exception("%s failed", name)
