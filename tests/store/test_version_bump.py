"""A write bumps the version of the row it read in its own transaction, never of a stale copy:
two writes can never share a version, so an ETag (If-Match) always tells them apart."""

from __future__ import annotations

import pytest
from scim2_models import Group
from scim2_models import ResourceType

from scim_bridge.scim.models import ENTRA_POLICY
from scim_bridge.store.db import Database
from scim_bridge.store.groups import GroupStore

GROUP_TYPE = ResourceType.from_resource(Group)


def test_a_row_read_before_another_write_bumps_nothing(db: Database) -> None:
    groups = GroupStore(db, Group, ENTRA_POLICY)
    group = groups.create(GROUP_TYPE, Group.model_validate({"displayName": "Developers"}))
    assert group.id is not None
    with db.transaction(write=True):
        stale = groups._existing_row(group.id)  # version 1
    with db.transaction(write=True):
        written = groups.touch(groups._existing_row(group.id))
    assert written["version"] == 2
    with pytest.raises(RuntimeError, match="changed since it was read"), db.transaction(write=True):
        groups.touch(stale)  # would write version 2 a second time
    with db.transaction(write=False):
        assert groups._existing_row(group.id)["version"] == 2
