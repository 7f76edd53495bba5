"""Entra's lookup before each write, answered without scim2-models' model round trips.

Before it creates or updates a resource, Entra asks for it by its matching attribute (entra.md
§1.2): ``GET /Users?filter=userName eq "…"`` and ``GET /Groups?filter=displayName eq "…"
&excludedAttributes=members``. scim2-server answers any search by parsing the filter, translating
it to SQL, validating each stored document into a model, copying it, and dumping it again: five
times the CPU of the lookup itself. This module answers exactly that shape from the stored
document: the unique attribute compared as RFC 7643 §2.3.1 says (the store's folded key column),
the document's attributes in the model's order, ``id`` and ``meta`` as the store gives them,
references made absolute as scim2-server makes them (RFC 7643 §2.3.7), and the ListResponse of
RFC 7644 §3.4.2.

Anything else (another attribute or operator, an escape in the value, ``attributes``, paging,
sorting, an attribute the schema returns only on request or never) goes to scim2-server.
``tests/scim/test_quick_search.py`` holds every answer given here to scim2-server's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any
from typing import Protocol
from typing import runtime_checkable

from pydantic import TypeAdapter
from scim2_models import BaseModel
from scim2_models import Resource
from scim2_models import ResourceType
from scim2_models import Returned
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.routing import Operation
from scim2_server.service import ScimService

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
# ``attribute eq "value"``: names and operators are case-insensitive (RFC 7644 §3.4.2.2); a value
# without escapes, so that it is the JSON string it spells.
EQUALITY = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s+[eE][qQ]\s+"([^"\\]+)"\s*', re.ASCII)
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
LOOKUP_PARAMETERS = frozenset({"filter", "excludedattributes"})
_INSTANT = TypeAdapter(datetime)


class Stored(Protocol):
    """A resource as the store keeps it (``store.documents.StoredDocument``)."""

    @property
    def id(self) -> str: ...
    @property
    def document(self) -> dict[str, Any]: ...
    @property
    def created(self) -> datetime: ...
    @property
    def last_modified(self) -> datetime: ...
    @property
    def version(self) -> str: ...


@runtime_checkable
class KeyLookup(Protocol):
    """A storage that finds a resource by its unique attribute's indexed key."""

    def key_attributes(self, resource_type: ResourceType) -> tuple[str, str]: ...

    def stored_by_key(
        self, resource_type: ResourceType, value: str, *, related: bool
    ) -> Iterable[Stored]: ...


class Rendering:
    """How scim2-server dumps one resource type's stored documents in a query response.

    The order is the model's fields' (``schemas``, ``id``, ``externalId``, ``meta``, then the
    type's own), then the extensions in the document's order. A document holding an attribute
    that is returned only on request or never, at any depth, is not rendered here.
    """

    def __init__(self, model: type[Resource[Any]], related: str) -> None:
        self.order = [field.serialization_alias or name for name, field in _fields(model)]
        self.related = related
        self.related_order: list[str] = []
        self.unusual: set[str] = set()
        for name, field in _fields(model):
            alias = field.serialization_alias or name
            if _hidden(model, name):
                self.unusual.add(alias)
            sub_model = _sub_model(model, name)
            if sub_model is not None and alias == related:
                self.related_order = [f.serialization_alias or n for n, f in _fields(sub_model)]
        for schema, extension in model.get_extension_models().items():
            if _hides_any(extension):
                self.unusual.add(schema)

    def renders(self, document: Mapping[str, Any]) -> bool:
        return not any(key in self.unusual for key in document)

    def render(self, stored: Stored, meta: dict[str, Any], locate: Any) -> dict[str, Any]:
        document = stored.document
        rendered: dict[str, Any] = {}
        for key in self.order:
            if key == "id":
                rendered["id"] = stored.id
            elif key == "meta":
                rendered["meta"] = meta
            elif key == self.related and key in document:
                rendered[key] = [self._entry(entry, locate) for entry in document[key]]
            elif key in document:
                rendered[key] = document[key]
        for key, value in document.items():
            if key not in rendered:
                rendered[key] = value
        return rendered

    def _entry(self, entry: Mapping[str, Any], locate: Any) -> dict[str, Any]:
        ordered = {key: entry[key] for key in self.related_order if key in entry}
        if "$ref" in ordered:
            ordered["$ref"] = locate(ordered["$ref"])
        return ordered


def _fields(model: type[BaseModel]) -> list[tuple[str, Any]]:
    return list(model.model_fields.items())


def _unusual(model: type[BaseModel], name: str) -> bool:
    returned = model.get_field_annotation(name, Returned)
    return returned in (Returned.never, Returned.request)


def _hides_any(model: type[BaseModel]) -> bool:
    """Whether an attribute of ``model``, or of its complex attributes, is returned only on
    request or never."""
    return any(_hidden(model, name) for name, _ in _fields(model))


def _hidden(model: type[BaseModel], name: str) -> bool:
    """Whether the attribute ``name``, or one of its sub-attributes, is returned only on request
    or never."""
    sub_model = _sub_model(model, name)
    return _unusual(model, name) or (sub_model is not None and _hides_any(sub_model))


def _sub_model(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    root = model.get_field_root_type(name)
    return root if isinstance(root, type) and issubclass(root, BaseModel) else None


class QuickSearch:
    """Answers ``GET /<type>?filter=<unique attribute> eq "value"``, or says it does not."""

    def __init__(self, service: ScimService, storage: KeyLookup) -> None:
        self.service = service
        self.storage = storage
        self._renderings: dict[str, Rendering] = {}
        self._counts: dict[str, int | None] = {}

    def answer(self, request: ScimRequest) -> ScimResponse | None:
        query = request.query
        if request.method != "GET" or not {key.lower() for key in query} <= LOOKUP_PARAMETERS:
            return None
        matched = EQUALITY.fullmatch(query.get("filter", ""))
        if matched is None or not _storable(matched.group(2)):
            return None
        with self.service.provider:
            target = self.service.route(request, Operation.search)
            if target.endpoint is None:
                return None  # a root search: scim2-server's
            resource_types = self.service.searched_types(target.endpoint)
            self.service.authorized_types(request, target, resource_types)
            (resource_type,) = resource_types
            unique, related = self.storage.key_attributes(resource_type)
            if matched.group(1).lower() != unique.lower():
                return None
            excluded = _excluded(query)
            if excluded not in ((), (related.lower(),)):
                return None
            if self._count(resource_type) == 0:
                return None
            rendering = self._rendering(resource_type, related)
            found = list(
                self.storage.stored_by_key(resource_type, matched.group(2), related=not excluded)
            )
            if not all(rendering.renders(stored.document) for stored in found):
                return None
            resources = [
                rendering.render(
                    stored,
                    self._meta(request.base_url, resource_type, stored),
                    lambda reference: self.service.reference_location(request.base_url, reference),
                )
                for stored in found
            ]
            return list_response(resources, total=len(resources), start_index=1)

    def _meta(self, base_url: str, resource_type: ResourceType, stored: Stored) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "resourceType": resource_type.name,
            "created": _INSTANT.dump_python(stored.created, mode="json"),
            "lastModified": _INSTANT.dump_python(stored.last_modified, mode="json"),
            "location": self.service.resource_location(base_url, resource_type, stored.id),
        }
        if self.service.etag_supported:
            meta["version"] = stored.version
        return meta

    def _rendering(self, resource_type: ResourceType, related: str) -> Rendering:
        name = str(resource_type.name)
        if name not in self._renderings:
            self._renderings[name] = Rendering(self.service.get_model(resource_type), related)
        return self._renderings[name]

    def _count(self, resource_type: ResourceType) -> int | None:
        """The page size scim2-server gives a search that names none (its defaultPageSize,
        bounded): a unique key finds one resource at most, so any page but 0 holds it."""
        name = str(resource_type.name)
        if name not in self._counts:
            search_request, _ = self.service.read_search_query([resource_type], {})
            self._counts[name] = search_request.count
        return self._counts[name]


def list_response(
    resources: list[dict[str, Any]], *, total: int, start_index: int | None
) -> ScimResponse:
    """A ListResponse (RFC 7644 §3.4.2) as scim2-models dumps one paged by index: its members in
    the model's order, ``startIndex`` left out when None."""
    body: dict[str, Any] = {"schemas": [LIST_RESPONSE], "totalResults": total}
    if start_index is not None:
        body["startIndex"] = start_index
    body["itemsPerPage"] = len(resources)
    body["Resources"] = resources
    return ScimResponse(HTTPStatus.OK, body)


def _excluded(query: Mapping[str, str]) -> tuple[str, ...]:
    value = next((v for k, v in query.items() if k.lower() == "excludedattributes"), None)
    if value is None:
        return ()
    return tuple(part.strip().lower() for part in value.split(","))


def _storable(value: str) -> bool:
    """Whether SQL can hold the value as it is; else scim2-server refuses it (``qualify.py``)."""
    return UNSTORABLE.search(value) is None
