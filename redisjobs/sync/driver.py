"""The sync client's I/O: a redis-py sync client of a backend, its scripts, and the flow driver.

The connection settings (timeouts, keepalive, the blocking pool, retries) are those of
:meth:`redisjobs.connection.Backend.client`, from the same functions; the commands are those of
the flows (:mod:`redisjobs.roundtrips`) the async client drives too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import redis
from redis._parsers import _HiredisParser
from redis.connection import BlockingConnectionPool
from redis.exceptions import ResponseError
from redis.retry import Retry

from .. import cluster
from ..connclasses import HiredisPack
from ..connection import (
    COMMAND_RETRIES,
    COMMAND_TIMEOUT,
    Backend,
    embedded_server,
    pool_settings,
    retry_settings,
)
from ..durability import Durability
from ..roundtrips import (
    Command,
    Flow,
    Received,
    ScriptCall,
    Step,
    Stepper,
    SyncRouted,
    answerer,
    checked,
)
from ..scriptcall import SyncCaller, call_embedded_sync
from ..scripts import NAMES, functions
from ..scripts.library import library
from ..sentinel import sync_pool

if TYPE_CHECKING:
    from ..homes import SyncHomes

_T = TypeVar("_T")


def connect(backend: Backend, home: str | None = None) -> redis.Redis:
    """A new sync redis-py client of `backend` (bytes in, bytes out); connects on first use.

    On a real Redis: a blocking pool of hiredis-parsed connections with the asyncio client's
    settings. On ``memory://``: a client of the same in-process server as every asyncio client
    of that URL in this process. On a cluster: the master of `home`'s slot (by default the
    registry's).
    """
    if backend.embedded:
        import fakeredis

        return cast(redis.Redis, fakeredis.FakeRedis(server=embedded_server(backend.url)))
    settings = {
        **pool_settings(COMMAND_TIMEOUT),
        "retry": Retry(*retry_settings(COMMAND_RETRIES)),
        "parser_class": _HiredisParser,
        "command_packer": HiredisPack(),
    }
    if backend.sentinel:
        return redis.Redis.from_pool(sync_pool(backend.url, settings))
    if backend.cluster:
        where = home or backend.registry.queues
        return redis.Redis.from_pool(cluster.sync_pool(backend.url, where, settings))
    pool = BlockingConnectionPool.from_url(backend.url, **settings)
    return redis.Redis.from_pool(pool)  # closing the client closes its pool


class Scripts:
    """The transitions called on one sync client (the library of :mod:`redisjobs.scripts`,
    loaded when Redis lacks it), with the arguments the flows build.

    Args:
        client: the client they run on.
        embedded: True on the fakeredis backend.
        durable: the replicas that must confirm every call before it returns.
    """

    def __init__(
        self, client: redis.Redis, *, embedded: bool, durable: Durability | None = None
    ) -> None:
        self._client = client
        # On a cluster, each call goes to its queue's home (redisjobs.homes)
        self._homes = client.homes if isinstance(client, SyncRouted) else None
        self._fns = functions(library(NAMES, sharded=self._homes is not None))
        # On a real Redis, the calls take the fast path of redisjobs.scriptcall
        self._caller = None if embedded else SyncCaller(client)
        self._durable = durable

    def call(self, step: ScriptCall) -> Any:
        """Run one script call of a flow; returns its raw reply."""
        fn = self._fns[step.name]
        if step.meanwhile is not None:  # nothing to overlap it with: one thread waits
            step.meanwhile()
        caller = self._caller if self._homes is None else self._homes.caller(step.keys.prefix)
        if caller is not None:
            return caller(fn, (step.keys.prefix,), step.args, self._durable)
        return call_embedded_sync(self._client, fn, (step.keys.prefix,), step.args)


def run(
    client: redis.Redis,
    flow: Flow[_T],
    scripts: Scripts | None = None,
    receive: Callable[[], Received] | None = None,
) -> _T:
    """Drive `flow` on a sync client until it returns (see :func:`redisjobs.roundtrips.run`)."""
    at = Stepper(flow)
    while not at.done:
        at.settle(*_settled(lambda: _round_trip(client, at.step, scripts, receive)))
    return at.value  # type: ignore[return-value]


def _settled(call: Callable[[], Any]) -> tuple[Any, Exception | None]:
    try:
        return call(), None
    except Exception as exc:  # the flow may mend it; if not, it comes back out of `settle`
        return None, exc


def _round_trip(
    client: redis.Redis, step: Step, scripts: Scripts | None, receive: Callable[[], Received] | None
) -> Any:
    answer = answerer(step, scripts, receive)
    if answer is not None:
        return answer()
    assert isinstance(step, list)
    if isinstance(client, SyncRouted) and step:
        return _routed(client.homes, step)
    if len(step) <= 1:  # no pipeline object for one command (or none): the common case
        return [_one(client, c) for c in step]
    with client.pipeline(transaction=False) as pipe:
        for c in step:
            c.on(pipe)
        return checked(step, pipe.execute(raise_on_error=False))


def _routed(homes: SyncHomes, step: list[Command]) -> list[Any]:
    """`step` on a cluster: one pipeline per home; the replies in `step`'s order."""
    replies: list[Any] = [None] * len(step)
    for client, at in homes.split([c.key for c in step]):
        part = _round_trip(client, [step[i] for i in at], None, None)
        for i, reply in zip(at, part, strict=True):
            replies[i] = reply
    return replies


def _one(client: redis.Redis, c: Command) -> Any:
    try:
        return c.on(client)
    except ResponseError as exc:
        if c.tolerant:
            return exc
        raise
