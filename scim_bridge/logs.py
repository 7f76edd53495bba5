"""Logging set-up, one for every process the bridge runs: the CLI, the worker, gunicorn's workers.

The level comes from ``SCIM_BRIDGE_LOG_LEVEL`` (default INFO). Nothing the bridge logs holds a
secret: credentials are never formatted into messages, and access logs carry the path only.
"""

from __future__ import annotations

import logging
import os

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure() -> None:
    logging.basicConfig(
        level=os.environ.get("SCIM_BRIDGE_LOG_LEVEL", "INFO").upper(), format=FORMAT
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
