"""Which ``Host`` names the dashboard answers to: its defence against DNS rebinding.

A page on attacker.example can have its name re-resolved to 127.0.0.1 (DNS rebinding); its
scripts then reach a dashboard on the visitor's machine as their own origin, so they can read
every page and send every request, with ``Host: attacker.example``. Origin and Host agree on
such a request, so the cross-site check cannot see it: the Host itself must name this server.
A request is answered when its Host (and every ``X-Forwarded-Host`` a proxy added) is

* ``localhost`` or a loopback address: browsers resolve ``localhost`` themselves, never through
  DNS, and no page can rebind an address (its origin *is* the address);
* the address the connection arrived at (the ASGI ``server`` address, when it is an IP
  address): a server bound to 0.0.0.0 answers to this machine's own addresses, each on its own
  interface, and to no other;
* one of the ``allowed_hosts``: a name, ``*.example.com`` for the names under it, an address,
  or ``*`` for any name at all (leave the check to a proxy in front).

Ports are not compared: a browser sends the port it connected to, which a proxy may change, and
a page on another port of the same name is a cross-site sender, which the Origin check refuses.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_PORT = re.compile(r"^[0-9]{1,5}$")
LOCALHOST = "localhost"


def _address(text: str) -> str | None:
    """`text` as a canonical IP address (an IPv4-mapped IPv6 one as IPv4), or None."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return str(mapped or ip)


def _canonical(text: str) -> str | None:
    """A host in one spelling: an address as :mod:`ipaddress` writes it, a name lower case."""
    text = text.lower()
    if text.startswith("["):  # only an IPv6 address is written in brackets
        inner = text.removeprefix("[").removesuffix("]")
        return _address(inner) if text.endswith("]") and ":" in inner else None
    address = _address(text)
    if address is not None:
        return address
    return text if _NAME.match(text) else None


def host_of(value: str) -> str | None:
    """The canonical host of a ``Host`` header (``name``, ``name:port``, ``[v6]:port``), or
    None when it is malformed."""
    value = value.strip()
    if value.startswith("["):
        host, sep, port = value.partition("]")
        host += sep
        if port and not (port.startswith(":") and _PORT.match(port[1:])):
            return None
    else:
        host, sep, port = value.partition(":")
        if sep and not _PORT.match(port):
            return None
    return _canonical(host)


def _loopback(host: str) -> bool:
    """Whether canonical `host` names this machine wherever the request comes from."""
    if host == LOCALHOST:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class AllowedHosts:
    """The host names a dashboard answers to beyond its defaults (module docstring).

    Build it with :meth:`parse`.
    """

    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    any: bool = False

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowedHosts:
        """Check the `entries` (or one entry): names, addresses, ``*.domain`` or ``*``; no ports.

        Raises:
            ValueError: an entry that is none of these, naming the entry.
        """
        if isinstance(entries, str):  # one name, not its letters
            entries = [entries]
        names: set[str] = set()
        suffixes: list[str] = []
        wildcard = False
        for entry in entries:
            if entry == "*":
                wildcard = True
                continue
            pattern = entry.startswith("*.")
            host = _canonical(entry.removeprefix("*.") if pattern else entry)
            if host is None or (pattern and _address(host) is not None):
                raise ValueError(
                    f"allowed host {entry!r}: expected a host name, an IP address, "
                    "*.domain or * (without a port)"
                )
            if pattern:
                suffixes.append(f".{host}")
            else:
                names.add(host)
        return cls(frozenset(names), tuple(suffixes), wildcard)

    def permits(self, host: str, local: str | None) -> bool:
        """Whether canonical `host` may be served on a connection that arrived at the canonical
        address `local` (None when the server did not say)."""
        if self.any or host in self.names or host == local or _loopback(host):
            return True
        return any(host.endswith(suffix) for suffix in self.suffixes)


def local_address(server: object) -> str | None:
    """The canonical address of an ASGI scope's ``server`` entry, when it is an address.

    A name there is not taken: some servers fill it in from the request's own Host.
    """
    if isinstance(server, (tuple, list)) and server and isinstance(server[0], str):
        return _address(server[0])
    return None
