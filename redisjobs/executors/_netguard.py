"""Where the http executor may connect: public addresses only, unless the worker says otherwise.

A payload's URL could name the worker's own machine or network (``127.0.0.1``, ``localhost``,
``[::ffff:127.0.0.1]``, ``2130706433``, ``169.254.169.254``, ``10.0.0.5``, …). The decision is
made on the address a connection actually goes to, not on how the URL spells it: the host name is
resolved here, every address it resolves to is checked, and the connection is made to a checked
address (TLS still verifies and sends the name from the URL). So a name that resolves to a public
address when checked cannot resolve to a private one when connecting (DNS rebinding), and each
redirect hop, being a new connection, is checked the same way.
"""

from __future__ import annotations

import ipaddress
import socket
import typing
from collections.abc import Iterable

import anyio
import httpcore
import httpx

from ..errors import PayloadError
from ._common import HostAllowList

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

HINT = "allow_private=True or --http-allow-private to allow"

# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, RFC 6052 and 8215):
# a gateway turns them into the IPv4 address, so that one is what gets checked.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def non_public(ip: IPAddress) -> str | None:
    """What makes `ip` a non-public address (``"a loopback address"``), or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        ip = _embedded_ipv4(ip) or ip
    checks = (
        ("a loopback address", ip.is_loopback),
        ("a link-local address", ip.is_link_local),
        ("the unspecified address", ip.is_unspecified),
        ("a multicast address", ip.is_multicast),  # is_global says True for some
        ("a reserved address", ip.is_reserved),  # before is_private, which includes 240/4
        ("a private address", ip.is_private),
    )
    for what, hit in checks:
        if hit:
            return what
    return None if ip.is_global else "a non-public address"  # 100.64/10 (CGNAT), …


class PrivateAllowance:
    """Which non-public addresses a worker lets its jobs reach.

    Args:
        allow: True for all of them; else host names (``*.corp.example`` for subdomains, as in
            an allow-list) whose addresses may be non-public, and IP networks or addresses
            (``10.0.0.0/8``, ``192.168.1.20``) that may be reached.
        allow_hosts: the worker's allow-list: a host it names was chosen by the worker, so its
            addresses may be non-public too.
    """

    def __init__(self, allow: bool | Iterable[str], allow_hosts: HostAllowList) -> None:
        self.everything = allow is True
        entries = [] if isinstance(allow, bool) else [a.strip() for a in allow if a.strip()]
        self._networks: list[IPNetwork] = []
        names: list[str] = []
        for entry in entries:
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.append(entry)
        self._names_lists = (HostAllowList(names), allow_hosts)

    def refusal(self, host: str, ip: IPAddress) -> str | None:
        """Why `host` may not be reached at `ip`, or None when it may."""
        if self.everything or any(n.restricted and n.allows(host) for n in self._names_lists):
            return None
        inner = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
        if any(a in net for net in self._networks for a in (ip, inner) if a is not None):
            return None
        what = non_public(ip)
        if what is None:
            return None
        shown = f"{ip} ({inner})" if inner else str(ip)
        if _literal(host) == ip:
            return f"refused: {shown} is {what} ({HINT})"
        return f"refused: {host} resolves to {shown}, {what} ({HINT})"


def _literal(host: str) -> IPAddress | None:
    """`host` as an IP address when it is written as one in the usual form."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


async def resolve_checked(host: str, port: int, allowance: PrivateAllowance) -> list[str]:
    """The addresses of `host`, each allowed; PayloadError if any one is not.

    Every address is checked, not just the first: a name that also resolves to a private
    address would otherwise reach it whenever the connection falls back to that one.
    """
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:  # socket.gaierror: no such name
        raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        reason = allowance.refusal(host, ipaddress.ip_address(address.split("%", 1)[0]))
        if reason is not None:
            raise PayloadError(reason)
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects only to addresses the allowance lets through."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, allowance: PrivateAllowance) -> None:
        self._inner = inner
        self._allowance = allowance

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve `host`, check each address, connect to the first one that answers."""
        try:
            with anyio.fail_after(timeout):  # one bound for resolving and every attempt
                addresses = await resolve_checked(host, port, self._allowance)
                error: Exception = httpcore.ConnectError(f"no address for {host!r}")
                for address in addresses:
                    try:
                        return await self._inner.connect_tcp(
                            address, port, None, local_address, socket_options
                        )
                    except httpcore.ConnectError as exc:
                        error = exc
                raise error
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connecting to {host!r} timed out") from None

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Not used: the executor's transport has no unix socket."""
        raise httpcore.ConnectError("unix sockets are not reachable from http jobs")

    async def sleep(self, seconds: float) -> None:
        """As the wrapped backend."""
        await self._inner.sleep(seconds)


def guarded_transport(
    limits: httpx.Limits, allowance: PrivateAllowance
) -> httpx.AsyncHTTPTransport:
    """httpx's own transport (TLS settings, pooling), connecting through :class:`GuardedBackend`.

    httpx takes no network backend, so the one of the pool it made is wrapped in place; if a
    future httpx builds its pool differently this fails here, loudly, rather than unguarded.
    """
    transport = httpx.AsyncHTTPTransport(limits=limits)
    pool = transport._pool
    if not isinstance(pool, httpcore.AsyncConnectionPool) or not hasattr(pool, "_network_backend"):
        raise RuntimeError("this httpx version builds its pool differently: cannot guard it")
    pool._network_backend = GuardedBackend(pool._network_backend, allowance)
    return transport
