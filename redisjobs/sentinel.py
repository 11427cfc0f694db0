"""Redis Sentinel: ``redis+sentinel://`` URLs, and pools whose connections follow the master.

A URL names the sentinels, not the master::

    redis+sentinel://[user:password@]host:26379[,host:26379...]/service_name[/db]
    rediss+sentinel://...                     (TLS to the master)
    ...?sentinel_password=...&sentinel_username=...   (when the sentinels ask for AUTH too)

The user and password are the master's. Each new connection asks the sentinels where the master
of `service_name` is (redis-py's ``SentinelManagedConnection``), so after a failover the next
connection finds the new one. A connection still open to the old master learns of its demotion
from the first reply the old master gives it (``READONLY`` to a write, ``UNBLOCKED`` to a
blocked read): that reply becomes a lost connection (redis-py's ConnectionError), which every
caller already treats as "reconnect and try again", and the reconnect asks the sentinels anew.
redis-py does this for ``READONLY``; :class:`FollowMaster` does it for ``UNBLOCKED`` too, which
the oldest redis-py we support does not. The pools keep redisjobs' pool settings: hiredis command
packing and waiting for a free connection (``BlockingConnectionPool``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import redis.sentinel as sync_sentinel
from redis.asyncio import sentinel as async_sentinel
from redis.asyncio.connection import BlockingConnectionPool
from redis.connection import BlockingConnectionPool as SyncBlockingConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError

from .addresses import parse_address
from .masterwatch import MasterWatch, WatchTask, WatchThread, close_sentinels

SCHEMES = ("redis+sentinel://", "rediss+sentinel://")
DEFAULT_PORT = 26379
SENTINEL_TIMEOUT = 1.0
"""Seconds a sentinel has to answer where the master is (it answers from memory at once); a
sentinel that does not is skipped for the next one."""
_QUERY = ("sentinel_username", "sentinel_password")


def is_sentinel_url(url: str) -> bool:
    """Whether `url` names sentinels (``redis+sentinel://`` or ``rediss+sentinel://``)."""
    return url.startswith(SCHEMES)


@dataclass(frozen=True, slots=True)
class SentinelURL:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    sentinel_username: str | None = None
    sentinel_password: str | None = None

    def master_kwargs(self) -> dict[str, Any]:
        """The connection settings of the master's connections, from the URL."""
        return {"db": self.db, "username": self.username, "password": self.password}

    def sentinel_kwargs(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The connection settings of the sentinels' clients: `settings`' keepalive, a short
        timeout, and the sentinels' own credentials."""
        kwargs = {k: v for k, v in settings.items() if k.startswith("socket_keepalive")}
        kwargs.update(socket_connect_timeout=SENTINEL_TIMEOUT, socket_timeout=SENTINEL_TIMEOUT)
        if self.sentinel_password is not None:
            kwargs.update(username=self.sentinel_username, password=self.sentinel_password)
        return kwargs


def parse_sentinel_url(url: str) -> SentinelURL:
    """Parse a ``redis+sentinel://`` URL.

    Raises:
        ValueError: it is not one, or names no sentinel, no service, a bad port or db, or a
            query option other than ``sentinel_username`` and ``sentinel_password``.
    """
    if not is_sentinel_url(url):
        raise ValueError(f"not a redis+sentinel:// URL: {url!r}")
    scheme, rest = url.split("://", 1)
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError("a sentinel URL names its service: ...host:26379/service_name[/db]")
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - set(_QUERY))
    if unknown:
        raise ValueError(f"unknown sentinel URL option(s) {unknown}; known: {list(_QUERY)}")
    return SentinelURL(
        sentinels=tuple(parse_address(h, DEFAULT_PORT, "sentinel") for h in hosts.split(",")),
        service=unquote(parts[0]),
        db=_db(parts[1] if len(parts) > 1 else "0", url),
        username=unquote(username) or None,
        password=unquote(password) if userinfo and ":" in userinfo else None,
        tls=scheme == "rediss+sentinel",
        sentinel_username=options.get("sentinel_username"),
        sentinel_password=options.get("sentinel_password"),
    )


def _db(text: str, url: str) -> int:
    if not text.isdigit():
        raise ValueError(f"bad database {text!r}: want a number")
    return int(text)


def demoted(reply: BaseException) -> bool:
    """Whether an error reply says the node is no longer the master: ``READONLY`` to a write,
    ``UNBLOCKED`` to a blocked read (a failover demoted it)."""
    return isinstance(reply, ReadOnlyError) or (
        isinstance(reply, ResponseError) and str(reply).startswith("UNBLOCKED")
    )


class FollowMaster(async_sentinel.SentinelManagedConnection):
    """A master's connection that turns a reply saying the node was demoted into a lost
    connection, so that the caller's reconnect asks the sentinels where the master went."""

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        """redis-py's read; a reply saying the node was demoted raises ConnectionError."""
        try:
            return await super().read_response(*args, **kwargs)
        except ResponseError as exc:
            if not demoted(exc):
                raise
            await self.disconnect()
            raise RedisConnectionError(f"the master was demoted by a failover: {exc}") from exc


class FollowMasterTLS(FollowMaster, async_sentinel.SentinelManagedSSLConnection):
    """:class:`FollowMaster` over TLS."""


class SentinelPool(async_sentinel.SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's sentinel pool with the blocking pool's wait for a free connection, whose
    connections are all closed when the master moves (:mod:`redisjobs.masterwatch`); closing
    it (its client's ``aclose``) closes the sentinels' clients too."""

    def __init__(self, service_name: str, sentinel_manager: Any, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        known = functools.partial(getattr, self, "master_address")
        self._watch = WatchTask(MasterWatch(sentinel_manager, service_name, known, self._moved))
        self._closed = False

    async def get_master_address(self) -> Any:
        """redis-py's ask of the sentinels, refused once the pool is closed: a task still
        running as its client closes must not open connections to the sentinels that nobody
        would close."""
        if self._closed:
            raise RedisConnectionError("the client is closed")
        return await super().get_master_address()  # type: ignore[no-untyped-call]

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """A connection (waiting for a free one), once the watch of the master runs; refused
        once the pool is closed (a watch started then would outlive it)."""
        if self._closed:
            raise RedisConnectionError("the client is closed")
        self._watch.ensure()
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]

    async def _moved(self, address: tuple[str, int]) -> None:
        self.master_address = address
        await super().disconnect(inuse_connections=True)

    async def disconnect(self, inuse_connections: bool = True) -> None:
        """Close the connections (`inuse_connections`: all, the watch and the sentinels'
        clients too: the pool's close)."""
        if inuse_connections:  # a full close, not the master's move (which keeps in-use ones)
            self._closed = True
            await self._watch.stop()
        await super().disconnect(inuse_connections)
        if inuse_connections:
            await close_sentinels(self.sentinel_manager)


class SyncSentinelPool(sync_sentinel.SentinelConnectionPool, SyncBlockingConnectionPool):
    """:class:`SentinelPool` for redis-py's sync client (redis-py turns ``READONLY`` into a
    lost connection there; a sync client never blocks on a read). Its watch runs in a thread
    with its own clients of the sentinels."""

    def __init__(self, url: SentinelURL, sentinel_manager: Any, **kwargs: Any) -> None:
        super().__init__(url.service, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self._watch = WatchThread(functools.partial(self._watcher, url, kwargs))
        self._closed = False

    def get_master_address(self) -> Any:
        """As :meth:`SentinelPool.get_master_address`."""
        if self._closed:
            raise RedisConnectionError("the client is closed")
        return super().get_master_address()  # type: ignore[no-untyped-call]

    def _watcher(self, url: SentinelURL, settings: dict[str, Any]) -> MasterWatch:
        manager = _sentinels(async_sentinel.Sentinel, url, settings)
        known = functools.partial(getattr, self, "master_address")
        return MasterWatch(manager, url.service, known, self._moved)

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """As :meth:`SentinelPool.get_connection`."""
        if self._closed:
            raise RedisConnectionError("the client is closed")
        self._watch.ensure()
        return super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]

    async def _moved(self, address: tuple[str, int]) -> None:
        self.proxy.master_address = address
        super().disconnect(inuse_connections=True)

    def disconnect(self, inuse_connections: bool = True) -> None:
        """As :meth:`SentinelPool.disconnect`."""
        if inuse_connections:
            self._closed = True
            self._watch.stop()
        super().disconnect(inuse_connections)
        if inuse_connections:
            for client in self.sentinel_manager.sentinels:
                client.close()


def async_pool(url: str, connection_class: Any, settings: dict[str, Any]) -> SentinelPool:
    """An asyncio pool of the master `url` names, its connections `connection_class` (a
    :class:`FollowMaster` subclass) with `settings`."""
    parsed = parse_sentinel_url(url)
    manager = _sentinels(async_sentinel.Sentinel, parsed, settings)
    return SentinelPool(
        parsed.service,
        manager,
        connection_class=connection_class,
        **parsed.master_kwargs(),
        **settings,
    )


def sync_pool(url: str, settings: dict[str, Any]) -> SyncSentinelPool:
    """A sync pool of the master `url` names, with `settings` (parser, packer, timeouts)."""
    parsed = parse_sentinel_url(url)
    manager = _sentinels(sync_sentinel.Sentinel, parsed, settings)
    cls = (
        sync_sentinel.SentinelManagedSSLConnection
        if parsed.tls
        else sync_sentinel.SentinelManagedConnection
    )
    return SyncSentinelPool(
        parsed, manager, connection_class=cls, **parsed.master_kwargs(), **settings
    )


def _sentinels(cls: Any, url: SentinelURL, settings: dict[str, Any]) -> Any:
    """The clients of `url`'s sentinels (`cls`: redis-py's asyncio or sync ``Sentinel``, whose
    constructor the oldest redis-py we support leaves untyped)."""
    return cls(url.sentinels, sentinel_kwargs=url.sentinel_kwargs(settings))


def connection_class(url: str) -> type[FollowMaster]:
    """The asyncio connection class of the master `url` names (TLS or not)."""
    return FollowMasterTLS if parse_sentinel_url(url).tls else FollowMaster
