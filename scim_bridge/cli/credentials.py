"""``tokens`` and ``clients``: the credentials Entra authenticates with (DESIGN.md)."""

from __future__ import annotations

import click

from scim_bridge.cli.common import friendly
from scim_bridge.cli.common import open_bridge
from scim_bridge.cli.table import Note
from scim_bridge.cli.table import print_table
from scim_bridge.cli.table import when


@click.group()
def tokens() -> None:
    """Bearer tokens for Entra's Secret Token field."""


@tokens.command("create")
@click.argument("name")
@click.option("--expires-in-days", type=click.IntRange(min=1), default=None)
@friendly
def tokens_create(name: str, expires_in_days: int | None) -> None:
    """Create a token and print its secret once (it is stored hashed)."""
    secret = open_bridge().tokens.create(name, expires_in_days=expires_in_days)
    click.echo(f"token: {secret}")
    click.echo("Paste it into Entra's Secret Token field; it cannot be shown again.", err=True)


@tokens.command("list")
@friendly
def tokens_list() -> None:
    """List tokens (never their secrets)."""
    print_table(
        ["NAME", "STATUS", "CREATED", "EXPIRES", "LAST USED"],
        [
            [
                row.name,
                row.status,
                when(row.created_at),
                when(row.expires_at),
                when(row.last_used_at),
            ]
            for row in open_bridge().tokens.list()
        ],
        widths=[24, 8, 20, 20],
        empty="no tokens",
    )


@tokens.command("revoke")
@click.argument("name")
@friendly
def tokens_revoke(name: str) -> None:
    """Revoke a token at once."""
    open_bridge().tokens.revoke(name)
    click.echo(f"revoked {name}")


@click.group()
def clients() -> None:
    """OAuth2 clients for Entra's "OAuth2 client credentials grant" (token endpoint /oauth2/token)."""


@clients.command("create")
@click.argument("name")
@friendly
def clients_create(name: str) -> None:
    """Create a client and print its id and first secret once (the secret is stored hashed)."""
    client = open_bridge().clients.create(name)
    click.echo(f"client_id: {client.client_id}")
    click.echo(f"client_secret: {client.client_secret}")
    click.echo(
        f"The secret expires {when(client.secret_expires_at)} UTC and cannot be shown again. "
        "In Entra: Authentication method 'OAuth2 client credentials grant', Token endpoint "
        "https://<this host>/oauth2/token, Client identifier and Client secret as above.",
        err=True,
    )


@clients.command("rotate")
@click.argument("name")
@friendly
def clients_rotate(name: str) -> None:
    """Add a secret; the old ones stay valid until they expire or `clients revoke-secret`."""
    secret, expires_at = open_bridge().clients.rotate(name)
    click.echo(f"client_secret: {secret}")
    click.echo(
        f"The secret expires {when(expires_at)} UTC. Once Entra uses it, end the old one with "
        f"`scim-bridge clients revoke-secret {name}`.",
        err=True,
    )


@clients.command("revoke-secret")
@click.argument("name")
@click.argument("secret_id", type=int, required=False)
@friendly
def clients_revoke_secret(name: str, secret_id: int | None) -> None:
    """Revoke secret SECRET_ID (see `clients list`), or every secret but the newest."""
    revoked = open_bridge().clients.revoke_secret(name, secret_id)
    if revoked:
        click.echo(f"revoked secret(s) {', '.join(f'#{number}' for number in revoked)} of {name}")
    else:
        click.echo(f"{name} has only one live secret; nothing revoked")


@clients.command("revoke")
@click.argument("name")
@friendly
def clients_revoke(name: str) -> None:
    """End the client, its secrets and every access token it holds, at once."""
    open_bridge().clients.revoke(name)
    click.echo(f"revoked {name} and its access tokens")


@clients.command("list")
@friendly
def clients_list() -> None:
    """List clients and their secrets (never the secrets themselves)."""
    lines: list[list[str] | Note] = []
    for client in open_bridge().clients.list():
        lines.append([client.name, client.client_id, client.status])
        lines.extend(
            Note(
                f"{'':24} secret #{secret.id:<6} {secret.status:8} created "
                f"{when(secret.created_at)}, expires {when(secret.expires_at)}, last used "
                f"{when(secret.last_used_at)}"
            )
            for secret in client.secrets
        )
    print_table(
        ["NAME", "CLIENT ID", "STATUS", "SECRETS"], lines, widths=[24, 30, 8], empty="no clients"
    )
