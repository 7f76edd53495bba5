"""The operator's settings: a TOML file, overridden by ``SCIM_BRIDGE_*`` environment variables.

Every key is validated with marshmallow at start-up, so a typo or a wrong value stops the bridge
with a message that names the key, instead of surfacing later as a surprising provisioning run.
The names are part of the operator interface in DESIGN.md: extend them, never rename them.

Each setting is declared once: its schema (``schemas``) holds its default and its checks, and
loads it into the frozen dataclasses the bridge runs on (``model``); ``loading`` merges the file
with the environment and words the messages.
"""

from scim_bridge.settings.loading import ENV_PREFIX
from scim_bridge.settings.loading import _env_name
from scim_bridge.settings.loading import load_settings
from scim_bridge.settings.loading import settings_from_toml
from scim_bridge.settings.model import AuditSettings
from scim_bridge.settings.model import AuthSettings
from scim_bridge.settings.model import EntraAuthSettings
from scim_bridge.settings.model import GitLabSettings
from scim_bridge.settings.model import GroupRule
from scim_bridge.settings.model import GroupsSettings
from scim_bridge.settings.model import ReconcileSettings
from scim_bridge.settings.model import ServerSettings
from scim_bridge.settings.model import Settings
from scim_bridge.settings.model import SettingsError
from scim_bridge.settings.model import UsersSettings
from scim_bridge.settings.schemas import DEFAULT_DATABASE_URL
from scim_bridge.settings.schemas import ENTRA_JWKS_URL
from scim_bridge.settings.schemas import ENTRA_NON_GALLERY_AUDIENCE
from scim_bridge.settings.schemas import MIN_RATE_LIMIT_PER_SECOND
from scim_bridge.settings.schemas import SECTIONS

__all__ = [
    "DEFAULT_DATABASE_URL",
    "ENTRA_JWKS_URL",
    "ENTRA_NON_GALLERY_AUDIENCE",
    "ENV_PREFIX",
    "MIN_RATE_LIMIT_PER_SECOND",
    "SECTIONS",
    "AuditSettings",
    "AuthSettings",
    "EntraAuthSettings",
    "GitLabSettings",
    "GroupRule",
    "GroupsSettings",
    "ReconcileSettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "UsersSettings",
    "_env_name",
    "load_settings",
    "settings_from_toml",
]
