"""What a GitLab account should look like, read from a stored SCIM User (DESIGN.md, Users)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scim_bridge.provisioning.usernames import base_username


@dataclass(frozen=True)
class DesiredAccount:
    user_name: str
    username: str
    email: str | None
    name: str
    extern_uid: str | None
    active: bool


def _email(document: dict[str, Any]) -> str | None:
    """The primary email, else the ``work`` one, else the first."""
    emails = [entry for entry in document.get("emails") or [] if entry.get("value")]
    for wanted in (lambda e: e.get("primary") is True, lambda e: e.get("type") == "work"):
        for entry in emails:
            if wanted(entry):
                return str(entry["value"])
    return str(emails[0]["value"]) if emails else None


def _name(document: dict[str, Any]) -> str:
    """``displayName``, else ``name.formatted``, else given + family name, else ``userName``."""
    if document.get("displayName"):
        return str(document["displayName"])
    name = document.get("name") or {}
    if name.get("formatted"):
        return str(name["formatted"])
    parts = [name.get("givenName"), name.get("familyName")]
    joined = " ".join(str(part) for part in parts if part)
    return joined or str(document["userName"])


def desired_account(document: dict[str, Any]) -> DesiredAccount:
    active = document.get("active")
    return DesiredAccount(
        user_name=str(document["userName"]),
        username=base_username(str(document["userName"])),
        email=_email(document),
        name=_name(document),
        extern_uid=document.get("externalId"),
        active=active is not False,
    )
