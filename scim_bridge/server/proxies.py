"""Whose ``X-Forwarded-*`` headers are believed: only the configured proxies' (``trusted_proxies``).

Anyone can send ``X-Forwarded-For``; believing it from any peer lets a caller pick the address the
audit trail records and the per-address limits count. So the headers are read only when the socket
peer is a trusted proxy, and the caller's address is the rightmost ``X-Forwarded-For`` entry that
is not itself a trusted proxy: entries to its left were written by the caller, not by a proxy.
``X-Forwarded-Host``/``-Port`` name the host tokens are bound to, so they are believed only when the
operator says so (``trust_forwarded_host``) and only from a trusted proxy.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from collections.abc import Iterator
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

# Where the socket peer's address is kept when REMOTE_ADDR becomes the forwarded caller's.
PEER_KEY = "scim_bridge.peer"

_HOST = re.compile(r"^[A-Za-z0-9.\-\[\]:]{1,255}$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(value: str | None) -> IPAddress | None:
    """An address as a peer or a forwarded entry gives it (``1.2.3.4:80``, ``[::1]:80`` too)."""
    if not value:
        return None
    text = value.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The addresses and CIDR blocks of ``[server] trusted_proxies``."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.networks = tuple(
            ipaddress.ip_network(entry.strip(), strict=False) for entry in entries
        )

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: object) -> bool:
        parsed = address if isinstance(address, IPAddress) else None
        if parsed is None and isinstance(address, str):
            parsed = parse_address(address)
        if parsed is None:
            return False
        return any(parsed in network for network in self.networks)

    def gunicorn_list(self) -> str:
        """For gunicorn's ``forwarded_allow_ips`` (which wants networks without host bits)."""
        return ",".join(str(network) for network in self.networks)


class ForwardedHeaders:
    """WSGI middleware: the caller's address, scheme (and, if trusted, host) from trusted proxies."""

    def __init__(
        self,
        app: WSGIApplication,
        trusted: TrustedProxies,
        *,
        hops: int = 0,
        trust_host: bool = False,
    ) -> None:
        self.app = app
        self.trusted = trusted
        # 0: walk every entry; else at most this many, right to left (the proxies in front).
        self.hops = hops
        self.trust_host = trust_host

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        peer = environ.get("REMOTE_ADDR")
        environ[PEER_KEY] = peer
        if self.trusted and peer in self.trusted:
            self._believe(environ)
        return self.app(environ, start_response)

    def _believe(self, environ: dict[str, Any]) -> None:
        client = self.client_address(environ.get("HTTP_X_FORWARDED_FOR"))
        if client is not None:
            environ["REMOTE_ADDR"] = client
        proto = _last(environ.get("HTTP_X_FORWARDED_PROTO"))
        if proto is not None and proto.lower() in ("http", "https"):
            environ["wsgi.url_scheme"] = proto.lower()
        if self.trust_host:
            self._believe_host(environ)

    def client_address(self, forwarded_for: str | None) -> str | None:
        """The rightmost entry that is no trusted proxy (None: no usable entry, keep the peer)."""
        client = None
        for count, entry in enumerate(_right_to_left(forwarded_for), start=1):
            address = parse_address(entry)
            if address is None:
                break  # a trusted proxy would not write this: stop at what was checked
            client = str(address)
            if address not in self.trusted or (self.hops and count >= self.hops):
                break
        return client

    def _believe_host(self, environ: dict[str, Any]) -> None:
        host = _last(environ.get("HTTP_X_FORWARDED_HOST"))
        if host is not None and _HOST.match(host):
            environ["HTTP_HOST"] = host
            environ["SERVER_NAME"] = host.rpartition(":")[0] if _has_port(host) else host
        port = _last(environ.get("HTTP_X_FORWARDED_PORT"))
        if port is not None and port.isdigit() and 0 < int(port) < 65536:
            host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
            if _has_port(host):
                host = host.rpartition(":")[0]
            environ["HTTP_HOST"] = f"{host}:{port}"
            environ["SERVER_PORT"] = port


def _right_to_left(header: str | None) -> Iterator[str]:
    if header:
        yield from reversed([entry.strip() for entry in header.split(",")])


def _last(header: str | None) -> str | None:
    """The value the nearest proxy wrote (the rightmost of a list)."""
    for entry in _right_to_left(header):
        return entry or None
    return None


def _has_port(host: str) -> bool:
    return ":" in host and host.rpartition(":")[2].isdigit() and not host.endswith("]")
