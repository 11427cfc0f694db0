"""Redis Cluster: ``redis+cluster://`` URLs, and pools whose connections go where a slot lives.

A URL names one or more nodes of the cluster (any will do; the others are found from it)::

    redis+cluster://[user:password@]host:6379[,host:6379...][/]
    rediss+cluster://...                       (TLS)

Every key of a queue carries the queue's hash tag, so a queue lives in one slot, on one master,
and all its commands, pipelines and scripts run there as on a single Redis. A client of a
cluster is therefore a set of ordinary clients, one per slot it uses (its *homes*), each with a
:class:`SlotPool` whose connections ask the cluster which master serves the slot when they
connect (redis-py's ``RedisCluster`` reads the slot table). A reply saying the slot is
served elsewhere now (``MOVED``: a slot migrated, or a failover promoted a replica; ``READONLY``
or ``UNBLOCKED`` from a demoted master) becomes a lost connection, which every caller already
treats as "reconnect and try again", and the reconnect reads the slot table anew. So are ``ASK``
and ``TRYAGAIN`` (a slot in the middle of a migration), which are not followed (see
:func:`relocated`): a queue's calls wait the migration out.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from redis import cluster as sync_cluster
from redis.asyncio import cluster as async_cluster
from redis.asyncio.connection import BlockingConnectionPool, Connection, SSLConnection
from redis.connection import BlockingConnectionPool as SyncBlockingConnectionPool
from redis.connection import Connection as SyncConnection
from redis.connection import SSLConnection as SyncSSLConnection
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    MovedError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .addresses import parse_address
from .sentinel import demoted

SCHEMES = ("redis+cluster://", "rediss+cluster://")
DEFAULT_PORT = 6379
DISCOVERY_TIMEOUT = 1.0
"""Seconds a node has to answer ``CLUSTER SLOTS`` (from memory, at once); one that does not is
skipped for the next."""
_LOST = (RedisConnectionError, RedisTimeoutError, OSError)


def is_cluster_url(url: str) -> bool:
    """Whether `url` names a Redis Cluster (``redis+cluster://`` or ``rediss+cluster://``)."""
    return url.startswith(SCHEMES)


@dataclass(frozen=True, slots=True)
class ClusterURL:
    """A parsed ``redis+cluster://`` URL."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_cluster_url(url: str) -> ClusterURL:
    """Parse a ``redis+cluster://`` URL.

    Raises:
        ValueError: it is not one, names no node or a bad port, a database other than 0 (a
            cluster has no other), or a query option (it takes none).
    """
    if not is_cluster_url(url):
        raise ValueError(f"not a redis+cluster:// URL: {url!r}")
    scheme, rest = url.split("://", 1)
    rest, _, query = rest.partition("?")
    if query:
        raise ValueError("a cluster URL takes no query options")
    netloc, _, path = rest.partition("/")
    if path.strip("/") not in ("", "0"):
        raise ValueError("a Redis Cluster has database 0 only: ...host:6379/ or no path")
    userinfo, _, hosts = netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    return ClusterURL(
        nodes=tuple(parse_address(h, DEFAULT_PORT, "cluster node") for h in hosts.split(",")),
        username=unquote(username) or None,
        password=unquote(password) if userinfo and ":" in userinfo else None,
        tls=scheme == "rediss+cluster",
    )


def slot_of(key: str) -> int:
    """The cluster slot of `key` (of its hash tag, when it has one)."""
    return int(key_slot(key.encode()))


def relocated(reply: BaseException) -> bool:
    """Whether an error reply says the slot is served elsewhere now (``MOVED``, or a master
    demoted by a failover: ``READONLY``, ``UNBLOCKED``), or is on its way there (``ASK``,
    ``TRYAGAIN``: a migration under way, after which the next connect finds the new master).

    ``ASK`` is not followed: a queue's call sent to the importing node would run against the
    keys moved so far. A script declares its queue's prefix, a key that never exists, so while
    the slot migrates every script call is answered ``ASK`` and waits out the migration."""
    return isinstance(reply, MovedError | AskError | TryAgainError) or demoted(reply)


def _discovery_kwargs(url: ClusterURL, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings of the slot table's reads: `settings`' keepalive, short timeouts, the URL's
    credentials and TLS."""
    kwargs = {k: v for k, v in settings.items() if k.startswith("socket_keepalive")}
    kwargs.update(socket_connect_timeout=DISCOVERY_TIMEOUT, socket_timeout=DISCOVERY_TIMEOUT)
    kwargs.update(username=url.username, password=url.password, ssl=url.tls)
    return {"require_full_coverage": False, **kwargs}


class SlotOwners:
    """Which master serves each slot, as the cluster says (redis-py's asyncio ``RedisCluster``
    reads the slot table), read again after a sign it changed (:meth:`stale`)."""

    def __init__(self, url: ClusterURL, settings: dict[str, Any]) -> None:
        nodes = [async_cluster.ClusterNode(host, port) for host, port in url.nodes]
        self._cluster = async_cluster.RedisCluster(
            startup_nodes=nodes, **_discovery_kwargs(url, settings)
        )
        self._fresh = self._closed = False
        self._lock = asyncio.Lock()

    async def owner(self, slot: int) -> tuple[str, int]:
        """The address of the master serving `slot` (reading the slot table when stale).

        Raises:
            redis.exceptions.ConnectionError: no node of the cluster answered, or the pool was
                closed (a late reconnect must not open connections nobody would close).
        """
        async with self._lock:
            if self._closed:
                raise RedisConnectionError("the client is closed")
            if not self._fresh:
                try:
                    await self._cluster.nodes_manager.initialize()
                except (RedisClusterException, RedisError, OSError) as exc:
                    raise RedisConnectionError(f"no node of the cluster answered: {exc}") from exc
                self._fresh = True
            node = self._cluster.nodes_manager.get_node_from_slot(slot)
        return str(node.host), int(node.port)

    def stale(self) -> None:
        """Read the slot table again before the next :meth:`owner`."""
        self._fresh = False

    async def aclose(self) -> None:
        """Close the connections the slot table was read over, for good."""
        self._closed = True
        await self._cluster.aclose()


class SlotConnection(Connection):
    """A connection to whichever master serves its pool's slot (see the module's doc)."""

    def __init__(self, *, owners: SlotOwners, slot: int, **kwargs: Any) -> None:
        self.owners, self.slot = owners, slot
        super().__init__(**kwargs)

    async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        """redis-py's connect, to the master the slot table names."""
        if not self.is_connected:
            self.host, self.port = await self.owners.owner(self.slot)
        try:
            await super().connect_check_health(*args, **kwargs)
        except _LOST:
            self.owners.stale()
            raise

    def moved(self, reply: BaseException) -> bool:
        """Whether `reply` says the slot is served elsewhere now; if so, the next connect
        reads the slot table again (for the script channel, which reads replies itself)."""
        if not relocated(reply):
            return False
        self.owners.stale()
        return True

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        """redis-py's read; a reply saying the slot is served elsewhere raises
        ConnectionError, and the next connect reads the slot table again."""
        try:
            return await super().read_response(*args, **kwargs)
        except ResponseError as exc:
            if not self.moved(exc):
                raise
            await self.disconnect()
            raise RedisConnectionError(f"slot {self.slot} is served elsewhere: {exc}") from exc
        except _LOST:
            self.owners.stale()
            raise


class SlotConnectionTLS(SlotConnection, SSLConnection):
    """:class:`SlotConnection` over TLS."""


class SlotPool(BlockingConnectionPool):
    """A blocking pool of :class:`SlotConnection`; closing it (its client's ``aclose``) closes
    the slot table's connections too."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.owners: SlotOwners = kwargs["owners"]

    async def disconnect(self, inuse_connections: bool = True) -> None:
        """Close the connections (`inuse_connections`: all, and the slot table's)."""
        await super().disconnect(inuse_connections)
        if inuse_connections:
            await self.owners.aclose()


def async_pool(url: str, home: str, connection_class: Any, settings: dict[str, Any]) -> SlotPool:
    """An asyncio pool of the master serving `home`'s slot in the cluster `url` names, its
    connections `connection_class` (a :class:`SlotConnection` subclass) with `settings`."""
    parsed = parse_cluster_url(url)
    owners = SlotOwners(parsed, settings)
    return SlotPool(
        connection_class=connection_class,
        owners=owners,
        slot=slot_of(home),
        username=parsed.username,
        password=parsed.password,
        **settings,
    )


def connection_class(url: str) -> type[SlotConnection]:
    """The asyncio connection class of the cluster `url` names (TLS or not)."""
    return SlotConnectionTLS if parse_cluster_url(url).tls else SlotConnection


class SyncSlotOwners:
    """:class:`SlotOwners` for the sync client (redis-py's sync ``RedisCluster``), safe from
    any thread."""

    def __init__(self, url: ClusterURL, settings: dict[str, Any]) -> None:
        self._url, self._settings = url, settings
        self._cluster: sync_cluster.RedisCluster | None = None
        self._fresh = self._closed = False
        self._lock = threading.Lock()

    def owner(self, slot: int) -> tuple[str, int]:
        """As :meth:`SlotOwners.owner`."""
        with self._lock:
            if self._closed:
                raise RedisConnectionError("the client is closed")
            try:
                if self._cluster is None:
                    self._cluster = self._connect()
                elif not self._fresh:
                    self._cluster.nodes_manager.initialize()
            except (RedisClusterException, RedisError, OSError) as exc:
                raise RedisConnectionError(f"no node of the cluster answered: {exc}") from exc
            self._fresh = True
            node = self._cluster.nodes_manager.get_node_from_slot(slot)
        return str(node.host), int(node.port)

    def _connect(self) -> sync_cluster.RedisCluster:
        # redis-py leaves the sync ClusterNode untyped
        node = sync_cluster.ClusterNode
        nodes = [node(host, port) for host, port in self._url.nodes]  # type: ignore[no-untyped-call]
        kwargs = _discovery_kwargs(self._url, self._settings)
        return sync_cluster.RedisCluster(startup_nodes=nodes, **kwargs)

    def stale(self) -> None:
        """As :meth:`SlotOwners.stale`."""
        self._fresh = False

    def close(self) -> None:
        """Close the connections the slot table was read over, for good."""
        with self._lock:
            self._closed = True
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None


class SyncSlotConnection(SyncConnection):
    """:class:`SlotConnection` for the sync client."""

    def __init__(self, *, owners: SyncSlotOwners, slot: int, **kwargs: Any) -> None:
        self.owners, self.slot = owners, slot
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]

    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        """As :meth:`SlotConnection.connect_check_health`."""
        if not self.is_connected:
            self.host, self.port = self.owners.owner(self.slot)
        try:
            super().connect_check_health(*args, **kwargs)
        except _LOST:
            self.owners.stale()
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        """As :meth:`SlotConnection.read_response`."""
        try:
            return super().read_response(*args, **kwargs)
        except ResponseError as exc:
            if not relocated(exc):
                raise
            self.owners.stale()
            self.disconnect()  # type: ignore[no-untyped-call]
            raise RedisConnectionError(f"slot {self.slot} is served elsewhere: {exc}") from exc
        except _LOST:
            self.owners.stale()
            raise


class SyncSlotConnectionTLS(SyncSlotConnection, SyncSSLConnection):
    """:class:`SyncSlotConnection` over TLS."""


class SyncSlotPool(SyncBlockingConnectionPool):
    """:class:`SlotPool` for the sync client."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.owners: SyncSlotOwners = kwargs["owners"]

    def disconnect(self, inuse_connections: bool = True) -> None:
        """As :meth:`SlotPool.disconnect`."""
        super().disconnect(inuse_connections)
        if inuse_connections:
            self.owners.close()


def sync_pool(url: str, home: str, settings: dict[str, Any]) -> SyncSlotPool:
    """A sync pool of the master serving `home`'s slot, with `settings`."""
    parsed = parse_cluster_url(url)
    owners = SyncSlotOwners(parsed, settings)
    return SyncSlotPool(
        connection_class=SyncSlotConnectionTLS if parsed.tls else SyncSlotConnection,
        owners=owners,
        slot=slot_of(home),
        username=parsed.username,
        password=parsed.password,
        **settings,
    )
