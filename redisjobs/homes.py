"""A client's connections to a Redis Cluster, one set per slot its queues live in.

A queue's keys share its hash tag, so the queue lives in one slot, served by one master: its
*home*. A Client or a worker of a cluster talks to each home through an ordinary client whose
pool follows that slot (:mod:`redisjobs.cluster`), made when the queue is first used, and to the
registry (the queue list, the worker registry) through one of its own. A script call goes to
the home of its queue (:meth:`redisjobs.scripts.Scripts.call`), a pipeline of a flow is split by
home (:func:`redisjobs.roundtrips.run`), and a followed log is read at its home. On a single Redis
there are no homes: one client serves every queue, and nothing here runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import redis as sync_redis
from redis.asyncio import Redis
from redis.exceptions import RedisError

from .cluster import slot_of
from .roundtrips import Routed, SyncRouted
from .scriptcall import AsyncCaller, SyncCaller

if TYPE_CHECKING:
    from .connection import Backend
    from .eventlog import EventLog

_V = TypeVar("_V")
_C = TypeVar("_C")


class ByHome(Generic[_V]):
    """Values made per slot at first use: ``by_home(key)`` is the value of `key`'s slot."""

    def __init__(self, make: Callable[[str], _V]) -> None:
        self._make = make
        self._made: dict[int, _V] = {}
        self._lock = threading.Lock()  # a sync client's threads may ask at once

    def __call__(self, key: str) -> _V:
        """The value of `key`'s slot (made now if it is the first ask)."""
        slot = slot_of(key)
        value = self._made.get(slot)
        if value is None:
            with self._lock:
                value = self._made.get(slot)
                if value is None:
                    value = self._made[slot] = self._make(key)
        return value

    def take(self) -> list[_V]:
        """Every value made, forgotten here (to close them)."""
        with self._lock:
            values, self._made = list(self._made.values()), {}
        return values


def split(
    keys: list[str | None], client: Callable[[str], _C], default: str
) -> list[tuple[_C, list[int]]]:
    """The positions of `keys` grouped by home, each group with its home's client (a key of
    None, a command of no key, goes with the first key's group, or to `default`'s home)."""
    first = next((k for k in keys if k is not None), default)
    groups: dict[int, tuple[_C, list[int]]] = {}
    for i, key in enumerate(keys):
        key = key if key is not None else first
        slot = slot_of(key)
        group = groups.get(slot)
        if group is None:
            group = groups[slot] = (client(key), [])
        group[1].append(i)
    return list(groups.values())


class Homes:
    """An asyncio client's homes in a cluster, made at first use and closed together.

    Args:
        backend: a ``redis+cluster://`` backend.
        settings: the clients' settings (:meth:`~redisjobs.connection.Backend.client`'s
            `socket_timeout` and `retries`).
    """

    def __init__(self, backend: Backend, **settings: Any) -> None:
        self.backend = backend
        self.redis: ByHome[Redis] = ByHome(lambda key: backend.client(home=key, **settings))
        """The client of the master serving a key's slot (a queue's prefix: its home)."""
        self.routed: ByHome[Routed] = ByHome(self._routed)
        """A home's client (the same pool as :attr:`redis`'s) on which a flow sends each
        command to its own key's home and each script call to its queue's."""
        self.caller: ByHome[AsyncCaller] = ByHome(lambda key: AsyncCaller(self.redis(key)))
        """A home's script caller (one channel a home)."""
        self.events: ByHome[EventLog] = ByHome(self._events)
        """The event logs followed at a home."""

    def _routed(self, key: str) -> Routed:
        client = Routed(connection_pool=self.redis(key).connection_pool)
        client.homes = self
        return client

    def _events(self, key: str) -> EventLog:
        from .eventlog import EventLog  # here: the event log's module needs this one's users

        return EventLog(self.backend, self.redis(key), home=key)

    def split(self, keys: list[str | None]) -> list[tuple[Redis, list[int]]]:
        """:func:`split` on this client's homes."""
        return split(keys, self.redis, self.backend.registry.queues)

    async def aclose(self) -> None:
        """Close every home's event logs and clients."""
        self.routed.take()
        self.caller.take()  # their channels are connections of the clients' pools
        for log in self.events.take():
            await log.aclose()
        with contextlib.suppress(RedisError, OSError):
            await asyncio.gather(*(client.aclose() for client in self.redis.take()))


class SyncHomes:
    """:class:`Homes` for the sync client (no event logs: its listener's readers connect to
    their own homes)."""

    def __init__(self, backend: Backend) -> None:
        from .sync.driver import connect  # the sync driver imports the flows that import this

        self.backend = backend
        self.redis: ByHome[sync_redis.Redis] = ByHome(lambda key: connect(backend, home=key))
        self.routed: ByHome[SyncRouted] = ByHome(self._routed)
        self.caller: ByHome[SyncCaller] = ByHome(lambda key: SyncCaller(self.redis(key)))

    def _routed(self, key: str) -> SyncRouted:
        client = SyncRouted(connection_pool=self.redis(key).connection_pool)
        client.homes = self
        return client

    def split(self, keys: list[str | None]) -> list[tuple[sync_redis.Redis, list[int]]]:
        """:func:`split` on this client's homes."""
        return split(keys, self.redis, self.backend.registry.queues)

    def close(self) -> None:
        """Close every home's clients."""
        self.routed.take()
        self.caller.take()
        for client in self.redis.take():
            with contextlib.suppress(RedisError, OSError):
                client.close()
