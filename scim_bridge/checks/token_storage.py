"""Where the GitLab token comes from, and whether the bridge can rotate it (issue 14).

Read only, as every check: nothing is stored, not even the first token (the bridge stores it at
its first GitLab call).
"""

from __future__ import annotations

from dataclasses import dataclass

from scim_bridge.checks.findings import Finding
from scim_bridge.checks.findings import Level
from scim_bridge.settings import GitLabSettings
from scim_bridge.store.gitlab_token import StoredTokenRow
from scim_bridge.token_vault import KEY_VARIABLE
from scim_bridge.token_vault import TOKEN_VARIABLE
from scim_bridge.token_vault import TokenVault
from scim_bridge.token_vault import TokenVaultError
from scim_bridge.token_vault import rotation_stale_before

SUBJECT = "token"


@dataclass(frozen=True)
class TokenInUse:
    """The findings, and the token the GitLab checks are to send (the one the bridge sends)."""

    findings: list[Finding]
    token: str


def check_token_storage(
    config: GitLabSettings, vault: TokenVault | None, stored: StoredTokenRow | None
) -> TokenInUse:
    """``stored``: the row as the database holds it (read without the key)."""
    given = config.token or ""
    if vault is None:
        return TokenInUse([_environment_only(stored)], given)
    try:
        state = vault.state()
    except TokenVaultError as error:
        return TokenInUse([Finding(Level.FAIL, SUBJECT, str(error))], given)
    if state.row is None:
        if not given:
            message = f"no GitLab token is stored, and {TOKEN_VARIABLE} is not set to seed it"
            return TokenInUse([Finding(Level.FAIL, SUBJECT, message)], "")
        message = (
            f"{TOKEN_VARIABLE} is stored, encrypted, at the bridge's first GitLab call; from "
            "then on the bridge can rotate it (`scim-bridge gitlab rotate-token`)"
        )
        return TokenInUse([Finding(Level.OK, SUBJECT, message)], given)
    row = state.row
    findings = [Finding(Level.OK, SUBJECT, _stored(row, config.rotate_days_before_expiry))]
    if given and not state.given_is_seed and not state.given_is_current:
        findings.append(
            Finding(
                Level.WARN,
                SUBJECT,
                f"{TOKEN_VARIABLE} holds a token the bridge has not stored, so it is not used: "
                "to use it, run `scim-bridge gitlab store-token`",
            )
        )
    if row.rotating_since is not None:
        findings.append(_rotation_under_way(row))
    return TokenInUse(findings, state.token or given)


def _environment_only(stored: StoredTokenRow | None) -> Finding:
    if stored is not None and stored.version > 1:
        return Finding(
            Level.FAIL,
            SUBJECT,
            f"the database holds GitLab token version {stored.version} ({stored.how} on "
            f"{stored.changed_at:%Y-%m-%d}), but {KEY_VARIABLE} is not set: the bridge sends "
            f"{TOKEN_VARIABLE} instead, which that change replaced; set {KEY_VARIABLE} again",
        )
    return Finding(
        Level.INFO,
        SUBJECT,
        f"the GitLab token comes only from {TOKEN_VARIABLE}: the bridge cannot rotate it; to "
        f"let it (`scim-bridge gitlab rotate-token`), set {KEY_VARIABLE} on every instance "
        '(docs/operator-guide.md, "The GitLab token")',
    )


def _stored(row: StoredTokenRow, rotate_days: int) -> str:
    automatic = (
        f"; the worker rotates it {rotate_days} day(s) before it expires"
        if rotate_days > 0
        else "; rotate it with `scim-bridge gitlab rotate-token`"
    )
    return (
        f"kept in the database, encrypted: version {row.version}, {row.how} on "
        f"{row.changed_at:%Y-%m-%d} by {row.changed_by}{automatic}"
    )


def _rotation_under_way(row: StoredTokenRow) -> Finding:
    since = row.rotating_since
    assert since is not None
    if since >= rotation_stale_before():
        return Finding(
            Level.WARN, SUBJECT, f"{row.rotating_by} is rotating the token (since {since:%H:%M:%S})"
        )
    return Finding(
        Level.WARN,
        SUBJECT,
        f"a rotation by {row.rotating_by} started {since:%Y-%m-%d %H:%M} and never finished: if "
        f"GitLab refuses the token (401), make a new one, put it in {TOKEN_VARIABLE} and run "
        "`scim-bridge gitlab store-token`",
    )
