"""GitLab call metrics, from the CallRecord the GitLab module reports for every call.

The endpoint label is ``METHOD /path/template``: ids (numeric, or a group's URL-encoded path) become
``:id`` and the query is dropped, since a lookup's query holds an email or a username.
"""

from __future__ import annotations

from scim_bridge.gitlab.types import CallRecord
from scim_bridge.metrics.instruments import GITLAB_CALLS
from scim_bridge.metrics.instruments import GITLAB_DURATION

# Collections whose next path segment names one member of them (`/groups/acme%2Fdev`).
COLLECTIONS = frozenset({"users", "groups", "members", "projects", "namespaces", "emails"})
# Words that follow a collection without being an id (`/groups/:id/members/all`).
KEYWORDS = frozenset({"all", "self"})


def path_template(path: str) -> str:
    """``/groups/12/members/7?x=y`` → ``/groups/:id/members/:id``."""
    segments = path.partition("?")[0].partition("#")[0].strip("/").split("/")
    template = []
    for index, segment in enumerate(segments):
        after_collection = index > 0 and segments[index - 1] in COLLECTIONS
        if segment.isdigit() or (after_collection and segment not in KEYWORDS):
            segment = ":id"
        template.append(segment)
    return "/" + "/".join(template)


def endpoint(call: CallRecord) -> str:
    return f"{call.method.upper()} {path_template(call.path)}"


def outcome(call: CallRecord) -> str:
    """``error:404`` → ``error``: the status has a label of its own."""
    return call.outcome.partition(":")[0]


def record(call: CallRecord) -> None:
    name = endpoint(call)
    status = str(call.status) if call.status is not None else "none"
    GITLAB_CALLS.labels(name, status, outcome(call)).inc()
    if not call.planned:
        GITLAB_DURATION.labels(name).observe(call.duration_ms / 1000.0)
