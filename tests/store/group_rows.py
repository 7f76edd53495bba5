"""SCIM users and groups stored as the SCIM layer stores them, for the repository tests."""

from __future__ import annotations

from scim2_models import Group
from scim2_models import ResourceType

from scim_bridge.scim.models import ENTRA_POLICY
from scim_bridge.scim.models import UserResource
from scim_bridge.store import memberships
from scim_bridge.store.db import Database
from scim_bridge.store.groups import GroupStore
from scim_bridge.store.links import LinkStore
from scim_bridge.store.links import UserLink
from scim_bridge.store.users import UserStore


def stored_user(db: Database, user_name: str, gitlab_user_id: int | None = None) -> str:
    """A SCIM user, linked to a GitLab account when ``gitlab_user_id`` is given."""
    users = UserStore(db, UserResource, ENTRA_POLICY)
    user_type = ResourceType.from_resource(UserResource)
    user = users.create(user_type, UserResource.model_validate({"userName": user_name}))
    assert user.id is not None
    if gitlab_user_id is not None:
        link = UserLink(user.id, gitlab_user_id, user_name, user_name, "created")
        LinkStore(db).save(link)
    return user.id


def stored_group(db: Database, display_name: str, members: list[str]) -> str:
    groups = GroupStore(db, Group, ENTRA_POLICY)
    group_type = ResourceType.from_resource(Group)
    group = groups.create(group_type, Group.model_validate({"displayName": display_name}))
    assert group.id is not None
    with db.transaction(write=True):
        memberships.add(group.id, [(member, None) for member in members])
    return group.id
