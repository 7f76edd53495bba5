"""The SCIM resources the bridge serves, with Microsoft Entra's tolerances (RFC 7643 + entra.md).

- Entra sends the enterprise ``manager`` as a bare string and without ``$ref``, but expects it back
  as a complex ``{"value": ...}`` (entra.md §1.5); the stock ``EnterpriseUser`` refuses both forms,
  so a relaxed extension with the same schema URN replaces it.
- An address is accepted when GitLab would accept it (Devise's ``local@domain``), not by a mail
  library's deliverability or special-use rules: ``.local``, ``.internal`` and ``.test`` domains
  are common in hybrid and test tenants, and refusing them fails those people on every cycle.
- ``active`` is a JSON boolean or Entra's ``"True"``/``"False"``, never a guess from ``"yes"``.
"""

from __future__ import annotations

import re
from typing import Annotated
from typing import Any

from pydantic import AfterValidator
from pydantic import BeforeValidator
from pydantic import Field
from pydantic import field_validator
from scim2_models import URN
from scim2_models import AnyExtension
from scim2_models import AuthenticationScheme
from scim2_models import Bulk
from scim2_models import ChangePassword
from scim2_models import ComplexAttribute
from scim2_models import Email as StockEmail
from scim2_models import ETag
from scim2_models import Extension
from scim2_models import External
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


# Devise's ``email_regexp`` as GitLab validates ``User#email`` (gitlab.md §1.2): one ``@`` with
# something on each side and no whitespace, Ruby's ``\s`` being ASCII whitespace only.
_GITLAB_EMAIL = re.compile(r"[^@ \t\r\n\f\v]+@[^@ \t\r\n\f\v]+")


def gitlab_address(value: str | None) -> str | None:
    """An address GitLab would take; anything else is the client's error (400 invalidValue)."""
    if value is not None and not _GITLAB_EMAIL.fullmatch(value):
        raise ValueError(
            f"emails.value {value[:100]!r} is not an email address "
            "(one '@' with text on each side and no spaces)"
        )
    return value


def strict_boolean(value: Any) -> Any:
    """A JSON boolean, or ``"true"``/``"false"`` in any case (Entra's ``"True"``); else refused."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"active must be true or false, not {str(value)[:100]!r}")


class Email(StockEmail):
    """RFC 7643 §4.1.2 emails, checked as GitLab checks them rather than by deliverability."""

    value: Annotated[str | None, AfterValidator(gitlab_address)] = None
    """Email addresses for the user."""


class BridgeUser(User[AnyExtension]):
    """The core User (RFC 7643 §4.1) with GitLab's address rule and a strict ``active``."""

    # Our Email in place of the stock one (a subclass): list is invariant, so mypy cannot accept
    # refining the field of the pydantic model it overrides, which pydantic supports.
    emails: list[Email] | None = None  # type: ignore[assignment]
    """Email addresses for the user."""

    active: Annotated[bool | None, BeforeValidator(strict_boolean)] = None
    """A Boolean value indicating the User's administrative status."""


UserResource = BridgeUser[EntraEnterpriseUser]


def service_provider_config() -> ServiceProviderConfig:
    """What the bridge supports, and nothing more (RFC 7643 §5): Entra and validators read it."""
    return ServiceProviderConfig(
        documentation_uri=Reference[External]("https://github.com/scim-bridge/scim-bridge#readme"),
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
                spec_uri=Reference[External]("https://www.rfc-editor.org/rfc/rfc6750"),
                primary=True,
            )
        ],
    )


def build_provider() -> ScimProvider:
    resource_types = [ResourceType.from_resource(UserResource), ResourceType.from_resource(Group)]
    models: list[type[Resource[Any]] | type[Extension]] = [
        BridgeUser,
        Group,
        EntraEnterpriseUser,
    ]
    return ScimProvider(
        models=models,
        resource_types=resource_types,
        config=service_provider_config(),
        policy=ENTRA_POLICY,
    )
