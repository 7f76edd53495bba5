"""The bridge's only contact with GitLab: python-gitlab behind plain types and errors.

Knows GitLab's REST API, its error shapes and rate limits; knows nothing of SCIM.
"""

from scim_bridge.gitlab.api import GitLabApi
from scim_bridge.gitlab.client import GitLab
from scim_bridge.gitlab.errors import AuthenticationError
from scim_bridge.gitlab.errors import ConflictError
from scim_bridge.gitlab.errors import ForbiddenError
from scim_bridge.gitlab.errors import GitLabError
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.errors import TransientError
from scim_bridge.gitlab.planned import PlannedGitLab
from scim_bridge.gitlab.types import CallRecord
from scim_bridge.gitlab.types import GitLabGroup
from scim_bridge.gitlab.types import GitLabUser
from scim_bridge.gitlab.types import Identity
from scim_bridge.gitlab.types import Member
from scim_bridge.gitlab.types import Moderation
from scim_bridge.gitlab.types import RotatedToken

__all__ = [
    "AuthenticationError",
    "CallRecord",
    "ConflictError",
    "ForbiddenError",
    "GitLab",
    "GitLabApi",
    "GitLabError",
    "GitLabGroup",
    "GitLabUser",
    "Identity",
    "InvalidError",
    "Member",
    "Moderation",
    "NotFoundError",
    "PlannedGitLab",
    "RotatedToken",
    "TransientError",
]
