"""``gitlab``: the bridge's own GitLab token, kept in the database: rotate it, store a new one.

Only with ``SCIM_BRIDGE_GITLAB_TOKEN_KEY`` set (``scim_bridge.token_vault``): a token that comes
only from ``SCIM_BRIDGE_GITLAB_TOKEN`` is the operator's to replace, and no instance could pick up
a rotated one.
"""

from __future__ import annotations

from datetime import datetime

import click

from scim_bridge import context
from scim_bridge.bridge import Bridge
from scim_bridge.cli.common import fail
from scim_bridge.cli.common import friendly
from scim_bridge.cli.common import open_bridge
from scim_bridge.cli.common import operator_context
from scim_bridge.token_rotation import TokenRotation
from scim_bridge.token_vault import KEY_VARIABLE
from scim_bridge.token_vault import TOKEN_VARIABLE
from scim_bridge.token_vault import new_key


@click.group()
def gitlab() -> None:
    """The bridge's GitLab token: rotate it, or store a new one (SCIM_BRIDGE_GITLAB_TOKEN_KEY)."""


@gitlab.command("new-key")
def new_key_command() -> None:
    """Print a new key for SCIM_BRIDGE_GITLAB_TOKEN_KEY (give every instance the same)."""
    click.echo(new_key())


@gitlab.command("rotate-token")
@click.option(
    "--expires-at",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="The new token's expiry date (default: [gitlab] rotated_token_lifetime_days from today).",
)
@friendly
def rotate_token(expires_at: datetime | None) -> None:
    """Rotate the GitLab token (GitLab >= 16.10): every instance sends the new one from its next
    call; GitLab revokes the old one at once."""
    bridge = open_bridge()
    rotation = _rotation(bridge)
    with context.bound(operator_context()):
        vault = bridge.token_vault
        assert vault is not None
        row = vault.store.read()
        if row is None:  # nothing stored yet: SCIM_BRIDGE_GITLAB_TOKEN is the token to rotate
            vault.seed()
            row = vault.store.read()
            assert row is not None
        replaced = rotation.rotate(row.version, expires_at.date() if expires_at else None)
    expiry = replaced.expires_on.isoformat() if replaced.expires_on else "never"
    if not replaced.done:
        click.echo(
            f"not rotated here: another instance replaced token version {row.version} first "
            f"(now version {replaced.version}, expiring on {expiry})"
        )
        return
    click.echo(
        f"rotated: token version {replaced.version}, expiring on {expiry}; every instance "
        "sends it from its next GitLab call, and GitLab has revoked the old one"
    )


@gitlab.command("store-token")
@friendly
def store_token() -> None:
    """Store the token now in SCIM_BRIDGE_GITLAB_TOKEN in place of the stored one (after you made
    a new token in GitLab yourself); GitLab must accept it first."""
    bridge = open_bridge()
    rotation = _rotation(bridge)
    given = bridge.settings.gitlab.token
    if not given:
        fail(f"{TOKEN_VARIABLE} is not set: put the new token there first")
    with context.bound(operator_context()):
        vault = bridge.token_vault
        assert vault is not None
        if vault.store.read() is None:
            vault.seed()
            click.echo(f"stored {TOKEN_VARIABLE} (token version 1)")
            return
        replaced = rotation.store_given(given)
    click.echo(f"stored {TOKEN_VARIABLE} as token version {replaced.version}")


def _rotation(bridge: Bridge) -> TokenRotation:
    if bridge.settings.gitlab.planned_only:
        fail("GitLab is not configured (dry-run): there is no token to rotate")
    rotation = bridge.token_rotation
    if rotation is None:
        fail(
            f"the GitLab token comes only from {TOKEN_VARIABLE}, so the bridge cannot rotate "
            f"it: set {KEY_VARIABLE} on every instance (`scim-bridge gitlab new-key` makes one) "
            "to keep it in the database, encrypted, where every instance picks up a new token"
        )
    return rotation
