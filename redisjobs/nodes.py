"""The Redis nodes that serve a Client, and in which role: the node it talks to, its replicas
and, behind a ``redis+sentinel://`` URL, the sentinels; for a Redis Cluster, every shard's
master and replicas.

One read: ``INFO replication`` of the node the Client talks to (the master, unless the URL names
a replica), which lists each replica with its state, offset and lag. The sentinels are those the
URL names, without asking them: the Client already asks them where the master is on every new
connection, and the master's own INFO tells where it is served from. A cluster's nodes are read
from ``CLUSTER SHARDS`` of the node serving the registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from .connection import Backend
from .sentinel import parse_sentinel_url

EMBEDDED_ADDRESS = "memory"
"""The address of the embedded backend's one node."""
_REPLICA_ENTRY = re.compile(r"slave(\d+)")
"""A master's INFO field of one replica: ``slaveN:ip=..,port=..,state=..,offset=..,lag=..``."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One Redis node that serves a Client.

    Attributes:
        address: ``host:port`` (``[host]:port`` for IPv6, a socket's path, or ``memory``: the
            embedded backend).
        role: ``master``, ``replica`` or ``sentinel``.
        state: a replica's replication state as its master reports it (``online`` once
            synced; ``wait_bgsave`` or ``send_bulk`` while syncing), or as the replica reports
            its link when the Client talks to a replica (``up``, ``down``); None for the others.
        lag_s: seconds since a replica last acknowledged its master (None: not reported).
        offset_behind: bytes of the master's replication stream a replica has not
            acknowledged yet (the master's offset less the replica's; None: not reported).
    """

    address: str
    role: str
    state: str | None = None
    lag_s: int | None = None
    offset_behind: int | None = None


async def list_nodes(redis: Redis, backend: Backend) -> list[NodeInfo]:
    """The nodes serving `backend`'s Client, in one round trip: the node `redis` talks to
    first, its master next when that node is a replica, then the replicas its ``INFO
    replication`` lists, then the sentinels the URL names.

    The embedded backend is one in-process server without INFO or replicas: a master at
    ``memory``, read without a call. A Redis that refuses INFO shows the node talked to alone.
    """
    if backend.embedded:
        return [NodeInfo(EMBEDDED_ADDRESS, "master")]
    if backend.cluster:
        return await _cluster_nodes(redis)
    try:
        info: Any = await redis.info("replication")
    except ResponseError:
        # INFO is in the ACL category @dangerous, and may be renamed away: its refusal must not
        # take `info` and /metrics down. The node the Client writes to is its master, then (a
        # replica refuses writes); its replicas are unknown.
        info = {}
    # The pool knows where the connection that just answered went (for Sentinel: where the
    # sentinels said the master is), which the node itself does not report.
    nodes = [*_talked_to(info, _address_of(redis, backend)), *_replicas(info)]
    if backend.sentinel:
        sentinels = parse_sentinel_url(backend.url).sentinels
        nodes += [NodeInfo(_join(host, port), "sentinel") for host, port in sentinels]
    return nodes


async def _cluster_nodes(redis: Redis) -> list[NodeInfo]:
    """Every shard's master then its replicas (state: each node's health as the cluster sees
    it, ``online``, ``failed`` or ``loading``), the shards in slot order."""
    reply: Any = await redis.execute_command("CLUSTER", "SHARDS")  # type: ignore[no-untyped-call]
    shards = [_fields(shard) for shard in reply]
    shards.sort(key=lambda shard: min(shard.get("slots") or [16384]))
    found = []
    for shard in shards:
        nodes = [_fields(node) for node in shard.get("nodes") or []]
        masters = [n for n in nodes if _text(n.get("role")) == "master"]
        head = _int(masters[0].get("replication-offset")) if masters else None
        for node in masters + [n for n in nodes if n not in masters]:
            offset = _int(node.get("replication-offset"))
            replica = _text(node.get("role")) != "master"
            behind = head - offset if replica and head is not None and offset is not None else None
            address = _join(_text(node.get("ip") or node.get("endpoint")), node.get("port", "?"))
            role = "replica" if replica else "master"
            found.append(NodeInfo(address, role, _text(node.get("health")), None, behind))
    return found


def _fields(entry: Any) -> dict[str, Any]:
    """A CLUSTER SHARDS map (redis-py parses it to a dict of bytes keys, or leaves a flat
    list of names and values) as a dict of str keys."""
    pairs = entry.items() if isinstance(entry, dict) else zip(entry[::2], entry[1::2], strict=True)
    return {_text(k): v for k, v in pairs}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _talked_to(info: dict[str, Any], address: str) -> list[NodeInfo]:
    """The node the Client talks to; a replica's own master after it (from its INFO)."""
    if info.get("role") != "slave":
        return [NodeInfo(address, "master")]
    upstream = _join(str(info.get("master_host", "?")), info.get("master_port", "?"))
    link = info.get("master_link_status")
    return [NodeInfo(address, "replica", state=link), NodeInfo(upstream, "master")]


def _replicas(info: dict[str, Any]) -> list[NodeInfo]:
    """The replicas a node's INFO lists, in its order (``slave0``, ``slave1``...)."""
    head = _int(info.get("master_repl_offset"))
    found = []
    for name, entry in info.items():
        match = _REPLICA_ENTRY.fullmatch(name)
        if match is None or not isinstance(entry, dict):
            continue  # another field, or an entry redis-py could not split into its parts
        offset = _int(entry.get("offset"))
        behind = head - offset if head is not None and offset is not None else None
        node = NodeInfo(
            _join(str(entry.get("ip", "?")), entry.get("port", "?")),
            "replica",
            state=entry.get("state"),
            lag_s=_int(entry.get("lag")),
            offset_behind=behind,
        )
        found.append((int(match.group(1)), node))
    return [node for _, node in sorted(found, key=lambda pair: pair[0])]


def _address_of(redis: Redis, backend: Backend) -> str:
    """Where `redis`'s connections go: the master the sentinels named, else the URL's node."""
    pool: Any = redis.connection_pool
    if backend.sentinel:
        # set by every connection as it asks the sentinels (None only before the first)
        host, port = pool.master_address or ("?", "?")
        return _join(host, port)
    settings = pool.connection_kwargs
    if "path" in settings:
        return str(settings["path"])  # a unix:// socket
    # redis-py's defaults, when the URL names no host or port
    return _join(settings.get("host", "localhost"), settings.get("port", 6379))


def _join(host: str, port: object) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _int(value: object) -> int | None:
    """An INFO number (redis-py parses them), or None when absent or not one."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None
