"""Instance endpoints: `/version`, `/metadata`, `/personal_access_tokens/self`."""

from __future__ import annotations

from tests.gitlab_double.context import Call
from tests.gitlab_double.context import Reply
from tests.gitlab_double.state import State


def version(state: State, call: Call) -> Reply:
    settings = state.settings
    return Reply(200, {"version": settings.version, "revision": settings.revision})


def metadata(state: State, call: Call) -> Reply:
    """`Entities::Metadata`: `enterprise` tells EE from CE (gitlab.md §6)."""
    settings = state.settings
    return Reply(
        200,
        {
            "version": settings.version,
            "revision": settings.revision,
            "kas": {
                "enabled": False,
                "externalUrl": None,
                "externalK8sProxyUrl": None,
                "version": None,
            },
            "enterprise": settings.enterprise,
        },
    )


def token_self(state: State, call: Call) -> Reply:
    token = call.caller.token
    return Reply(
        200,
        {
            "id": token.id,
            "name": token.name,
            "revoked": not token.active,
            "created_at": call.caller.user.created_at,
            "description": None,
            "scopes": list(token.scopes),
            "user_id": token.user_id,
            "last_used_at": None,
            "active": token.active,
            "expires_at": token.expires_at,
        },
    )
