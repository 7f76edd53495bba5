"""scim2-server's protocol rules, with the few answers Entra needs to differ.

- PATCH on a User answers 200 with the resource (entra.md §2.1: what Entra's validator and most
  checkers expect; RFC 7644 §3.5.2 allows it); on a Group, 204.
- Entra's leftover request shapes are normalised before validation (``entra.py``), and its bare
  extension attribute names are qualified (``qualify.py``).
- No input reaches the database that it cannot hold: NUL and unpaired surrogates are refused in
  bodies and filters, and ``startIndex`` is clamped (RFC 7644 §3.4.2.4 puts no upper bound on it,
  SQL does).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from typing import TypeVar

from scim2_models import BaseModel
from scim2_models import Context
from scim2_models import InvalidFilterException
from scim2_models import InvalidValueException
from scim2_models import PatchOp
from scim2_models import Resource
from scim2_models import ResourceType
from scim2_models import ResponseParameters
from scim2_models import SearchRequest
from scim2_server import routing
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.service import ScimService
from scim2_server.storage import SearchPage
from scim2_server.utils import parametrize

from scim_bridge.scim import entra
from scim_bridge.scim.handler import request_query
from scim_bridge.scim.models import strict_boolean
from scim_bridge.scim.qualify import Qualifier
from scim_bridge.scim.qualify import refuse_unstorable
from scim_bridge.scim.quick_search import list_response

ModelT = TypeVar("ModelT", bound=BaseModel)  # as ScimService.read_body's

# RFC 7643 §3.1 lets a schema list common attributes "for backward compatibility"; Microsoft's
# gallery check (entra.md §4.3, Schema_Discoverability) only finds mapped attributes that a schema
# lists, and Entra maps objectId / mailNickname to externalId.
EXTERNAL_ID_ATTRIBUTE: dict[str, Any] = {
    "name": "externalId",
    "type": "string",
    "multiValued": False,
    "description": "An identifier for the resource as defined by the provisioning client.",
    "required": False,
    "caseExact": True,
    "mutability": "readWrite",
    "returned": "default",
    "uniqueness": "none",
}
# Past any collection SQL could page through; a larger startIndex gives the same empty page.
MAX_START_INDEX = 2**31
# The search parameters that name attributes, qualified when bare (``qualify.py``).
ATTRIBUTE_LISTS = ("attributes", "excludedattributes", "sortby")
ACTIVE_NAMES = ("active", "urn:ietf:params:scim:schemas:core:2.0:user:active")
CORE_SCHEMAS = (
    "urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:core:2.0:Group",
)


def _with_external_id(schema: dict[str, Any]) -> dict[str, Any]:
    attributes = schema.get("attributes") or []
    if schema.get("id") in CORE_SCHEMAS and all(a.get("name") != "externalId" for a in attributes):
        schema["attributes"] = [EXTERNAL_ID_ATTRIBUTE, *attributes]
    return schema


def qualify_patch_paths(payload: Any, qualifier: Qualifier) -> None:
    """Qualify the ``path`` of each PATCH operation in place (entra.md §1.5: Entra's bare names)."""
    operations = entra.operations_of(payload) if isinstance(payload, dict) else None
    if not isinstance(operations, list):
        return
    for operation in operations:
        if not isinstance(operation, dict):
            continue
        for key, value in operation.items():
            if key.lower() == "path" and isinstance(value, str):
                operation[key] = qualifier.path(value)


class BridgeScimService(ScimService):
    @staticmethod
    def match(request: ScimRequest) -> routing.Target:
        """scim2-server's routing, remembered per method and path: a request is matched more than
        once (the handler, then the quick search), and Entra's lookups all ask for one path."""
        return _match(request.method.upper(), request.path)

    def decode_body(self, body: bytes, content_type: str | None) -> Any:
        payload = super().decode_body(body, content_type)
        refuse_unstorable(payload)
        return payload

    def read_body(
        self, model: type[ModelT], body: bytes, content_type: str | None, scim_ctx: Context
    ) -> ModelT:
        # Only an escape can smuggle NUL or a lone surrogate into valid UTF-8 JSON: such a body
        # is parsed once more to look for them (bodies are small, and PostgreSQL stores neither).
        if b"\\u" in body or b"\\U" in body:
            self.decode_body(body, content_type)
        return super().read_body(model, body, content_type, scim_ctx)

    def qualifier(self, resource_types: list[ResourceType]) -> Qualifier:
        return Qualifier(self.get_model(resource_type) for resource_type in resource_types)

    def read_response_parameters(
        self, resource_type: ResourceType, query: Mapping[str, str]
    ) -> ResponseParameters[Any]:
        qualifier = self.qualifier([resource_type])
        qualified = {
            key: qualifier.attribute_list(value) if key.lower() in ATTRIBUTE_LISTS else value
            for key, value in query.items()
        }
        return super().read_response_parameters(resource_type, qualified)

    def read_search(
        self, resource_types: list[ResourceType], payload: Any
    ) -> tuple[SearchRequest[Any], Any]:
        """A search with bare extension attributes qualified, and ``startIndex`` clamped."""
        if isinstance(payload, dict):
            qualifier = self.qualifier(resource_types)
            payload = dict(payload)
            for key, value in payload.items():
                if key.lower() == "filter" and isinstance(value, str):
                    payload[key] = qualifier.filter(value)
                elif key.lower() in ATTRIBUTE_LISTS and isinstance(value, str):
                    payload[key] = qualifier.attribute_list(value)
                elif key.lower() in ATTRIBUTE_LISTS and isinstance(value, list):
                    # POST .search carries attributes as a list (RFC 7644 §3.4.3).
                    payload[key] = [
                        qualifier.attribute_list(item) if isinstance(item, str) else item
                        for item in value
                    ]
        search_request, position = super().read_search(resource_types, payload)
        if search_request.start_index is not None:
            search_request.start_index = min(search_request.start_index, MAX_START_INDEX)
        return search_request, position

    def schemas(self, location: str, query: Mapping[str, str]) -> ScimResponse:
        response = super().schemas(location, query)
        assert response.body is not None
        response.body["Resources"] = [_with_external_id(s) for s in response.body["Resources"]]
        return response

    def schema(self, location: str, schema_id: str, query: Mapping[str, str]) -> ScimResponse:
        response = super().schema(location, schema_id, query)
        assert response.body is not None
        response.body = _with_external_id(response.body)
        return response

    def creation_response(self, base_url: str, created: Resource[Any]) -> ScimResponse:
        """201 with the resource, reduced to the attributes asked for (RFC 7644 §3.9 applies to POST)."""
        response = super().creation_response(base_url, created)
        query = request_query()
        if "attributes" in query or "excludedAttributes" in query:
            resource_type = self.get_resource_type_of(created)
            parameters = self.read_response_parameters(resource_type, query)
            published = self.publish(base_url, created)
            response.body = published.model_dump(
                scim_ctx=Context.RESOURCE_CREATION_RESPONSE, response_parameters=parameters
            )
        return response

    def read_patch(
        self, resource_type: ResourceType, body: bytes, content_type: str | None
    ) -> PatchOp[Any]:
        payload = self.decode_body(body, content_type)
        if entra.has_no_operations(payload):
            # An empty Operations list changes nothing; strict servers refuse it (entra.md §6).
            self.ensure_patch_supported()
            model = parametrize(PatchOp, self.get_model(resource_type))
            return model.model_construct(operations=[])
        qualify_patch_paths(payload, self.qualifier([resource_type]))
        if resource_type.name == "User":
            payload = entra.normalize_user_patch(payload)
            # The PATCH engine assigns values without the model's validators: ``active`` is
            # checked here as POST and PUT check it (a boolean, or "true"/"false").
            for value in entra.values_written_to(payload, ACTIVE_NAMES):
                try:
                    strict_boolean(value)
                except ValueError as error:
                    raise InvalidValueException(detail=str(error)) from error
        return super().read_patch(resource_type, json.dumps(payload).encode(), content_type)

    def patch_response(
        self,
        base_url: str,
        resource: Resource[Any],
        response_parameters: ResponseParameters[Any],
    ) -> ScimResponse:
        if resource.meta is not None and resource.meta.resource_type == "Group":
            # Groups answer 204 (entra.md §1.8: member lists can be huge), unless asked for more.
            return super().patch_response(base_url, resource, response_parameters)
        published = self.publish(base_url, resource)
        return self.resource_response(
            published, Context.RESOURCE_PATCH_RESPONSE, response_parameters, HTTPStatus.OK
        )

    def read_search_query(
        self, resource_types: list[ResourceType], query: Mapping[str, str]
    ) -> tuple[SearchRequest[Any], Any]:
        try:
            return super().read_search_query(resource_types, query)
        except InvalidFilterException:
            expression = query.get("filter")
            if not expression:
                raise
            quoted = entra.quote_bare_filter_values(expression)
            if quoted == expression:
                raise
            return super().read_search_query(resource_types, {**query, "filter": quoted})

    def search_response(
        self,
        base_url: str,
        resource_types: list[ResourceType],
        page: SearchPage,
        search_request: SearchRequest[Any],
    ) -> ScimResponse:
        """scim2-server's ListResponse (RFC 7644 §3.4.2), built as the JSON it dumps to.

        scim2-server dumps each resource, validates the dumps back into a ``ListResponse`` of
        every resource model and dumps that again: about a tenth of a filter GET's CPU, for the same
        body (``tests/scim/test_search_response.py`` compares the two).
        """
        if search_request.cursor is not None or page.total is None:
            # Cursor paging, which this bridge does not offer: scim2-server's own answer.
            return super().search_response(base_url, resource_types, page, search_request)
        resources = [
            self.publish(base_url, resource).model_dump(
                scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=search_request
            )
            for resource in page.resources
        ]
        return list_response(resources, total=page.total, start_index=search_request.start_index)


@functools.lru_cache(maxsize=512)  # bounded: a path may hold an id, or anything a client sends
def _match(method: str, path: str) -> routing.Target:
    return routing.match(method, path)
