"""The SCIM resources the bridge serves, with Microsoft Entra's tolerances (RFC 7643 + entra.md).

Entra sends the enterprise ``manager`` as a bare string and without ``$ref``, but expects it back as
a complex ``{"value": ...}`` (entra.md §1.5); the stock ``EnterpriseUser`` refuses both forms, so a
relaxed extension with the same schema URN replaces it.
"""

from __future__ import annotations

from typing import Annotated
from typing import Any

from pydantic import Field
from pydantic import field_validator
from scim2_models import URN
from scim2_models import AuthenticationScheme
from scim2_models import Bulk
from scim2_models import ChangePassword
from scim2_models import ComplexAttribute
from scim2_models import ETag
from scim2_models import Extension
from scim2_models import Filter
from scim2_models import Group
from scim2_models import Patch
from scim2_models import Reference
from scim2_models import Resource
from scim2_models import ResourceType
from scim2_models import ScimPolicy
from scim2_models import ScimProvider
from scim2_models import ServiceProviderConfig
from scim2_models import Sort
from scim2_models import User
from scim2_models.annotations import CaseExact
from scim2_models.annotations import Mutability

ENTERPRISE_USER_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
MAX_RESULTS = 200

# Entra's dialects (entra.md §1.5-1.8, python-scim.md §1.2): capitalised ops are normalised by
# scim2-models itself; value-path writes create the entry they describe; "remove members" with a
# value removes those members; attributes no schema declares are kept and returned as sent.
ENTRA_POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.keep,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)


class Manager(ComplexAttribute):
    """RFC 7643 §4.3 manager, with ``$ref`` optional since Entra never sends it."""

    value: Annotated[str | None, CaseExact.true] = None
    ref: Reference[Any] | None = Field(None, serialization_alias="$ref", validation_alias="$ref")
    display_name: Annotated[str | None, Mutability.read_only] = None


class EntraEnterpriseUser(Extension):
    """The enterprise extension (RFC 7643 §4.3) accepting Entra's manager forms."""

    __schema__ = URN(ENTERPRISE_USER_URN)

    employee_number: str | None = None
    cost_center: str | None = None
    organization: str | None = None
    division: str | None = None
    department: str | None = None
    manager: Manager | None = None

    @field_validator("manager", mode="before")
    @classmethod
    def _manager_forms(cls, value: Any) -> Any:
        """A bare id, a one-element list (legacy Example 5) or ``""`` (remove) become one form."""
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, str):
            return {"value": value} if value else None
        if isinstance(value, dict) and not value.get("value"):
            return None
        return value


UserResource = User[EntraEnterpriseUser]


def service_provider_config() -> ServiceProviderConfig:
    """What the bridge supports, and nothing more (RFC 7643 §5): Entra and validators read it."""
    return ServiceProviderConfig(
        documentation_uri="https://github.com/scim-bridge/scim-bridge#readme",
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="OAuth Bearer Token",
                description="A bearer token created with `scim-bridge tokens create`.",
                spec_uri="https://www.rfc-editor.org/rfc/rfc6750",
                primary=True,
            )
        ],
    )


def build_provider() -> ScimProvider:
    resource_types = [ResourceType.from_resource(UserResource), ResourceType.from_resource(Group)]
    models: list[type[Resource[Any]] | type[Extension]] = [User, Group, EntraEnterpriseUser]
    return ScimProvider(
        models=models,
        resource_types=resource_types,
        config=service_provider_config(),
        policy=ENTRA_POLICY,
    )
