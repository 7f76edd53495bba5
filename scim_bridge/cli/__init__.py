"""The ``scim-bridge`` command: serve, worker, check, reconcile, tokens, clients, users, jobs,
audit, db, gitlab, access (DESIGN.md).

One module per command group; ``main`` gathers them. ``table.py`` prints every listing.
"""

from __future__ import annotations

import click

from scim_bridge import __version__
from scim_bridge import logs
from scim_bridge.cli import access
from scim_bridge.cli import audit_trail
from scim_bridge.cli import credentials
from scim_bridge.cli import gitlab_token
from scim_bridge.cli import links
from scim_bridge.cli import preflight
from scim_bridge.cli import queue
from scim_bridge.cli import repair
from scim_bridge.cli import schema
from scim_bridge.cli import serving


@click.group()
@click.version_option(__version__, prog_name="scim-bridge")
def main() -> None:
    """SCIM 2.0 endpoint for Microsoft Entra ID that provisions GitLab."""
    logs.configure()


main.add_command(serving.serve)
main.add_command(serving.worker)
main.add_command(preflight.check)
main.add_command(repair.reconcile)
main.add_command(credentials.tokens)
main.add_command(credentials.clients)
main.add_command(links.users)
main.add_command(queue.jobs)
main.add_command(audit_trail.audit)
main.add_command(schema.db)
main.add_command(gitlab_token.gitlab)
main.add_command(access.access)

__all__ = ["main"]
