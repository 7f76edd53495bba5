"""`GroupIds`: the groups already resolved by full path, so a path costs one `GET` per process.

Every membership run names its group by path (`gitlab_group:<path>`) and GitLab addresses members
by group id; resolving the path on every run doubled the calls of a one-member add. A group's id
does not change while it lives, so the answer is kept until GitLab says 404: for the path itself,
or for any call on that id (the group was deleted, or transferred away). Paths are keyed
case-insensitively, as GitLab finds them (`find_by_full_path`).
"""

from __future__ import annotations

import threading

from scim_bridge.gitlab.types import GitLabGroup


class GroupIds:
    """Thread-safe: the worker's and the request threads share one client."""

    def __init__(self) -> None:
        self._by_path: dict[str, GitLabGroup] = {}
        self._lock = threading.Lock()

    def get(self, path: str) -> GitLabGroup | None:
        with self._lock:
            return self._by_path.get(path.lower())

    def remember(self, path: str, group: GitLabGroup) -> None:
        """`group` as found by `path` (also under its own `full_path`, which may differ in case)."""
        with self._lock:
            self._by_path[path.lower()] = group
            self._by_path[group.full_path.lower()] = group

    def forget_path(self, path: str) -> None:
        with self._lock:
            self._by_path.pop(path.lower(), None)

    def forget_id(self, group_id: int) -> None:
        """GitLab answered 404 for a call on this id: every path that led to it resolves again."""
        with self._lock:
            for path in [p for p, g in self._by_path.items() if g.id == group_id]:
                del self._by_path[path]

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_path)
