"""``users``: links between SCIM users and GitLab accounts, and the operator links made by hand."""

from __future__ import annotations

import click

from scim_bridge import context
from scim_bridge.bridge import Bridge
from scim_bridge.cli.common import REPAIR_SECONDS
from scim_bridge.cli.common import friendly
from scim_bridge.cli.common import open_bridge
from scim_bridge.cli.common import operator_context
from scim_bridge.cli.table import print_table
from scim_bridge.provisioning.reconciling import Rejected


@click.group()
def users() -> None:
    """Links between SCIM users and GitLab accounts, and how each was made."""


@users.command("link")
@click.argument("scim_user_name")
@click.argument("gitlab_username")
@friendly
def users_link(scim_user_name: str, gitlab_username: str) -> None:
    """Link a SCIM user to an existing GitLab account by hand (an operator link).

    For an administrator or a protected person who is also provisioned from Entra: the group
    rules then manage the account's memberships, but the bridge never writes its username,
    email, identity or state.
    """
    bridge = open_bridge()
    with context.bound(operator_context()):
        link, protected, keys = bridge.operator_links.link(scim_user_name, gitlab_username)
        account = f"GitLab account {link.gitlab_username} (id {link.gitlab_user_id})"
        if not link.user_id:
            click.echo(
                f"{scim_user_name} is not provisioned yet: when Entra provisions it, it is linked "
                f"to {account} as an operator link"
            )
        else:
            click.echo(
                f"linked {scim_user_name} to {account} as an operator link"
                + (f"; the account is {protected}" if protected else "")
            )
        click.echo("the bridge manages its group memberships and never writes the account itself")
        _run_now(bridge, keys)


@users.command("unlink")
@click.argument("scim_user_name")
@friendly
def users_unlink(scim_user_name: str) -> None:
    """Forget a SCIM user's link; GitLab keeps the account and its memberships as they are."""
    bridge = open_bridge()
    with context.bound(operator_context()):
        link = bridge.operator_links.unlink(scim_user_name)
    if not link.user_id:
        click.echo(f"{scim_user_name} will not be linked to {link.gitlab_username}")
        return
    click.echo(
        f"unlinked {scim_user_name} from GitLab account {link.gitlab_username} "
        f"(id {link.gitlab_user_id}, {link.origin}); its memberships are no longer managed"
    )


@users.command("list")
@friendly
def users_list() -> None:
    """Every link: the SCIM user, the GitLab account, how the link was made, its protection."""
    print_table(
        ["SCIM USER", "GITLAB ACCOUNT", "ID", "ORIGIN", "PROTECTION", "STATE"],
        [
            [
                row.user_name,
                row.gitlab_username,
                str(row.gitlab_user_id),
                row.origin,
                row.protection,
                row.state,
            ]
            for row in open_bridge().operator_links.rows()
        ],
        empty="no links",
    )


def _run_now(bridge: Bridge, keys: list[str]) -> None:
    """Run the jobs a command queued, so its effect shows at once; the worker finishes the rest."""
    if not keys or bridge.gitlab.dry_run:
        return
    try:
        bridge.runner.run_inline(keys, REPAIR_SECONDS)
    except Rejected as rejection:
        click.echo(f"GitLab refused: {rejection.detail}")
    waiting = [job.key for job in bridge.queue.list() if job.key in keys]
    if waiting:
        click.echo(f"waiting for GitLab (see `scim-bridge jobs`): {', '.join(waiting)}")
