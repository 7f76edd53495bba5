"""Every GitLab request the bridge makes, declared once: method, path, query and body.

The real managers send these requests (`Transport.send`, `Transport.rows`); the dry-run planner
records them (`planned.py`). Neither spells a path itself, so a dry-run audit line always names
the call the real client would make.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal
from urllib.parse import quote
from urllib.parse import urlencode

from scim_bridge.gitlab.types import Moderation

Method = Literal["GET", "POST", "PUT", "DELETE"]


@dataclass(frozen=True)
class Request:
    """One call to GitLab's REST API; `path` is relative to `/api/v4`."""

    method: Method
    path: str
    query: Mapping[str, Any] = field(default_factory=dict)
    body: dict[str, Any] | None = None

    def audit_path(self) -> str:
        """The path with its query, as a CallRecord shows it (`/users?username=jane`)."""
        return f"{self.path}?{urlencode(self.query, safe='[]@,')}" if self.query else self.path


def group_ref(id_or_path: int | str) -> str:
    """A URL segment for a group: its id, or its full path URL-encoded (`acme%2Fdev`)."""
    if isinstance(id_or_path, int) or str(id_or_path).isdigit():
        return str(int(id_or_path))
    return quote(str(id_or_path), safe="")


# -- instance (gitlab.md §6) ---------------------------------------------------------------


def metadata() -> Request:
    return Request("GET", "/metadata")


def current_user() -> Request:
    return Request("GET", "/user")


def token_info() -> Request:
    return Request("GET", "/personal_access_tokens/self")


def rotate_token(expires_at: str | None) -> Request:
    """GitLab >= 16.10; revokes the calling token at once (gitlab.md §1.1, token lifecycle)."""
    body = {"expires_at": expires_at} if expires_at else {}
    return Request("POST", "/personal_access_tokens/self/rotate", body=body)


# -- users (gitlab.md §1) ------------------------------------------------------------------


def get_user(user_id: int) -> Request:
    return Request("GET", f"/users/{int(user_id)}")


def users_by_identity(provider: str, extern_uid: str) -> Request:
    """Admin only (gitlab.md §1.1)."""
    return Request("GET", "/users", {"extern_uid": extern_uid, "provider": provider})


def users_by_username(username: str) -> Request:
    """Exact, case-insensitive."""
    return Request("GET", "/users", {"username": username})


def humans_by_username(username: str) -> Request:
    """`humans` leaves out bots, service accounts and internal users (gitlab.md §1.8)."""
    return Request("GET", "/users", {"username": username, "humans": "true"})


def users_matching(text: str) -> Request:
    """`search=` matches names, usernames and (for admins) emails."""
    return Request("GET", "/users", {"search": text})


def admins() -> Request:
    return Request("GET", "/users", {"admins": "true"})


def active_users() -> Request:
    """Every active account, oldest first, for a listing that streams (the access report).

    Keyset pagination, which `/users` needs past 50,000 rows (gitlab.md §1.11); the pages
    are followed by their `Link: rel="next"`, which offset pagination also gives.
    """
    return Request(
        "GET",
        "/users",
        {"active": "true", "pagination": "keyset", "order_by": "id", "sort": "asc"},
    )


def create_user(
    *, username: str, email: str, name: str, provider: str | None, extern_uid: str | None
) -> Request:
    """An SSO account: random password, confirmed, no mail, not admin (gitlab.md §1.2)."""
    if (provider is None) != (extern_uid is None):
        raise ValueError("provider and extern_uid go together")
    body: dict[str, Any] = {
        "username": username,
        "email": email,
        "name": name,
        "force_random_password": True,
        "reset_password": False,
        "skip_confirmation": True,
        "admin": False,
        "can_create_group": False,
    }
    if provider is not None:
        body.update(provider=provider, extern_uid=extern_uid)
    return Request("POST", "/users", body=body)


def edit_user(user_id: int, changes: dict[str, Any]) -> Request:
    """`PUT /users/:id` with only the given keys."""
    return Request("PUT", f"/users/{int(user_id)}", body=changes)


def set_identity(user_id: int, provider: str, extern_uid: str) -> Request:
    """GitLab finds or creates the identity by provider."""
    return edit_user(user_id, {"provider": provider, "extern_uid": extern_uid})


def add_email(user_id: int, email: str) -> Request:
    """A confirmed secondary email, the first step of an email change (gitlab.md §1.3)."""
    body = {"email": email, "skip_confirmation": True}
    return Request("POST", f"/users/{int(user_id)}/emails", body=body)


def make_primary_email(user_id: int, email: str) -> Request:
    """The second step: the secondary email becomes primary, no mail sent."""
    return edit_user(user_id, {"email": email, "skip_reconfirmation": True})


def moderate_user(user_id: int, action: Moderation) -> Request:
    return Request("POST", f"/users/{int(user_id)}/{action}")


def delete_user(user_id: int, *, hard: bool) -> Request:
    return Request("DELETE", f"/users/{int(user_id)}", {"hard_delete": "true"} if hard else {})


# -- groups (gitlab.md §1.9) ---------------------------------------------------------------


def get_group(id_or_path: int | str) -> Request:
    """Without the project list."""
    return Request("GET", f"/groups/{group_ref(id_or_path)}", {"with_projects": False})


def create_group(*, name: str, path: str, parent_id: int | None, visibility: str) -> Request:
    body: dict[str, Any] = {"name": name, "path": path, "visibility": visibility}
    if parent_id is not None:
        body["parent_id"] = parent_id
    return Request("POST", "/groups", body=body)


# -- members (gitlab.md §1.10) -------------------------------------------------------------


def list_members(group_id: int, *, inherited: bool, user_ids: list[int] | None = None) -> Request:
    """Direct members, or (`inherited`) direct and inherited ones; `user_ids` narrows them."""
    path = f"/groups/{int(group_id)}/members" + ("/all" if inherited else "")
    return Request("GET", path, {} if user_ids is None else {"user_ids[]": user_ids})


def add_members(group_id: int, user_ids: list[int], access_level: int) -> Request:
    """Several ids go as one comma-separated `user_id`; a single id as a number."""
    user_id: int | str = user_ids[0] if len(user_ids) == 1 else ",".join(map(str, user_ids))
    body = {"user_id": user_id, "access_level": access_level}
    return Request("POST", f"/groups/{int(group_id)}/members", body=body)


def edit_member(group_id: int, user_id: int, access_level: int) -> Request:
    body = {"access_level": access_level}
    return Request("PUT", f"/groups/{int(group_id)}/members/{int(user_id)}", body=body)


def remove_member(group_id: int, user_id: int) -> Request:
    return Request("DELETE", f"/groups/{int(group_id)}/members/{int(user_id)}")
