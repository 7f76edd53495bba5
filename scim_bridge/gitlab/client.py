"""`GitLab`: the bridge's one handle on a GitLab instance (users, groups, members managers)."""

from __future__ import annotations

from typing import Any

from scim_bridge.gitlab import endpoints
from scim_bridge.gitlab.api import GitLabApi
from scim_bridge.gitlab.errors import GitLabError
from scim_bridge.gitlab.group_ids import GroupIds
from scim_bridge.gitlab.groups import GroupManager
from scim_bridge.gitlab.members import MemberManager
from scim_bridge.gitlab.transport import OnCall
from scim_bridge.gitlab.transport import TokenSource
from scim_bridge.gitlab.transport import Transport
from scim_bridge.gitlab.transport import as_dict
from scim_bridge.gitlab.types import GitLabUser
from scim_bridge.gitlab.types import RotatedToken
from scim_bridge.gitlab.users import UserManager


class GitLab:
    """Real calls through python-gitlab; safe to share between threads (one session each).

    Every HTTP call is reported to `on_call` as a CallRecord; the token never appears in
    records, logs or error messages. `token` is the token, or a `TokenSource` asked before
    every call (a token that a rotation elsewhere may replace). Group ids found by path are kept (`GroupIds`) for the
    client's life, so hold one client per process.
    """

    dry_run: bool = False

    def __init__(
        self,
        url: str,
        token: str | TokenSource,
        *,
        timeout: float = 10.0,
        on_call: OnCall | None = None,
    ) -> None:
        self._transport = Transport(url, token, timeout=timeout, on_call=on_call)
        self.users = UserManager(self._transport)
        # One cache of group ids per client, and the bridge holds one client per process.
        group_ids = GroupIds()
        self.groups = GroupManager(self._transport, group_ids)
        self.members = MemberManager(self._transport, group_ids)

    @property
    def url(self) -> str:
        return self._transport.url

    def metadata(self) -> dict[str, Any]:
        """`GET /metadata`: `version`, `revision`, `enterprise` (EE codebase) (gitlab.md §6)."""
        return as_dict(self._transport.send(endpoints.metadata()))

    def current_user(self) -> GitLabUser:
        """`GET /user`: the token's user (`is_admin` is only present for admins)."""
        return GitLabUser.from_api(as_dict(self._transport.send(endpoints.current_user())))

    def token_info(self) -> dict[str, Any]:
        """`GET /personal_access_tokens/self`: `scopes`, `active`, `expires_at`, `user_id`."""
        return as_dict(self._transport.send(endpoints.token_info()))

    def rotate_token(self, expires_at: str | None) -> RotatedToken:
        """`POST /personal_access_tokens/self/rotate`: a new token expiring on `expires_at`
        (YYYY-MM-DD; GitLab's default is a week); GitLab revokes this client's token at once,
        and revokes the new one too if the old is ever rotated again (reuse detection)."""
        answer = as_dict(self._transport.send(endpoints.rotate_token(expires_at)))
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise GitLabError("GitLab's rotation answer holds no token")
        expires = answer.get("expires_at")
        return RotatedToken(token=token, expires_at=str(expires)[:10] if expires else None)

    def close(self) -> None:
        """Close the calling thread's HTTP session."""
        self._transport.close()

    def __repr__(self) -> str:
        return f"GitLab({self.url!r})"


# mypy proves the client offers everything provisioning calls (`GitLabApi`).
_: type[GitLabApi] = GitLab
