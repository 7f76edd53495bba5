"""What a forked child must not inherit: gunicorn forks its workers from a process that may have
used the database already (migrations, the start-up banner)."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import TypeVar

Owner = TypeVar("Owner")


def in_forked_children(owner: Owner, forget: Callable[[Owner], None]) -> None:
    """Run ``forget(owner)`` in every child forked from now on, while ``owner`` lives.

    Registered once per owner, so nothing on a hot path asks which process it is in; the owner is
    held weakly, so registering never keeps it alive.
    """
    reference = weakref.ref(owner)

    def after_fork() -> None:
        alive = reference()
        if alive is not None:
            forget(alive)

    os.register_at_fork(after_in_child=after_fork)
