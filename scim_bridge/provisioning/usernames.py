"""GitLab usernames from Entra userNames (DESIGN.md, Users).

``Jane.Doe@contoso.com`` becomes ``Jane.Doe``: the part before ``@``, every character GitLab does
not allow replaced by ``_``, leading and trailing specials trimmed, never ending in ``.git`` or
``.atom`` (GitLab refuses those). Collisions are resolved by the caller with ``candidates``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.\-]")
_SPECIALS = "_.-"
_FORBIDDEN_ENDINGS = (".git", ".atom")
FALLBACK = "user"
MAX_SUFFIX = 50


def base_username(user_name: str) -> str:
    local = user_name.split("@", 1)[0]
    username = _NOT_ALLOWED.sub("_", local).strip(_SPECIALS)
    while username.lower().endswith(_FORBIDDEN_ENDINGS):
        head, _, tail = username.rpartition(".")
        username = f"{head}_{tail}"
    return username or FALLBACK


def candidates(user_name: str) -> Iterator[str]:
    """The base username, then ``base1``, ``base2``, ... up to ``MAX_SUFFIX``."""
    base = base_username(user_name)
    yield base
    for suffix in range(1, MAX_SUFFIX + 1):
        yield f"{base}{suffix}"
