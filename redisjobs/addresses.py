"""``host:port`` in a URL that names several servers (sentinels, cluster nodes)."""

from __future__ import annotations


def parse_address(host_port: str, default_port: int, what: str) -> tuple[str, int]:
    """``host[:port]`` (``[v6]:port`` for IPv6) as ``(host, port)``.

    Raises:
        ValueError: no host, or a port that is not 1-65535; `what` names the server's kind.
    """
    if host_port.startswith("["):  # an IPv6 address: [::1]:26379
        host, _, tail = host_port[1:].partition("]")
        sep, port = tail[:1], tail[1:]
    else:
        host, sep, port = host_port.partition(":")
    port = port if sep else str(default_port)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad {what} address {host_port!r}: want host:port")
    return host, int(port)
