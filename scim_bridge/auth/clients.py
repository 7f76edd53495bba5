"""OAuth 2.0 clients for Entra's "OAuth2 client credentials grant" (RFC 6749 §4.4, entra.md §3.3).

A client has a public id (``sbc_…``) and one or more secrets (``sbs_<lookup>_<secret>``), each
stored hashed and expiring (Entra asks for 1-3 years), so a secret can be rotated: ``rotate`` adds
one while the old stays valid until it expires or is revoked. Access tokens (``sba_…``) are opaque,
stored hashed beside their client, secret, issuer and audience, and checked against all four on
every use: revoking the client or the secret that minted a token ends the token at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from scim_bridge import clock
from scim_bridge.auth import credentials
from scim_bridge.store.credentials import NameTaken
from scim_bridge.store.credentials import NotActive
from scim_bridge.store.db import Database
from scim_bridge.store.oauth_clients import NewAccessToken
from scim_bridge.store.oauth_clients import NoSuchSecret
from scim_bridge.store.oauth_clients import OAuthClientRepository

CLIENT_ID_PREFIX = "sbc"
SECRET_PREFIX = "sbs"
ACCESS_TOKEN_PREFIX = "sba"


class ClientError(ValueError):
    """A client command that cannot be carried out (duplicate name, unknown name)."""


@dataclass(frozen=True)
class NewClient:
    client_id: str
    client_secret: str
    secret_expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class SecretInfo(credentials.Lifetime):
    id: int


@dataclass(frozen=True)
class ClientInfo:
    name: str
    client_id: str
    created_at: datetime
    revoked_at: datetime | None
    secrets: tuple[SecretInfo, ...]

    @property
    def status(self) -> str:
        return "revoked" if self.revoked_at is not None else "active"


@dataclass(frozen=True)
class VerifiedClient:
    """A client that proved it holds a valid secret: what a token is minted for."""

    id: int
    name: str
    secret_id: int


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int
    scope: str | None


class ClientStore:
    def __init__(self, db: Database, *, secret_days: int = 365) -> None:
        self.db = db
        self.secret_days = secret_days
        self.repository = OAuthClientRepository(db)

    # -- Operator commands ----------------------------------------------------------

    def create(self, name: str) -> NewClient:
        """Create a client and its first secret; the secret is never shown again."""
        client_id = f"{CLIENT_ID_PREFIX}_{secrets.token_hex(12)}"
        issued = credentials.issue(SECRET_PREFIX)
        try:
            expires_at = self.repository.create_client(
                name, client_id, issued.stored, self._secret_lifetime
            )
        except NameTaken:
            raise ClientError(
                f"a client named {name!r} already exists (revoked clients keep their name, "
                "for the audit trail); choose another name"
            ) from None
        return NewClient(client_id, issued.presented, expires_at)

    def rotate(self, name: str) -> tuple[str, datetime]:
        """Add a secret; the old ones stay valid until they expire or are revoked."""
        issued = credentials.issue(SECRET_PREFIX)
        try:
            expires_at = self.repository.add_secret(name, issued.stored, self._secret_lifetime)
        except NotActive:
            raise _no_active_client(name) from None
        return issued.presented, expires_at

    def revoke_secret(self, name: str, secret_id: int | None = None) -> list[int]:
        """Revoke one secret by id, or every secret but the newest (the end of a rotation)."""
        try:
            return self.repository.revoke_secrets(name, secret_id)
        except NotActive:
            raise _no_active_client(name) from None
        except NoSuchSecret:
            raise ClientError(f"client {name!r} has no unrevoked secret #{secret_id}") from None

    def revoke(self, name: str) -> None:
        """End the client and, at once, every token it holds."""
        try:
            self.repository.revoke_client(name)
        except NotActive:
            raise _no_active_client(name) from None

    def list(self) -> list[ClientInfo]:
        return [
            ClientInfo(
                name=client.name,
                client_id=client.client_id,
                created_at=client.created_at,
                revoked_at=client.revoked_at,
                secrets=tuple(
                    SecretInfo(id=secret.id, **credentials.lifetime(secret))
                    for secret in client.secrets
                ),
            )
            for client in self.repository.all()
        ]

    @property
    def _secret_lifetime(self) -> timedelta:
        return timedelta(days=self.secret_days)

    # -- The token endpoint ---------------------------------------------------------

    def authenticate(self, client_id: str, presented_secret: str) -> VerifiedClient | None:
        """The client, when ``presented_secret`` is one of its live secrets; same work either way."""
        found = credentials.find(
            SECRET_PREFIX, presented_secret, self.repository.find_secret_by_lookup
        )
        if (
            found is None
            or found.client_id != client_id
            or found.revoked_at is not None
            or found.client_revoked_at is not None
            or credentials.expired(found.expires_at)
        ):
            return None
        return VerifiedClient(id=found.client, name=found.name, secret_id=found.secret_id)

    def issue_token(
        self,
        client: VerifiedClient,
        *,
        issuer: str,
        audience: str,
        scope: str | None,
        lifetime: timedelta,
    ) -> AccessToken:
        """Mint an access token for ``audience`` (this bridge's SCIM base URL)."""
        issued = credentials.issue(ACCESS_TOKEN_PREFIX)
        now = clock.now()
        self.repository.issue_token(
            NewAccessToken(
                token=issued.stored,
                client=client.id,
                client_name=client.name,
                client_secret=client.secret_id,
                issuer=issuer,
                audience=audience,
                scope=scope,
                issued_at=now,
                expires_at=now + lifetime,
            )
        )
        return AccessToken(issued.presented, int(lifetime.total_seconds()), scope)

    def verify_token(self, presented: str, audience: str) -> str | None:
        """The client's name when ``presented`` is a live token minted for ``audience``."""
        found = credentials.find(
            ACCESS_TOKEN_PREFIX, presented, self.repository.find_token_by_lookup
        )
        if (
            found is None
            or found.audience != audience
            or found.client_revoked_at is not None
            or found.secret_revoked_at is not None
            or credentials.expired(found.expires_at)
        ):
            return None
        return found.client_name


def _no_active_client(name: str) -> ClientError:
    return ClientError(f"no active client named {name!r}")
