"""GitLab's offset pagination: `page`/`per_page` (default 20, max 100) and its headers; and, for
`GET /users` ordered by id, its keyset pagination.

Headers per gitlab.md §1.11: `X-Page`, `X-Per-Page`, `X-Total`, `X-Total-Pages`,
`X-Next-Page`, `X-Prev-Page` (empty when there is none) and `Link` with absolute URLs.

Keyset (`pagination=keyset`, gitlab.md §1.11): no page numbers or totals, only a `Link` with
`rel="next"` while rows remain, whose opaque `cursor` names the last row given; the next page
starts after that row however the rows before it changed meanwhile (offset pages shift when one
is removed, and skip a row). Only the id ordering is modelled: it is the one the bridge asks for.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import TypeVar
from urllib.parse import urlencode

from tests.gitlab_double.context import Call
from tests.gitlab_double.context import Reply

T = TypeVar("T")
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100


def _number(value: Any, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


def paginate(call: Call, items: Sequence[T], render: Callable[[T], Any]) -> Reply:
    """One page of `items`, rendered, with the pagination headers."""
    per_page = min(_number(call.query.get("per_page"), DEFAULT_PER_PAGE), MAX_PER_PAGE)
    page = _number(call.query.get("page"), 1)
    total = len(items)
    total_pages = max(1, math.ceil(total / per_page))
    chosen = items[(page - 1) * per_page : page * per_page]
    next_page = page + 1 if page < total_pages else None
    prev_page = page - 1 if 1 < page <= total_pages + 1 else None
    headers = {
        "X-Page": str(page),
        "X-Per-Page": str(per_page),
        "X-Total": str(total),
        "X-Total-Pages": str(total_pages),
        "X-Next-Page": str(next_page or ""),
        "X-Prev-Page": str(prev_page or ""),
    }
    links = []
    for rel, number in (("prev", prev_page), ("next", next_page), ("first", 1)):
        if number:
            links.append(f'<{_page_url(call, number, per_page)}>; rel="{rel}"')
    links.append(f'<{_page_url(call, total_pages, per_page)}>; rel="last"')
    headers["Link"] = ", ".join(links)
    return Reply(200, [render(item) for item in chosen], headers)


def _page_url(call: Call, page: int, per_page: int) -> str:
    """The request's own URL with `page`/`per_page` replaced, other parameters kept."""
    pairs = [(k, v) for k, v in call.query.items(multi=True) if k not in ("page", "per_page")]
    pairs += [("page", str(page)), ("per_page", str(per_page))]
    return f"{call.base_url}{call.path}?{urlencode(pairs)}"


def keyset_by_id(
    call: Call, items: Sequence[T], render: Callable[[T], Any], id_of: Callable[[T], int]
) -> Reply:
    """One keyset page of ``items`` (already in id order, ``sort`` asc or desc) after the
    request's ``cursor``, with ``Link: <…cursor=…>; rel="next"`` when more remain."""
    per_page = min(_number(call.query.get("per_page"), DEFAULT_PER_PAGE), MAX_PER_PAGE)
    descending = str(call.query.get("sort", "desc")) != "asc"
    after = _cursor_id(call.query.get("cursor"))
    if after is not None:
        items = [
            item for item in items if (id_of(item) < after if descending else id_of(item) > after)
        ]
    chosen = items[:per_page]
    headers = {"X-Per-Page": str(per_page)}
    if len(items) > per_page:
        cursor = _cursor(id_of(chosen[-1]))
        pairs = [(k, v) for k, v in call.query.items(multi=True) if k not in ("cursor", "page")]
        pairs.append(("cursor", cursor))
        headers["Link"] = f'<{call.base_url}{call.path}?{urlencode(pairs)}>; rel="next"'
    return Reply(200, [render(item) for item in chosen], headers)


def _cursor(last_id: int) -> str:
    """As GitLab spells it: base64 of the last row's ordering values, as JSON."""
    return base64.urlsafe_b64encode(json.dumps({"id": str(last_id), "_kd": "n"}).encode()).decode()


def _cursor_id(cursor: Any) -> int | None:
    if not cursor:
        return None
    try:
        return int(json.loads(base64.urlsafe_b64decode(str(cursor)))["id"])
    except (ValueError, KeyError, TypeError):
        return None
