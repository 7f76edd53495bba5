"""Users: lookups, create, update, email change, identity, moderation, delete (gitlab.md §1)."""

from __future__ import annotations

from collections.abc import Iterator

from scim_bridge.gitlab import endpoints
from scim_bridge.gitlab.endpoints import Request
from scim_bridge.gitlab.errors import ConflictError
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.paging import each_row
from scim_bridge.gitlab.transport import Transport
from scim_bridge.gitlab.transport import as_dict
from scim_bridge.gitlab.types import GitLabUser
from scim_bridge.gitlab.types import Moderation


class UserManager:
    """`/users`. Every method raises only `scim_bridge.gitlab.errors` errors."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    # -- lookups ---------------------------------------------------------------------------

    def get(self, user_id: int) -> GitLabUser:
        """`GET /users/:id`; 404 → NotFoundError."""
        return self._user(endpoints.get_user(user_id))

    def find_by_identity(self, provider: str, extern_uid: str) -> GitLabUser | None:
        """`GET /users?extern_uid=&provider=` (admin only; gitlab.md §1.1)."""
        return self._first(endpoints.users_by_identity(provider, extern_uid))

    def find_by_username(self, username: str) -> GitLabUser | None:
        """`GET /users?username=`: exact, case-insensitive."""
        return self._first(endpoints.users_by_username(username))

    def find_by_email(self, email: str) -> GitLabUser | None:
        """The user whose *primary* email is `email` (case-insensitive), if any.

        `search=` also matches names, usernames and (for admins) secondary emails, so the
        answer is filtered here.
        """
        wanted = email.lower()
        rows = self._t.rows(endpoints.users_matching(email), get_all=True)
        return next(
            (GitLabUser.from_api(r) for r in rows if str(r.get("email", "")).lower() == wanted),
            None,
        )

    def is_human(self, username: str) -> bool:
        """Whether GitLab counts the account as a person: `GET /users?username=&humans=true`.

        `humans` leaves out bots, service accounts and internal users such as the ghost user or
        the support bot, which GitLab does not mark with `bot` (gitlab.md §1.8).
        """
        return self._first(endpoints.humans_by_username(username)) is not None

    def admins(self) -> list[GitLabUser]:
        """Every administrator: `GET /users?admins=true` (all pages)."""
        rows = self._t.rows(endpoints.admins(), get_all=True)
        return [GitLabUser.from_api(row) for row in rows]

    def each_with_identity(self, provider: str) -> Iterator[GitLabUser]:
        """Every active account with an identity under `provider`, oldest first, a page at a
        time (admin only: others see no identities).

        GitLab filters by identity only for one `extern_uid` (gitlab.md §1.4), so this reads
        `GET /users?active=true` page by page and keeps the accounts that carry one.
        """
        for row in each_row(self._t, endpoints.active_users()):
            user = GitLabUser.from_api(row)
            if user.identity(provider) is not None:
                yield user

    # -- writes ----------------------------------------------------------------------------

    def create(
        self, *, username: str, email: str, name: str, provider: str | None, extern_uid: str | None
    ) -> GitLabUser:
        """`POST /users` for an SSO account: random password, confirmed, no mail, not admin.

        409 "Email has already been taken" is checked before the username one (gitlab.md §1.2).
        """
        return self._user(
            endpoints.create_user(
                username=username, email=email, name=name, provider=provider, extern_uid=extern_uid
            )
        )

    def update(
        self, user_id: int, *, name: str | None = None, username: str | None = None
    ) -> GitLabUser:
        """`PUT /users/:id` with only the given keys (nothing given: a plain `get`)."""
        changes = {k: v for k, v in (("name", name), ("username", username)) if v is not None}
        if not changes:
            return self.get(user_id)
        return self._user(endpoints.edit_user(user_id, changes))

    def set_identity(self, user_id: int, provider: str, extern_uid: str) -> None:
        """`PUT /users/:id {provider, extern_uid}`: GitLab finds or creates by provider.

        GitLab ignores a failed identity save and still answers 200 (an extern_uid already
        linked to another account fails Identity's uniqueness check), so the answer is read
        back: ConflictError (status None) when the identity did not take.
        """
        user = self._user(endpoints.set_identity(user_id, provider, extern_uid))
        identity = user.identity(provider)
        if identity is None or identity.extern_uid.lower() != extern_uid.lower():
            raise ConflictError(
                f"GitLab did not link {provider} identity {extern_uid!r} to user {user_id}: "
                "it is probably linked to another account",
                status=None,
            )

    def change_email(self, user_id: int, email: str) -> None:
        """Add `email` as a confirmed secondary, then make it primary (gitlab.md §1.3).

        The primary email may only become an already-added secondary one; both steps skip
        confirmation so no mail is sent. A 400 "has already been taken" on the first step is
        expected when the user already has that address; the PUT then decides (409 if the
        address belongs to someone else).
        """
        try:
            self._t.send(endpoints.add_email(user_id, email))
        except InvalidError as error:
            if not any("taken" in m for m in error.errors.get("email", [])):
                raise
        self._user(endpoints.make_primary_email(user_id, email))

    # -- moderation (gitlab.md §1.5) ----------------------------------------------------------

    def moderate(self, user_id: int, action: Moderation) -> None:
        """`POST /users/:id/<action>`, where GitLab is idempotent: `block` of a blocked user
        answers 201 `null`, `unblock` of an active one 201 `false`, both success. `deactivate`
        is 403 for anyone active in the last 90 days (ForbiddenError): prefer `block`."""
        self._t.send(endpoints.moderate_user(user_id, action))

    def block(self, user_id: int) -> None:
        """Deprovisioning's default: the account stays, and cannot sign in."""
        self.moderate(user_id, "block")

    def delete(self, user_id: int, *, hard: bool = False) -> None:
        """`DELETE /users/:id`; 409 for a sole group owner unless `hard` (gitlab.md §1.6)."""
        self._t.send(endpoints.delete_user(user_id, hard=hard))

    # -- helpers -----------------------------------------------------------------------------

    def _user(self, request: Request) -> GitLabUser:
        return GitLabUser.from_api(as_dict(self._t.send(request)))

    def _first(self, request: Request) -> GitLabUser | None:
        rows = self._t.rows(request, get_all=False)
        return GitLabUser.from_api(rows[0]) if rows else None
