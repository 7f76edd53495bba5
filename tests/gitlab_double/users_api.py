"""The Users API (`/users`, `/user`, emails, identities) with GitLab's exact answers.

Order of checks follows GL:lib/api/users.rb as summarised in gitlab.md §1.2 to §1.7.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.gitlab_double import entities
from tests.gitlab_double.context import Call
from tests.gitlab_double.context import Reply
from tests.gitlab_double.context import all_or_none
from tests.gitlab_double.context import present
from tests.gitlab_double.context import require
from tests.gitlab_double.context import to_bool
from tests.gitlab_double.context import to_int
from tests.gitlab_double.errors import bad_params
from tests.gitlab_double.errors import conflict
from tests.gitlab_double.errors import invalid
from tests.gitlab_double.errors import not_found
from tests.gitlab_double.pagination import keyset_by_id
from tests.gitlab_double.pagination import paginate
from tests.gitlab_double.records import EmailRecord
from tests.gitlab_double.records import IdentityRecord
from tests.gitlab_double.records import UserRecord
from tests.gitlab_double.records import now_iso
from tests.gitlab_double.state import State
from tests.gitlab_double.validation import email_is_valid
from tests.gitlab_double.validation import namespace_path_errors

PASSWORD_KEYS = ("password", "reset_password", "force_random_password")
MIN_PASSWORD = 8
MAX_NAME_LENGTH = 255
NOT_OWN_SECONDARY = "must be an already-added secondary email of the user"
SORT_KEYS = {
    "id": lambda u: u.id,
    "name": lambda u: u.name.lower(),
    "username": lambda u: u.username.lower(),
    "created_at": lambda u: (u.created_at, u.id),
}


def find_user(state: State, user_id: Any) -> UserRecord:
    user = state.users.get(to_int("id", user_id))
    if user is None:
        raise not_found("User")
    return user


def render_user(call: Call, user: UserRecord) -> dict[str, Any]:
    """Admins get `UserWithAdmin`, everyone else `UserBasic`."""
    if call.caller.is_admin:
        return entities.user_with_admin(user, call.base_url)
    return entities.user_basic(user, call.base_url)


# -- create / update / delete ---------------------------------------------------------


def create_user(state: State, call: Call) -> Reply:
    """`POST /users`: Grape checks, then admin, then save; conflicts only after a failed save."""
    p = call.params
    missing = [f"{n} is missing" for n in ("email", "name", "username") if not present(p, n)]
    if not any(k in p for k in PASSWORD_KEYS):
        missing.append(
            "password, reset_password, force_random_password are missing, "
            "at least one parameter must be provided"
        )
    if missing:
        raise bad_params(*missing)
    all_or_none(p, "extern_uid", "provider")
    call.caller.require_admin()

    email, username, name = str(p["email"]), str(p["username"]), str(p["name"])
    random_password = to_bool(p.get("force_random_password")) or to_bool(p.get("reset_password"))
    errors: dict[str, list[str]] = {}
    _check_email(state, email, errors)
    _check_username(state, username, errors)
    _check_name(name, errors)
    if not random_password:
        _check_password(p.get("password"), errors)
    if present(p, "extern_uid") and state.identity_owner(str(p["provider"]), str(p["extern_uid"])):
        errors.setdefault("identities.extern_uid", []).append("has already been taken")
    if errors:
        # gitlab.md §1.2: email conflict is checked first, then username, else validation.
        if state.users_by_any_email(email.lower()):
            raise conflict("Email has already been taken")
        if state.user_by_username(username):
            raise conflict("Username has already been taken")
        raise invalid(errors)

    user = UserRecord(
        id=state.next_user_id(),
        username=username,
        name=name,
        email=email,
        is_admin=to_bool(p.get("admin", False)),
        can_create_group=to_bool(p.get("can_create_group", True)),
        external=to_bool(p.get("external", False)),
        projects_limit=to_int("projects_limit", p.get("projects_limit", 100000)),
        password_automatically_set=random_password,
        note=p.get("note"),
    )
    if to_bool(p.get("skip_confirmation", False)):
        user.confirmed_at = now_iso()
    else:
        state.add_mail(user, "confirmation")
    if to_bool(p.get("reset_password", False)):
        user.reset_password_sent = True
        state.add_mail(user, "reset_password")
    if present(p, "extern_uid"):
        user.identities.append(IdentityRecord(str(p["provider"]), str(p["extern_uid"])))
    state.users[user.id] = user
    return Reply(201, entities.user_with_admin(user, call.base_url))


def update_user(state: State, call: Call, user_id: str) -> Reply:
    """`PUT /users/:id`: 409s are checked before saving (gitlab.md §1.3)."""
    p = call.params
    all_or_none(p, "extern_uid", "provider")
    call.caller.require_admin()
    user = find_user(state, user_id)
    email = str(p["email"]) if present(p, "email") else None
    username = str(p["username"]) if present(p, "username") else None
    if email and any(u.id != user.id for u in state.users_by_any_email(email)):
        raise conflict("Email has already been taken")
    if username:
        other = state.user_by_username(username)
        if other and other.id != user.id:
            raise conflict("Username has already been taken")

    errors: dict[str, list[str]] = {}
    if username and username != user.username:
        _check_username(state, username, errors, exclude=user)
    if "name" in p and not present(p, "name"):
        errors["name"] = ["can't be blank"]
    elif present(p, "name"):
        _check_name(str(p["name"]), errors)
    secondary = None
    if email and email.lower() != user.email.lower():
        secondary = next((e for e in user.emails if e.email.lower() == email.lower()), None)
        if not email_is_valid(email):
            errors["email"] = ["is invalid"]
        elif secondary is None and state.email_row_exists(email):
            errors["email"] = ["has already been taken"]
        elif secondary is None:
            errors["email"] = [NOT_OWN_SECONDARY]
    if present(p, "password"):
        _check_password(p["password"], errors)
    if errors:
        raise invalid(errors)

    if present(p, "name"):
        user.name = str(p["name"])
    if username:
        user.username = username
    if "admin" in p:
        user.is_admin = to_bool(p["admin"])
    if "can_create_group" in p:
        user.can_create_group = to_bool(p["can_create_group"])
    if "external" in p:
        user.external = to_bool(p["external"])
    if present(p, "projects_limit"):
        user.projects_limit = to_int("projects_limit", p["projects_limit"])
    if "note" in p:
        user.note = p["note"]
    if secondary is not None:
        _change_primary_email(state, user, secondary, to_bool(p.get("skip_reconfirmation")))
    if present(p, "extern_uid"):
        _assign_identity(state, user, str(p["provider"]), str(p["extern_uid"]))
    return Reply(200, entities.user_with_admin(user, call.base_url))


def delete_user(state: State, call: Call, user_id: str) -> Reply:
    """`DELETE /users/:id`: 409 for a sole group owner unless `hard_delete` (gitlab.md §1.6)."""
    call.caller.require_admin()
    user = find_user(state, user_id)
    hard = to_bool(call.params.get("hard_delete", False))
    sole_owned = state.sole_owned_groups(user.id)
    if sole_owned and not hard:
        raise conflict("User cannot be removed while is the sole-owner of a group")
    for group in sole_owned:
        if group.id in state.groups:
            state.remove_group(group)
    state.remove_user(user)
    return Reply(204)


# -- reads ----------------------------------------------------------------------------


def list_users(state: State, call: Call) -> Reply:
    """`GET /users` with the filters of gitlab.md §1.4; identity lookup needs an admin."""
    p = call.params
    all_or_none(p, "extern_uid", "provider")
    users = list(state.users.values())
    if present(p, "extern_uid"):
        call.caller.require_admin()
        owner = state.identity_owner(str(p["provider"]), str(p["extern_uid"]))
        users = [owner] if owner else []
    if present(p, "username"):
        wanted = str(p["username"]).lower()
        users = [u for u in users if u.username.lower() == wanted]
    if present(p, "search"):
        users = [u for u in users if _matches_search(u, str(p["search"]), call.caller.is_admin)]
    if to_bool(p.get("active", False)):
        users = [u for u in users if u.state == "active"]
    if to_bool(p.get("blocked", False)):
        users = [u for u in users if u.state in ("blocked", "ldap_blocked")]
    if to_bool(p.get("external", False)):
        users = [u for u in users if u.external]
    if to_bool(p.get("humans", False)):
        users = [u for u in users if u.user_type == "human"]
    if to_bool(p.get("exclude_internal", False)):
        users = [u for u in users if not u.internal]
    if to_bool(p.get("without_project_bots", False)):
        users = [u for u in users if u.user_type != "project_bot"]
    if to_bool(p.get("admins", False)):
        call.caller.require_admin()
        users = [u for u in users if u.is_admin]
    order_by = str(p.get("order_by", "id"))
    key = SORT_KEYS.get(order_by, SORT_KEYS["id"])
    users.sort(key=key, reverse=str(p.get("sort", "desc")) != "asc")
    if p.get("pagination") == "keyset" and order_by == "id":
        return keyset_by_id(call, users, lambda u: render_user(call, u), lambda u: u.id)
    return paginate(call, users, lambda u: render_user(call, u))


def get_user(state: State, call: Call, user_id: str) -> Reply:
    return Reply(200, render_user(call, find_user(state, user_id)))


def current_user(state: State, call: Call) -> Reply:
    """`GET /user`: `UserWithAdmin` for admins, `UserPublic` otherwise."""
    user = call.caller.user
    if user.is_admin:
        return Reply(200, entities.user_with_admin(user, call.base_url))
    return Reply(200, entities.user_public(user, call.base_url))


# -- emails and identities ------------------------------------------------------------


def add_email(state: State, call: Call, user_id: str) -> Reply:
    """`POST /users/:id/emails`: any existing email row answers 400 "has already been taken"."""
    require(call.params, "email")
    call.caller.require_admin()
    user = find_user(state, user_id)
    address = str(call.params["email"])
    if not email_is_valid(address):
        raise invalid({"email": ["is invalid"]})
    if state.email_row_exists(address):
        raise invalid({"email": ["has already been taken"]})
    confirmed = to_bool(call.params.get("skip_confirmation", False))
    record = EmailRecord(state.next_email_id(), address, now_iso() if confirmed else None)
    user.emails.append(record)
    if not confirmed:
        state.add_mail(user, "confirmation", to=address)
    return Reply(201, entities.email(record))


def list_emails(state: State, call: Call, user_id: str) -> Reply:
    call.caller.require_admin()
    user = find_user(state, user_id)
    return paginate(call, user.emails, entities.email)


def delete_identity(state: State, call: Call, user_id: str, provider: str) -> Reply:
    """`DELETE /users/:id/identities/:provider`: 204, or 404 Identity Not Found."""
    call.caller.require_admin()
    user = find_user(state, user_id)
    identity = next((i for i in user.identities if i.provider == provider), None)
    if identity is None:
        raise not_found("Identity")
    user.identities.remove(identity)
    return Reply(204)


# -- helpers --------------------------------------------------------------------------


def _check_email(state: State, email: str, errors: dict[str, list[str]]) -> None:
    if not email_is_valid(email):
        errors.setdefault("email", []).append("is invalid")
    elif state.email_row_exists(email):
        errors.setdefault("email", []).append("has already been taken")


def _check_username(
    state: State, username: str, errors: dict[str, list[str]], exclude: UserRecord | None = None
) -> None:
    """Format, reserved names, and uniqueness among user and top-level group namespaces."""
    found = namespace_path_errors(username)
    other = state.user_by_username(username)
    taken_by_user = other is not None and other is not exclude
    taken_by_group = any(g.path.lower() == username.lower() for g in state.children(None))
    if taken_by_user or taken_by_group:
        found.append("has already been taken")
    if found:
        errors.setdefault("username", []).extend(found)


def _check_name(name: str, errors: dict[str, list[str]]) -> None:
    """`validates :name, presence: true, length: { maximum: 255 }` (GL:app/models/user.rb)."""
    if len(name) > MAX_NAME_LENGTH:
        errors.setdefault("name", []).append(
            f"is too long (maximum is {MAX_NAME_LENGTH} characters)"
        )


def _check_password(password: Any, errors: dict[str, list[str]]) -> None:
    if not password:
        errors["password"] = ["can't be blank"]
    elif len(str(password)) < MIN_PASSWORD:
        errors["password"] = [f"is too short (minimum is {MIN_PASSWORD} characters)"]


def _change_primary_email(
    state: State, user: UserRecord, secondary: EmailRecord, skip_reconfirmation: bool
) -> None:
    """Swap primary and secondary; unconfirmed ones wait for reconfirmation (a mail)."""
    if not (skip_reconfirmation or secondary.confirmed_at):
        user.unconfirmed_email = secondary.email
        state.add_mail(user, "reconfirmation", to=secondary.email)
        return
    previous, previous_confirmed = user.email, user.confirmed_at
    user.emails.remove(secondary)
    user.email = secondary.email
    user.confirmed_at = user.confirmed_at or now_iso()
    user.unconfirmed_email = None
    user.emails.append(EmailRecord(state.next_email_id(), previous, previous_confirmed))


def _assign_identity(state: State, user: UserRecord, provider: str, extern_uid: str) -> None:
    """`identities.find_or_create_by(provider)` then update; GitLab ignores a failed update.

    An extern_uid already held by another user fails the Identity uniqueness validation and,
    as in GitLab, the PUT still answers 200 with the identity unchanged.
    """
    owner = state.identity_owner(provider, extern_uid)
    if owner is not None and owner is not user:
        return
    identity = next((i for i in user.identities if i.provider == provider), None)
    if identity is None:
        user.identities.append(IdentityRecord(provider, extern_uid))
    else:
        identity.extern_uid = extern_uid


def _matches_search(user: UserRecord, term: str, admin: bool) -> bool:
    """Name/username substring; a full email address matches primary or secondary (admins)."""
    lowered = term.lower()
    if lowered in user.name.lower() or lowered in user.username.lower():
        return True
    if not admin:
        return False
    return user.email.lower() == lowered or any(
        e.email.lower() == lowered and e.confirmed_at for e in user.emails
    )


def is_recently_active(user: UserRecord, days: int = 90) -> bool:
    return user.last_activity_on is not None and user.last_activity_on > (
        dt.date.today() - dt.timedelta(days=days)
    )
