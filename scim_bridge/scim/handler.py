"""scim2-server's handler, with group PATCHes sent to the store's row-by-row member path."""

from __future__ import annotations

from typing import Any

from scim2_models import PatchOp
from scim2_models import Resource
from scim2_models import ResourceType
from scim2_server.conditions import Conditions
from scim2_server.handler import ScimHandler


class BridgeScimHandler(ScimHandler):
    def patch_resource(
        self,
        resource_type: ResourceType,
        resource_id: str,
        patch_op: PatchOp[Any],
        conditions: Conditions,
    ) -> Resource[Any]:
        """Patch a group without loading its members (a group may have 50,000 of them)."""
        patch = getattr(self.storage, "patch_group", None)
        if resource_type.name != "Group" or patch is None:
            return super().patch_resource(resource_type, resource_id, patch_op, conditions)

        def check(current: Resource[Any]) -> None:
            self.service.check_preconditions(current, "PATCH", conditions)

        resource: Resource[Any] = patch(resource_id, patch_op, check)
        return resource
