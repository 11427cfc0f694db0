"""From a URL to a connected redis-py asyncio client, real or embedded.

``redis://`` and ``rediss://`` URLs (ACL user and password, database, TLS) go to redis-py with
hiredis. ``memory://[name]`` is the embedded backend: fakeredis with Lua, one in-process server
per name, so a Client and a Worker in one process given the same URL share it. It cannot block on
XREADGROUP (BLOCK returns at once), which :attr:`Backend.can_block` tells the worker. fakeredis
(and Lua with it) is imported on the first use of a ``memory://`` URL, so a process that talks to
a real Redis never loads it (docs/architecture.md, "The embedded backend").
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AskError,
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import cluster
from .connclasses import guarded
from .errors import ConnectionFailed, NotReplicated, RedisJobsError
from .keys import CLUSTER_REGISTRY, GROUP, REGISTRY, QueueKeys, Registry
from .sentinel import async_pool, connection_class, is_sentinel_url
from .serverfacts import risks

if TYPE_CHECKING:
    import fakeredis

log = logging.getLogger("redisjobs")

DEFAULT_URL = "memory://"
# A refused connection fails at once; an unreachable host costs CONNECT_TIMEOUT, and a refused
# or reset connection is retried once (a stale pooled socket), so either fails within 2 s.
CONNECT_TIMEOUT = 0.9
COMMAND_TIMEOUT = 3.0
"""Seconds a command connection waits for a reply before it gives up (redis-py's socket_timeout).

Nothing in the kernel can tell a Redis that accepts connections but never answers (SIGSTOPped,
wedged, or a port that is not Redis at all): its kernel keeps acknowledging, so neither TCP
keepalive nor TCP_USER_TIMEOUT ever fires, and without a deadline every call would hang. Every
command of redisjobs is a few ms of Redis time (scripts work in bounded batches), and a healthy
but loaded Redis (a fork for a snapshot, a slow fsync) stalls for well under a second; 3 s stays
clear of those and keeps a producer's error within a few seconds. A timeout is not retried: the
command may have run, and a frozen Redis would only cost the same wait again.
"""
COMMAND_RETRIES = 1  # after a lost connection (a stale pooled socket), never after a timeout
# Keepalive probes find a peer that vanished while a pooled connection was idle, so the next
# command reconnects at once instead of waiting out COMMAND_TIMEOUT; TCP_USER_TIMEOUT aborts a
# connection whose sent data stays unacknowledged (a cut-off network).
DEAD_PEER_SECONDS = 10
MAX_CONNECTIONS = 64
_KEEPALIVE = {
    name: value
    for name, value in (
        ("TCP_KEEPIDLE", 5),
        ("TCP_KEEPINTVL", 2),
        ("TCP_KEEPCNT", 3),
        ("TCP_USER_TIMEOUT", DEAD_PEER_SECONDS * 1000),
    )
    if hasattr(socket, name)
}

_servers: dict[str, fakeredis.FakeServer] = {}
# Embedded backend only: workers in this process that want an immediate wake-up when a job
# becomes ready, since fakeredis cannot block on XREADGROUP.
_wakers: dict[tuple[str, str], set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}


def resolve_url(url: str | None, *, warn_private: bool = False) -> str:
    """The URL to use: `url`, else ``$REDIS_URL``, else the embedded ``memory://``.

    Args:
        url: the URL a caller gave, if any.
        warn_private: log a warning (once per process) when neither is set: the private store
            that ``memory://`` names is reachable by no other process, so a producer or worker
            that meant to share a Redis would otherwise wait forever without a word.
    """
    given = url or os.environ.get("REDIS_URL")
    if given:
        return given
    if warn_private:
        _warn_private_store()
    return DEFAULT_URL


@functools.cache
def _warn_private_store() -> None:
    log.warning(
        "no Redis URL given and REDIS_URL is not set: using memory://, an in-memory store "
        "private to this process (no other process sees its jobs); pass a redis:// URL or set "
        "REDIS_URL, or pass memory:// explicitly when a private store is what you want"
    )


def mask_url(url: str) -> str:
    """`url` with its password replaced by ``***`` (for errors and logs)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


@dataclass(frozen=True, slots=True)
class Backend:
    """Where jobs live: a URL plus what that kind of server can do."""

    url: str

    @property
    def embedded(self) -> bool:
        """True for the in-process fakeredis backend."""
        return self.url.startswith("memory://")

    @property
    def sentinel(self) -> bool:
        """True for a ``redis+sentinel://`` URL: the master is wherever the sentinels say."""
        return is_sentinel_url(self.url)

    @property
    def cluster(self) -> bool:
        """True for a ``redis+cluster://`` URL: each queue lives on the master of its slot."""
        return cluster.is_cluster_url(self.url)

    @property
    def registry(self) -> Registry:
        """The keys outside any queue (the queue list, the worker registry): on a cluster they
        share a hash tag of their own, so that they live together on one master."""
        return CLUSTER_REGISTRY if self.cluster else REGISTRY

    @property
    def can_block(self) -> bool:
        """Whether XREADGROUP BLOCK really blocks (fakeredis returns at once)."""
        return not self.embedded

    @property
    def masked(self) -> str:
        """The URL with the password masked."""
        return mask_url(self.url)

    def client(
        self,
        *,
        socket_timeout: float = COMMAND_TIMEOUT,
        retries: int = COMMAND_RETRIES,
        home: str | None = None,
    ) -> Redis:
        """A new redis-py client for this backend (bytes in, bytes out).

        Args:
            socket_timeout: the read timeout of every reply (a blocking reader passes one
                above its BLOCK).
            retries: retries of a command after a connection error (never after a timeout).
            home: on a cluster, a key whose slot's master the client talks to (a queue's
                prefix; by default the registry's); ignored elsewhere.
        """
        if self.embedded:
            import fakeredis  # here, not at the top: see embedded_server

            fake = fakeredis.FakeAsyncRedis(server=embedded_server(self.url))
            pool = fake.connection_pool
            pool.connection_class = guarded(pool.connection_class)
            return cast(Redis, fake)
        settings = {**pool_settings(socket_timeout), "retry": Retry(*retry_settings(retries))}
        if self.sentinel:
            conn = guarded(connection_class(self.url), packing=True)
            return Redis.from_pool(async_pool(self.url, conn, settings))
        if self.cluster:
            conn = guarded(cluster.connection_class(self.url), packing=True)
            where = home or self.registry.queues
            return Redis.from_pool(cluster.async_pool(self.url, where, conn, settings))
        pool = BlockingConnectionPool.from_url(self.url, **settings)
        pool.connection_class = guarded(pool.connection_class, packing=True)
        return Redis.from_pool(pool)

    def add_waker(self, queue: str, event: asyncio.Event) -> None:
        """Set `event` whenever a job of `queue` becomes ready in this process (embedded only)."""
        _wakers.setdefault((self.url, queue), set()).add((asyncio.get_running_loop(), event))

    def remove_waker(self, queue: str, event: asyncio.Event) -> None:
        """Undo :meth:`add_waker`."""
        entries = _wakers.get((self.url, queue), set())
        for entry in [e for e in entries if e[1] is event]:
            entries.discard(entry)

    def wake(self, queue: str) -> None:
        """Wake this process's workers of `queue` (a no-op on a real Redis, where they block).

        Safe from any thread (a sync client's): it walks a copy, as workers come and go."""
        for loop, event in tuple(_wakers.get((self.url, queue), ())):
            loop.call_soon_threadsafe(event.set)

    def error(self, exc: BaseException) -> ConnectionFailed:
        """A ConnectionFailed that names this backend's URL (password masked)."""
        return ConnectionFailed(f"cannot reach Redis at {self.masked}: {exc}")

    def reaching(self) -> Reaching:
        """A context that raises a lost connection or a reply that never came inside it as
        :meth:`error` (ConnectionFailed, naming the URL); other errors pass unchanged."""
        return Reaching(self)


class Reaching:
    """:meth:`Backend.reaching`'s context: a class, not a generator, as it wraps every call of a
    client (a generator's context costs several times as much)."""

    __slots__ = ("_backend",)

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def __enter__(self) -> None:
        return None

    def __exit__(self, _kind: object, exc: BaseException | None, _tb: object) -> None:
        if exc is None or isinstance(exc, RedisJobsError):
            return  # ours already say what happened (WaitTimeout is an OSError too)
        if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
            raise self._backend.error(exc) from exc


def pool_settings(socket_timeout: float) -> dict[str, Any]:
    """The pool settings of every client of a real Redis, asyncio or sync: the timeouts, the
    keepalive, and a blocking pool (callers beyond MAX_CONNECTIONS wait for a free connection
    rather than fail: redis-py's default pool raises "Too many connections" at 100)."""
    return {
        "max_connections": MAX_CONNECTIONS,
        "timeout": None,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": socket_timeout,
        "socket_keepalive": True,
        "socket_keepalive_options": {getattr(socket, k): v for k, v in _KEEPALIVE.items()},
        "health_check_interval": 0,
    }


def retry_settings(retries: int) -> tuple[ExponentialBackoff, int, tuple[type[RedisError], ...]]:
    """redis-py's Retry arguments (asyncio or sync): retry after a lost connection only."""
    return ExponentialBackoff(cap=0.5, base=0.05), retries, (RedisConnectionError,)


def embedded_server(url: str) -> fakeredis.FakeServer:
    """The in-process server `url` names (created on first use), shared by every client of it,
    asyncio or sync, in this process.

    fakeredis and Lua are imported here rather than at the top: they cost a producer of a real
    Redis import time and memory for nothing.
    """
    import fakeredis

    name = urlsplit(url).netloc or "default"
    server = _servers.get(name)
    if server is None:
        # setdefault: two threads making the first client of a name get the same server
        server = _servers.setdefault(name, fakeredis.FakeServer(version=(7,)))
    return server


# Replies that say "not here, not now" rather than "never": the server is loading, was demoted to
# a replica by a failover (which also ends blocked reads with UNBLOCKED), or a cluster is moving
# slots. A loop retries them (after a reconnect, which finds the new master) instead of giving up.
_TRANSIENT_REPLIES = frozenset(
    (
        "READONLY",
        "UNBLOCKED",
        "MOVED",
        "ASK",
        "CLUSTERDOWN",
        "TRYAGAIN",
        "MASTERDOWN",
        "LOADING",
        "OOM",
    )
)

# redis-py's own classes for some of them (a MovedError's text no longer starts with MOVED, an
# OutOfMemoryError's with OOM).
_TRANSIENT_TYPES = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ReadOnlyError,
    AskError,
    ClusterDownError,
    TryAgainError,
    OutOfMemoryError,
    NotReplicated,
)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying what raised `exc` may succeed: lost connections, timeouts, the
    replies of a Redis that is failing over, loading, moving slots or out of memory, and a
    durable write its replicas did not confirm in time.

    Any other error reply (WRONGTYPE, a script error) is permanent: the same call fails again.
    """
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if isinstance(exc, ResponseError):
        return str(exc).split(" ", 1)[0] in _TRANSIENT_REPLIES
    return False


class Backoff:
    """Jittered exponential backoff for loops that must outlive Redis outages.

    Workers retry forever (0.1 s doubling to 5 s, each sleep spread ±50 % so a restarted fleet
    does not reconnect in lock-step) and log one warning per outage, not one per attempt. A
    single failure that the next try mends (a reset connection, a lost reply) is a blip, logged
    at INFO: workers do not retry inside redis-py (a re-sent call must be their own decision),
    so every loop sees each reset, and a warning per loop per reset would be noise.

    Args:
        what: names the loop in the log lines.
        logger: where the warning goes.
    """

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self.what = what
        self._log = logger
        self._delay = 0.0
        self.failures = 0

    def record(self, exc: BaseException) -> None:
        """Count a failure (warns on the second in a row) without sleeping."""
        if self.failures == 0:
            self._log.info("%s: Redis call failed (%s); retrying", self.what, exc)
        elif self.failures == 1:
            self._log.warning("%s: Redis unavailable (%s); retrying", self.what, exc)
        self.failures += 1

    async def failed(self, exc: BaseException) -> None:
        """Record a failure and sleep before the next try."""
        await asyncio.sleep(self.pause(exc))

    def pause(self, exc: BaseException) -> float:
        """Record a failure; returns the seconds to sleep before the next try (for a thread)."""
        self.record(exc)
        self._delay = min(max(self._delay * 2, 0.1), 5.0)
        return self._delay * random.uniform(0.5, 1.5)

    def ok(self) -> None:
        """Record a success (logs the recovery after an outage)."""
        if self.failures:
            self._log.info("%s: Redis is back after %d failed tries", self.what, self.failures)
        self.failures = 0
        self._delay = 0.0


async def ensure_group(redis: Redis, keys: QueueKeys) -> None:
    """Create the queue's streams and their consumer groups unless they exist.

    `ready`'s from id 0, so jobs enqueued before any worker existed are served too; `carry`'s
    from its end, since every entry of it is read by the `start` call that adds it.
    """
    for stream, start in ((keys.ready, "0"), (keys.carry, "$")):
        try:
            await redis.xgroup_create(stream, GROUP, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


async def check_server(redis: Redis, logger: logging.Logger) -> None:
    """Warn about Redis settings that lose jobs (docs/architecture.md, "Connections")."""
    try:
        conf = await redis.config_get("maxmemory-policy")
        aof = await redis.config_get("appendonly")
    except RedisError:
        return  # CONFIG may be renamed or forbidden by ACL; the checks are advice only
    # redis-py decodes CONFIG GET replies to str whatever decode_responses says
    policy = conf.get("maxmemory-policy") or "noeviction"
    for risk in risks(policy, appendonly=aof.get("appendonly") != "no"):
        logger.warning("Redis %s", risk)
