"""Listings read a page at a time, for reports over every account or member of a large group.

`Transport.rows` reads all pages into one list, which suits the bridge's lookups (a handful of
rows); a report over 10,000 accounts must hold only the page it is on. Each page is one call,
made through the transport (audited, paced by its gate, errors translated) when the row before
it has been consumed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gitlab
from gitlab.client import GitlabList

from scim_bridge.gitlab.endpoints import Request
from scim_bridge.gitlab.transport import PER_PAGE
from scim_bridge.gitlab.transport import Transport


def each_row(transport: Transport, request: Request) -> Iterator[dict[str, Any]]:
    """The rows of a GET listing, following GitLab's `Link: rel="next"` page by page."""
    query = {**request.query, "per_page": PER_PAGE}
    listing = transport.call(lambda gl: gl.http_list(request.path, query_data=query, iterator=True))
    assert isinstance(listing, GitlabList), "iterator=True always answers a GitlabList"
    while True:
        try:
            row = transport.call(lambda gl: next(_on(listing, gl)))
        except StopIteration:
            return
        yield dict(row)


def _on(listing: GitlabList, gl: gitlab.Gitlab) -> GitlabList:
    """The listing, its next page fetched with ``gl``: the transport's client of this call, which
    carries the token in use now (a rotation during a long report must not send the old one)."""
    listing._gl = gl  # python-gitlab keeps the client it was made with; no public way to swap it
    return listing
