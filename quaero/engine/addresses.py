"""The outbound address policy: which addresses a request may connect to, and the network backend that
enforces it at connection time.

An address is refused when it is loopback, private (RFC 1918, IPv6 unique local), link-local (the cloud
metadata address 169.254.169.254 among them), multicast, unspecified (``0.0.0.0``, ``::``), carrier-grade
NAT shared space (100.64.0.0/10), reserved or otherwise not globally routable, unless one of the allowed
networks (the setting ``allow_private_networks``) contains it. IPv6 forms that carry an IPv4 address
(IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are judged by that address.

:class:`GuardedBackend` resolves the host itself, keeps the addresses the policy allows and connects to
one of them by its number, so nothing resolves the name again between the check and the connection (no
DNS-rebinding window). TLS and the ``Host`` header still use the name: httpcore passes the origin's host
for SNI on its own.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore

from quaero.api.outbound import OutboundRefused, refusal_message
from quaero.settings import GUIDE_PATH, Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
#: Names that always mean this machine (RFC 6761), refused before any lookup when loopback is.
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64, 6to4), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _kind(address: Address) -> str | None:
    """Why ``address`` itself is not a public one (``None`` when it is)."""
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address in _METADATA:
        return "link-local, the cloud metadata address"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address in _SHARED:
        return "shared address space of carrier-grade NAT"
    if any(address in network for network in _RFC1918):
        return "private"
    if address.is_reserved:
        return "reserved"
    if address.is_private or not address.is_global:
        return "special-purpose, not globally routable"
    return None


def address_kind(address: Address) -> str | None:
    """Why ``address`` is not public, judged by the IPv4 address it carries when it carries one."""
    inner = embedded_ipv4(address)
    if isinstance(address, ipaddress.IPv6Address) and inner is not None:
        reason = _kind(inner)
        if reason is not None:
            return f"{reason}: the IPv4 address {inner} in IPv6 form"
        if address.ipv4_mapped is not None or address in _NAT64:
            return None  # the IPv4 address decides; the IPv6 prefix is only its wrapping
    return _kind(address)


class AddressPolicy:
    """Which addresses outbound connections may reach: the public ones, and those inside ``allowed``.

    ``readable``: URLs (``http://127.0.0.1:8085/robots.txt``) and URL prefixes ending in ``/``
    (``http://127.0.0.1:8085/guide/``), with a literal address or ``localhost`` as the host, that GET and
    HEAD requests may read although their address is refused, and nothing else of that address: the
    server's own user guide and its robots.txt, which the shipped example crawls.
    """

    def __init__(self, allowed: Iterable[Network] = (), readable: Iterable[str] = ()) -> None:
        self.allowed: tuple[Network, ...] = tuple(allowed)
        self.readable: tuple[tuple[str, str, int, str], ...] = tuple(filter(None, map(_prefix, readable)))

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        """The policy of the setting ``allow_private_networks``, reading the server's own user guide."""
        own = settings.server_url
        return cls(settings.private_networks, readable=[own + GUIDE_PATH, own + "/robots.txt"] if own else [])

    def reads(self, method: str, url: str) -> bool:
        """Whether ``url`` is under a :attr:`readable` prefix and ``method`` only reads it. A path with a
        dot segment or an escaped dot or slash is never under one (it could mean another path)."""
        if method.upper() not in ("GET", "HEAD") or not self.readable:
            return False
        place = _prefix(url)
        if place is None:
            return False
        path = place[3]
        if "%2e" in path.lower() or "%2f" in path.lower() or "%5c" in path.lower() or "\\" in path \
                or any(segment in (".", "..") for segment in path.split("/")):
            return False
        return any(place[:3] == prefix[:3] and (path.startswith(prefix[3]) if prefix[3].endswith("/")
                                                else path == prefix[3]) for prefix in self.readable)

    def readable_networks(self) -> tuple[Network, ...]:
        """The addresses of the :attr:`readable` prefixes (``localhost``: both loopback addresses)."""
        networks: list[Network] = []
        for _, host, _, _ in self.readable:
            hosts = ["127.0.0.1", "::1"] if host == "localhost" else [host]
            networks.extend(ipaddress.ip_network(item) for item in hosts)
        return tuple(dict.fromkeys(networks))

    def is_allowed(self, address: Address) -> bool:
        """Whether a network of :attr:`allowed` contains ``address`` (or the IPv4 address it carries)."""
        forms = [address, *filter(None, [embedded_ipv4(address)])]
        return any(form.version == network.version and form in network for form in forms for network in self.allowed)

    def refusal(self, address: Address) -> str | None:
        """Why a connection to ``address`` is refused, or ``None`` when it may be made."""
        reason = address_kind(address)
        if reason is None or self.is_allowed(address):
            return None
        return reason

    def host_refusal(self, host: str) -> str | None:
        """Why a request to ``host`` is refused without looking the name up: ``host`` is an address the
        policy refuses, or a name of this machine (``localhost``) while loopback is refused. ``None``
        when only the connection can tell (any other name)."""
        host = host.strip("[]").lower().rstrip(".")
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            if host in _LOCAL_NAMES or host.endswith(".localhost"):
                loopbacks = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
                if not any(self.is_allowed(loopback) for loopback in loopbacks):
                    return refusal_message(host, ["127.0.0.1"], ["loopback"])
            return None
        reason = self.refusal(address)
        return None if reason is None else refusal_message(host, [str(address)], [reason])

    def url_refusal(self, url: str) -> str | None:
        """:meth:`host_refusal` of ``url``'s host (``None`` for a URL without one, or one it :meth:`reads`)."""
        if self.reads("GET", url):
            return None
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return None
        return self.host_refusal(host) if host else None


def _prefix(url: str) -> tuple[str, str, int, str] | None:
    """``url`` as (scheme, host, port, path), the host a literal address or ``localhost``; else ``None``."""
    try:
        parts = urlsplit(url)
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or parts.username or parts.password:
        return None
    if host != "localhost":
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            return None
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), parts.path or "/"


#: How names are resolved: :func:`socket.getaddrinfo`'s signature (tests give a resolver of their own).
Resolver = Callable[..., list[tuple[Any, ...]]]


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's synchronous network backend behind the policy: resolve, check, connect by address."""

    def __init__(self, policy: AddressPolicy, inner: httpcore.NetworkBackend | None = None,
                 resolver: Resolver = socket.getaddrinfo) -> None:
        self.policy = policy
        self.inner = inner if inner is not None else httpcore.SyncBackend()
        self.resolver = resolver

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        allowed, refused = self.resolve(host, port)
        if not allowed:
            raise OutboundRefused(host, [address for address, _ in refused], [reason for _, reason in refused])
        error: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in allowed:  # as socket.create_connection does: the next address when one fails
            try:
                return self.inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                              socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    def resolve(self, host: str, port: int) -> tuple[list[str], list[tuple[str, str]]]:
        """The addresses of ``host`` that may be connected to, and the refused ones with why."""
        try:
            infos = self.resolver(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        allowed: list[str] = []
        refused: list[tuple[str, str]] = []
        for *_, sockaddr in infos:
            text = str(sockaddr[0])
            address = ipaddress.ip_address(text.split("%", 1)[0])
            reason = self.policy.refusal(address)
            if reason is not None:
                if (text, reason) not in refused:
                    refused.append((text, reason))
            elif text not in allowed:
                allowed.append(text)
        return allowed, refused

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("outbound requests do not use Unix sockets")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)
