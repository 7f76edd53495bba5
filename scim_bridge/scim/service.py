"""scim2-server's protocol rules, with the few answers Entra needs to differ.

- PATCH on a User answers 200 with the resource (entra.md §2.1: what Entra's validator and most
  checkers expect; RFC 7644 §3.5.2 allows it); on a Group, 204.
- Entra's leftover request shapes are normalised before validation (``entra.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from typing import TypeVar

from scim2_models import Context
from scim2_models import InvalidFilterException
from scim2_models import InvalidValueException
from scim2_models import PatchOp
from scim2_models import Resource
from scim2_models import ResourceType
from scim2_models import ResponseParameters
from scim2_models import SearchRequest
from scim2_server.responses import ScimResponse
from scim2_server.service import ScimService
from scim2_server.utils import parametrize

from scim_bridge.scim import entra
from scim_bridge.scim.handler import request_query

ModelT = TypeVar("ModelT")

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
CORE_SCHEMAS = (
    "urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:core:2.0:Group",
)


def _refuse_nul(value: Any) -> None:
    """PostgreSQL text and jsonb cannot hold NUL (U+0000): a 400, not a 500 (RFC 7644 §3.12)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidValueException(detail="NUL characters are not allowed")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key)
            _refuse_nul(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_nul(item)


def _with_external_id(schema: dict[str, Any]) -> dict[str, Any]:
    attributes = schema.get("attributes") or []
    if schema.get("id") in CORE_SCHEMAS and all(a.get("name") != "externalId" for a in attributes):
        schema["attributes"] = [EXTERNAL_ID_ATTRIBUTE, *attributes]
    return schema


class BridgeScimService(ScimService):
    def decode_body(self, body: bytes, content_type: str | None) -> Any:
        payload = super().decode_body(body, content_type)
        _refuse_nul(payload)
        return payload

    def read_body(
        self, model: type[ModelT], body: bytes, content_type: str | None, scim_ctx: Context
    ) -> ModelT:
        # Parsed once more to look for NUL: bodies are small, and PostgreSQL cannot store NUL.
        if b"\\u0000" in body.lower():
            self.decode_body(body, content_type)
        return super().read_body(model, body, content_type, scim_ctx)

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
        if resource_type.name == "User":
            body = json.dumps(entra.normalize_user_patch(payload)).encode()
        return super().read_patch(resource_type, body, content_type)

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
