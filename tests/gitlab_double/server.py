"""`GitLabDouble`: the fake GitLab on a real local port, plus the helpers tests use.

python-gitlab talks real HTTP to it; tests seed state and inspect it through Python.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from typing import Any

from werkzeug.serving import BaseWSGIServer
from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server

from tests.gitlab_double.app import DoubleApp
from tests.gitlab_double.faults import Faults
from tests.gitlab_double.records import GroupRecord
from tests.gitlab_double.records import MailRecord
from tests.gitlab_double.records import MemberRecord
from tests.gitlab_double.requestlog import RequestLog
from tests.gitlab_double.requestlog import RequestRecord
from tests.gitlab_double.state import ACCESS_LEVELS
from tests.gitlab_double.state import USER_STATES
from tests.gitlab_double.state import State

ADMIN_SCOPES = ("api", "admin_mode")


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: tests read `double.requests` instead."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class GitLabDouble:
    """A fake GitLab REST API v4. User 1 is `root`, an admin owning `admin_token`."""

    def __init__(self, admin_token: str = "glpat-admin", *, seed: int = 0) -> None:
        self.state = State()
        self.faults = Faults(seed)
        self._log = RequestLog()
        self.app = DoubleApp(self.state, self.faults, self._log)
        self.admin_token = admin_token
        root = self.state.seed_user(
            "root", "admin@example.com", name="Administrator", is_admin=True
        )
        self.state.add_token(admin_token, root.id, ADMIN_SCOPES)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> GitLabDouble:
        self.app.stopping.clear()
        self._server = make_server(
            "127.0.0.1", 0, self.app, threaded=True, request_handler=_QuietHandler
        )
        server = self._server
        self._thread = threading.Thread(
            # A short poll keeps `stop()` (and so each test's teardown) fast.
            target=lambda: server.serve_forever(poll_interval=0.02),
            name="gitlab-double",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; held or delayed requests are released so nothing hangs."""
        self.app.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> GitLabDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the double is not started")
        return f"http://127.0.0.1:{self._server.server_port}"

    # -- instance behaviour --------------------------------------------------------------

    def down(self, status: int = 503, retry_after: float | None = None) -> None:
        """Every request answers `status` until `up()`, as when GitLab is unreachable."""
        self.app.outage = (status, retry_after)

    def up(self) -> None:
        self.app.outage = None

    @property
    def member_delete_limit_per_minute(self) -> int:
        return self.state.member_delete_limiter.limit

    @member_delete_limit_per_minute.setter
    def member_delete_limit_per_minute(self, limit: int) -> None:
        self.state.member_delete_limiter.limit = limit

    @property
    def member_delete_window(self) -> float:
        """Seconds of the members-delete window (60 in GitLab; shorten it to test recovery)."""
        return self.state.member_delete_limiter.window

    @member_delete_window.setter
    def member_delete_window(self, seconds: float) -> None:
        self.state.member_delete_limiter.window = seconds

    @property
    def settings(self) -> Any:
        """`version`, `revision`, `enterprise`, `admin_mode` (see `InstanceSettings`)."""
        return self.state.settings

    @property
    def internal_errors(self) -> list[BaseException]:
        """Exceptions the double raised while answering (bugs in the double itself)."""
        return list(self.app.internal_errors)

    # -- request log ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        return self._log.all()

    def calls(self, method: str | None = None, path: str | None = None) -> list[RequestRecord]:
        """Requests with this method and exact path (e.g. `"POST", "/api/v4/users"`)."""
        return self._log.matching(method, path)

    def clear_requests(self) -> None:
        self._log.clear()

    def held(self) -> int:
        """How many requests are waiting on a fault rule's `hold` event right now."""
        return self.app.held

    @property
    def mails(self) -> list[MailRecord]:
        """Mails GitLab would have sent (confirmation, reset_password, reconfirmation)."""
        with self.state.lock:
            return list(self.state.mails)

    # -- seeding -------------------------------------------------------------------------

    def add_token(self, token: str, user_id: int, scopes: Iterable[str] = ("api",)) -> None:
        with self.state.lock:
            if user_id not in self.state.users:
                raise KeyError(f"no user {user_id}")
            self.state.add_token(token, user_id, scopes)

    def set_token_scopes(self, token: str, scopes: Iterable[str]) -> None:
        with self.state.lock:
            self.state.tokens[token].scopes = list(scopes)

    def set_token_expiry(self, token: str, day: dt.date | None) -> None:
        """The token's ``expires_at`` as ``GET /personal_access_tokens/self`` reports it."""
        with self.state.lock:
            self.state.tokens[token].expires_at = day.isoformat() if day else None

    def add_user(
        self,
        username: str,
        email: str,
        name: str | None = None,
        is_admin: bool = False,
        state: str = "active",
        identities: Iterable[dict[str, str] | tuple[str, str]] = (),
        emails: Iterable[str] = (),
        last_activity_on: dt.date | None = None,
        user_type: str = "human",
    ) -> dict[str, Any]:
        """A confirmed user, without API validation; `emails` are confirmed secondaries.

        `user_type` makes a bot or internal user (`project_bot`, `service_account`, `ghost`, ...).
        """
        with self.state.lock:
            user = self.state.seed_user(
                username,
                email,
                name=name,
                is_admin=is_admin,
                state=state,
                identities=identities,
                emails=emails,
                last_activity_on=last_activity_on,
                user_type=user_type,
            )
            return user.to_dict()

    def add_group(
        self, path: str, parent: str | int | None = None, *, name: str | None = None
    ) -> dict[str, Any]:
        """A group; `add_group("acme/dev")` creates `dev` under the existing `acme`."""
        with self.state.lock:
            if parent is None and "/" in path:
                parent, path = path.rsplit("/", 1)
            parent_record = self._group(parent) if parent is not None else None
            group = self.state.seed_group(path, parent_record, name=name)
            return self._group_dict(group)

    def remove_group(self, ref: str | int) -> None:
        """A group gone for good behind the API's back (its delayed deletion ran, or it was
        transferred away): its id and path answer 404 from now on, its subgroups go with it."""
        with self.state.lock:
            self.state.remove_group(self._group(ref))

    def add_member(self, group: str | int, user_id: int, level: int) -> None:
        if level not in ACCESS_LEVELS:
            raise ValueError(f"unknown access level {level}")
        with self.state.lock:
            record = self._group(group)
            self.state.members[record.id][user_id] = MemberRecord(user_id, level)

    def remove_user(self, user_id: int) -> None:
        """Delete a user (and its memberships and tokens) behind the API's back."""
        with self.state.lock:
            self.state.remove_user(self.state.users[user_id])

    def set_user_state(self, user_id: int, state: str) -> None:
        if state not in USER_STATES:
            raise ValueError(f"unknown state {state!r}")
        with self.state.lock:
            self.state.users[user_id].state = state

    def rename_user(self, user_id: int, username: str) -> None:
        """Change a username behind the API's back (as an admin would in the UI)."""
        with self.state.lock:
            self.state.users[user_id].username = username

    def set_last_activity_on(self, user_id: int, day: dt.date | None) -> None:
        with self.state.lock:
            self.state.users[user_id].last_activity_on = day

    # -- inspection ----------------------------------------------------------------------

    def users(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [u.to_dict() for u in self.state.users.values()]

    def user(self, user_id: int) -> dict[str, Any] | None:
        with self.state.lock:
            user = self.state.users.get(user_id)
            return user.to_dict() if user else None

    def user_by_username(self, username: str) -> dict[str, Any] | None:
        with self.state.lock:
            user = self.state.user_by_username(username)
            return user.to_dict() if user else None

    def users_with_identity(self, provider: str, extern_uid: str) -> list[dict[str, Any]]:
        with self.state.lock:
            owner = self.state.identity_owner(provider, extern_uid)
            return [owner.to_dict()] if owner else []

    def group(self, ref: str | int) -> dict[str, Any] | None:
        with self.state.lock:
            group = self.state.group_by_ref(ref)
            return self._group_dict(group) if group else None

    def members(self, group: str | int) -> list[dict[str, int]]:
        """Direct members as `{"user_id", "access_level"}`."""
        with self.state.lock:
            record = self._group(group)
            return [
                {"user_id": m.user_id, "access_level": m.access_level}
                for m in self.state.members[record.id].values()
            ]

    def remove_member(self, group: str | int, user_id: int) -> None:
        """Remove a direct membership, as an admin would by hand."""
        with self.state.lock:
            del self.state.members[self._group(group).id][user_id]

    def _group(self, ref: str | int) -> GroupRecord:
        group = self.state.group_by_ref(ref)
        if group is None:
            raise KeyError(f"no group {ref!r}")
        return group

    def _group_dict(self, group: GroupRecord) -> dict[str, Any]:
        return {
            "id": group.id,
            "name": group.name,
            "path": group.path,
            "full_path": self.state.full_path(group),
            "parent_id": group.parent_id,
            "visibility": group.visibility,
            "marked_for_deletion_on": group.marked_for_deletion_on,
        }
