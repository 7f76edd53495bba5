"""Rows rendered as GitLab's API entities (UserBasic, UserWithAdmin, Email, Group, Member)."""

from __future__ import annotations

from typing import Any

from tests.gitlab_double.records import EmailRecord
from tests.gitlab_double.records import GroupRecord
from tests.gitlab_double.records import MemberRecord
from tests.gitlab_double.records import UserRecord
from tests.gitlab_double.state import State


def user_basic(user: UserRecord, base_url: str) -> dict[str, Any]:
    """`Entities::UserBasic`: what non-admins see of other users (no email, no identities)."""
    return {
        "id": user.id,
        "username": user.username,
        "name": user.name,
        "state": user.state,
        "locked": False,
        "avatar_url": None,
        "web_url": f"{base_url}/{user.username}",
        # GitLab exposes `bot` on its user entities; `user_type` itself is not exposed.
        "bot": user.bot,
    }


def user_with_admin(user: UserRecord, base_url: str) -> dict[str, Any]:
    """`Entities::UserWithAdmin`: the admin view, with email, identities and `is_admin`."""
    return {
        **user_basic(user, base_url),
        "created_at": user.created_at,
        "bio": "",
        "location": "",
        "public_email": None,
        "organization": "",
        "job_title": "",
        "last_sign_in_at": None,
        "confirmed_at": user.confirmed_at,
        "last_activity_on": user.last_activity_on.isoformat() if user.last_activity_on else None,
        "email": user.email,
        "theme_id": 3,
        "color_scheme_id": 1,
        "projects_limit": user.projects_limit,
        "current_sign_in_at": None,
        "identities": [
            {"provider": i.provider, "extern_uid": i.extern_uid, "saml_provider_id": None}
            for i in user.identities
        ],
        "can_create_group": user.can_create_group,
        "can_create_project": True,
        "two_factor_enabled": False,
        "external": user.external,
        "private_profile": False,
        "commit_email": user.email,
        "is_admin": user.is_admin,
        "note": user.note,
        "namespace_id": user.id,
        "created_by": None,
        "is_auditor": False,
        "using_license_seat": False,
    }


def user_public(user: UserRecord, base_url: str) -> dict[str, Any]:
    """`Entities::UserPublic` (`GET /user` for a non-admin): no `is_admin`, no `note`."""
    data = user_with_admin(user, base_url)
    for key in ("is_admin", "note", "namespace_id", "created_by", "is_auditor"):
        data.pop(key)
    return data


def email(record: EmailRecord) -> dict[str, Any]:
    return {"id": record.id, "email": record.email, "confirmed_at": record.confirmed_at}


def group(state: State, record: GroupRecord, base_url: str) -> dict[str, Any]:
    """`Entities::Group` / `GroupDetail` without projects."""
    full_path = state.full_path(record)
    return {
        "id": record.id,
        "web_url": f"{base_url}/groups/{full_path}",
        "name": record.name,
        "path": record.path,
        "description": record.description,
        "visibility": record.visibility,
        "share_with_group_lock": False,
        "require_two_factor_authentication": False,
        "project_creation_level": "developer",
        "subgroup_creation_level": "maintainer",
        "lfs_enabled": True,
        "request_access_enabled": True,
        "full_name": state.full_name(record),
        "full_path": full_path,
        "parent_id": record.parent_id,
        "created_at": record.created_at,
        "marked_for_deletion_on": record.marked_for_deletion_on,
    }


def member(user: UserRecord, record: MemberRecord, base_url: str) -> dict[str, Any]:
    """`Entities::Member`."""
    return {
        **user_basic(user, base_url),
        "access_level": record.access_level,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "membership_state": "active",
        "created_by": None,
    }
