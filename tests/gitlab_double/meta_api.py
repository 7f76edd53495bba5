"""Instance endpoints: `/version`, `/metadata`, `/personal_access_tokens/self` and its rotation.

A rotation (`POST /personal_access_tokens/self/rotate`, gitlab.md) revokes the calling token at
once and answers with a new one, expiring on `expires_at` or a week from today. Reuse detection:
rotating again with the revoked token makes GitLab revoke the token that replaced it (and any
that replaced that), so two instances rotating the same token lose both.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from tests.gitlab_double.context import Call
from tests.gitlab_double.context import Reply
from tests.gitlab_double.errors import bad_params
from tests.gitlab_double.records import TokenRecord
from tests.gitlab_double.records import now_iso
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
    return Reply(200, _token_body(call.caller.token, call.caller.user.created_at))


def rotate_self(state: State, call: Call) -> Reply:
    """The calling token revoked, a new one minted with the same user, name and scopes."""
    old = call.caller.token
    if not {"api", "self_rotate"} & set(old.scopes):
        return Reply(
            403,
            {
                "error": "insufficient_scope",
                "error_description": "The request requires higher privileges than provided by "
                "the access token.",
                "scope": "api self_rotate",
            },
        )
    expires_at = call.params.get("expires_at")
    if expires_at is None:
        expires_at = (dt.date.today() + dt.timedelta(days=7)).isoformat()
    else:
        try:
            expires_at = dt.date.fromisoformat(str(expires_at)).isoformat()
        except ValueError:
            raise bad_params("expires_at is invalid") from None
    new = state.add_token(f"glpat-{secrets.token_hex(10)}", old.user_id, old.scopes)
    new.name = old.name
    new.expires_at = expires_at
    old.active = False
    old.rotated_to = new.token
    return Reply(200, {**_token_body(new, now_iso()), "token": new.token})


def detect_reuse(state: State, token: str | None) -> None:
    """A rotation asked with a token already rotated: every token minted from it is revoked
    (the request itself then fails, the token being revoked)."""
    record = state.tokens.get(token or "")
    if record is None or record.active:
        return
    successor = record.rotated_to
    while successor is not None and successor in state.tokens:
        minted = state.tokens[successor]
        minted.active = False
        successor = minted.rotated_to


def _token_body(token: TokenRecord, created_at: str) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "revoked": not token.active,
        "created_at": created_at,
        "description": None,
        "scopes": list(token.scopes),
        "user_id": token.user_id,
        "last_used_at": None,
        "active": token.active,
        "expires_at": token.expires_at,
    }
