"""scim2-server's handler, with group PATCHes sent to the store's row-by-row member path.

A value the PATCH engine refuses is answered as POST answers it (``Value error, …: emails[0].value``)
rather than with pydantic's multi-line report and its documentation link.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any
from typing import Protocol
from typing import runtime_checkable

from pydantic import ValidationError
from scim2_models import InvalidValueException
from scim2_models import PatchOp
from scim2_models import Resource
from scim2_models import ResourceType
from scim2_server.conditions import Conditions
from scim2_server.handler import ScimHandler
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.service import scim_exception_of

from scim_bridge.scim.quick_search import KeyLookup
from scim_bridge.scim.quick_search import QuickSearch

_query: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("scim_query")


@runtime_checkable
class MemberwiseGroupPatch(Protocol):
    """A storage that patches a group without loading its members (a group may have 50,000)."""

    def patch_group(self, resource_id: str, patch_op: Any, check: Any) -> Resource[Any]: ...


def request_query() -> Mapping[str, str]:
    """The query parameters of the request being handled (for steps scim2-server gives none)."""
    return _query.get({})


class BridgeScimHandler(ScimHandler):
    def __init__(self, service: Any, storage: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(service, storage, *args, **kwargs)
        self.quick = QuickSearch(service, storage) if isinstance(storage, KeyLookup) else None

    def search(self, request: ScimRequest) -> ScimResponse:
        """Entra's lookup by the unique attribute from the stored document (``quick_search``)."""
        if self.quick is not None and (answer := self.quick.answer(request)) is not None:
            return answer
        return super().search(request)

    def handle(self, request: ScimRequest) -> ScimResponse:
        token = _query.set(request.query)
        try:
            return super().handle(request)
        finally:
            _query.reset(token)

    def patch_resource(
        self,
        resource_type: ResourceType,
        resource_id: str,
        patch_op: PatchOp[Any],
        conditions: Conditions,
    ) -> Resource[Any]:
        try:
            return self._patch_resource(resource_type, resource_id, patch_op, conditions)
        except InvalidValueException as error:
            if isinstance(error.__cause__, ValidationError):
                raise scim_exception_of(error.__cause__) from error
            raise

    def _patch_resource(
        self,
        resource_type: ResourceType,
        resource_id: str,
        patch_op: PatchOp[Any],
        conditions: Conditions,
    ) -> Resource[Any]:
        if resource_type.name != "Group" or not isinstance(self.storage, MemberwiseGroupPatch):
            return super().patch_resource(resource_type, resource_id, patch_op, conditions)

        def check(current: Resource[Any]) -> None:
            self.service.check_preconditions(current, "PATCH", conditions)

        patched = self.storage.patch_group(resource_id, patch_op, check)
        # The answer is 204 unless the client asked for attributes (RFC 7644 §3.5.2); only then
        # is the group read again, members included if the answer keeps them.
        query = request_query()
        if "attributes" in query or "excludedAttributes" in query:
            parameters = self.service.read_response_parameters(resource_type, query)
            return self.storage.get(resource_type, resource_id, response_parameters=parameters)
        return patched
