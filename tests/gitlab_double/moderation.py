"""User moderation: block, unblock, deactivate, activate, ban, unban (gitlab.md §1.5).

Each answers 201 with `true`, `false` or `null` (already in the target state), or 403: the
endpoint's own checks use `forbidden!` ("403 Forbidden - <reason>"), the services' refusals
come back as the bare message.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.gitlab_double.context import Call
from tests.gitlab_double.context import Caller
from tests.gitlab_double.context import Reply
from tests.gitlab_double.errors import forbidden
from tests.gitlab_double.errors import refused
from tests.gitlab_double.records import UserRecord
from tests.gitlab_double.state import BLOCKED_STATES
from tests.gitlab_double.state import State
from tests.gitlab_double.users_api import find_user
from tests.gitlab_double.users_api import is_recently_active

DORMANT_DAYS = 90


def _block(caller: Caller, user: UserRecord) -> bool | None:
    if user.state == "ldap_blocked":
        raise forbidden("LDAP blocked users cannot be modified by the API")
    if user.id == caller.user.id:
        raise forbidden("The API initiating user cannot be blocked by the API")
    if user.state in BLOCKED_STATES:
        return None  # `break if user.blocked?` → 201 null
    user.state = "blocked"
    return True


def _unblock(caller: Caller, user: UserRecord) -> bool | None:
    if user.state == "ldap_blocked":
        raise forbidden("LDAP blocked users cannot be unblocked by the API")
    if user.state == "deactivated":
        raise forbidden("Deactivated users cannot be unblocked by the API")
    if user.state == "active":
        return False  # UnblockService fails: no transition from active
    user.state = "active"
    return True


def _deactivate(caller: Caller, user: UserRecord) -> bool | None:
    if user.state == "deactivated":
        return None
    if user.state in BLOCKED_STATES:
        raise refused("Error occurred. A blocked user cannot be deactivated")
    if is_recently_active(user, DORMANT_DAYS):
        raise refused(
            f"The user you are trying to deactivate has been active in the past {DORMANT_DAYS} "
            "days and cannot be deactivated"
        )
    user.state = "deactivated"
    return True


def _activate(caller: Caller, user: UserRecord) -> bool | None:
    if user.state in BLOCKED_STATES:
        raise refused("Error occurred. A blocked user must be unblocked to be activated")
    user.state = "active"
    return True


def _ban(caller: Caller, user: UserRecord) -> bool | None:
    if user.state != "active":
        raise refused(f"You cannot ban {user.state} users.")
    user.state = "banned"
    return True


def _unban(caller: Caller, user: UserRecord) -> bool | None:
    if user.state != "banned":
        raise refused(f"You cannot unban {user.state} users.")
    user.state = "active"
    return True


ACTIONS: dict[str, Callable[[Caller, UserRecord], bool | None]] = {
    "block": _block,
    "unblock": _unblock,
    "deactivate": _deactivate,
    "activate": _activate,
    "ban": _ban,
    "unban": _unban,
}


def moderate(state: State, call: Call, user_id: str, action: str) -> Reply:
    """`POST /users/:id/<action>` (admin only; 404 User Not Found)."""
    call.caller.require_admin()
    user = find_user(state, user_id)
    return Reply(201, ACTIONS[action](call.caller, user))
