"""The reading half of a Client: its connection, and every read of a queue as a method.

:class:`~redisjobs.Client` extends :class:`QueueGetters` with the calls that change jobs. Each
method here delegates to one function of :mod:`redisjobs.queries` (the nodes: of
:mod:`redisjobs.nodes`), which pipelines its round trips; code outside the core reads Redis
through these methods alone.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from redis.asyncio import Redis

from . import queries
from .connection import Backend, resolve_url
from .durability import Durability
from .eventlog import EventLog
from .events import Event
from .flowview import find_job_with_dependents_flow, get_job_flow
from .history import HISTORY_MINUTES, Note, history_flow
from .homes import Homes
from .job import Job, JobStatus
from .keys import QueueKeys, QueueNames, Registry, check_job_id
from .listing import JobPage, list_jobs
from .nodes import NodeInfo, list_nodes
from .queries import History, QueueCounts
from .roundtrips import run
from .scripts import Scripts
from .serverfacts import ServerFacts, server_facts
from .workerinfo import WorkerInfo, list_workers_flow

_P = ParamSpec("_P")
_R = TypeVar("_R")
_C = TypeVar("_C", bound="QueueGetters")


def reaching(
    method: Callable[Concatenate[_C, _P], Awaitable[_R]],
) -> Callable[Concatenate[_C, _P], Coroutine[Any, Any, _R]]:
    """A Client method that raises ConnectionFailed (naming the URL) when Redis is lost, refuses
    or does not answer within the command timeout, rather than redis-py's own errors."""

    @functools.wraps(method)
    async def call(self: _C, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self.backend.reaching():
            return await method(self, *args, **kwargs)

    return call


class QueueGetters(QueueNames):
    """A connection to one Redis (or the embedded backend) and the reads of its queues.

    Args:
        url: as for :class:`~redisjobs.Client`.
        queue: the queue used when a call names none.
        partitions: as for :class:`~redisjobs.Client`.
    """

    durable: Durability | None = None
    """The replicas that must confirm each script call (a durable Client's)."""

    def __init__(
        self, url: str | None, queue: str, partitions: int | Mapping[str, int] = 1
    ) -> None:
        # Without a URL anywhere: a store private to this process, said once (see resolve_url).
        super().__init__(queue, partitions)
        self.backend = Backend(resolve_url(url, warn_private=True))
        self._redis: Redis | None = None
        self._scripts: Scripts | None = None
        self._events: EventLog | None = None
        self._homes: Homes | None = None  # a cluster's

    # -- lifecycle ------------------------------------------------------------------------------

    async def connect(self) -> Self:
        """Connect and check Redis answers (fails fast, naming the URL)."""
        if self._redis is not None:
            return self
        homes = Homes(self.backend) if self.backend.cluster else None
        redis = self.backend.client() if homes is None else homes.routed(self.registry.queues)
        try:
            with self.backend.reaching():
                await redis.ping()
        except BaseException:
            await (redis.aclose() if homes is None else homes.aclose())
            raise
        self._redis, self._homes = redis, homes
        self._scripts = Scripts(redis, embedded=self.backend.embedded, durable=self.durable)
        self._events = EventLog(self.backend, redis)
        return self

    async def aclose(self) -> None:
        """Close the connections."""
        if self._events is not None:
            await self._events.aclose()
        if self._homes is not None:
            await self._homes.aclose()
        elif self._redis is not None:
            await self._redis.aclose()
        self._redis = self._scripts = self._events = self._homes = None

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def redis(self) -> Redis:
        """The underlying redis-py client (connect first). On a Redis Cluster: the client of
        the master serving the registry, to which a direct command goes whatever its key."""
        if self._redis is None:
            raise RuntimeError("Client is not connected: use `async with` or `await connect()`")
        return self._redis

    @property
    def registry(self) -> Registry:
        """The keys outside any queue on this backend."""
        return self.backend.registry

    async def _conn(self, keys: QueueKeys | None = None) -> tuple[Redis, Scripts]:
        """The client and scripts to use (for `keys`' queue: on a cluster, its home's)."""
        if self._scripts is None:
            await self.connect()
        assert self._redis is not None and self._scripts is not None
        if keys is None or self._homes is None:
            return self._redis, self._scripts
        return self._homes.routed(keys.prefix), self._scripts

    def _log(self, keys: QueueKeys) -> EventLog:
        """The event logs `keys`' queue is followed through (on a cluster, its home's)."""
        assert self._events is not None
        return self._events if self._homes is None else self._homes.events(keys.prefix)

    async def _names(self, queues: Sequence[str] | None) -> list[str]:
        return list(queues) if queues is not None else await self.queues()

    # -- jobs -----------------------------------------------------------------------------------

    @reaching
    async def get(self, job_id: str, *, queue: str | None = None) -> Job | None:
        """The job's current state, or None when it does not exist (or has expired), with the
        jobs waiting for it (:attr:`Job.dependents`) when it has any."""
        keys = self._job_keys(job_id, queue)
        redis, _ = await self._conn(keys)
        return await run(redis, get_job_flow(keys, job_id))

    @reaching
    async def get_many(
        self, job_ids: Sequence[str], *, queue: str | None = None
    ) -> list[Job | None]:
        """Several jobs of one queue in one round trip (None for each that does not exist)."""
        for job_id in job_ids:
            check_job_id(job_id)
        redis, _ = await self._conn(self.keys(queue))
        return await queries.get_jobs(redis, self.keys(queue), job_ids)

    @reaching
    async def find_job(self, job_id: str, *, queue: str | None = None) -> Job | None:
        """The job `job_id` of `queue`, or (without one) of whichever known queue holds it.

        Returns:
            The job, with the jobs waiting for it (:attr:`Job.dependents`) when it has any, or
            None when no queue searched holds it (never enqueued, or expired). When several
            queues hold the id, the first by name.
        """
        check_job_id(job_id)
        keys = self._job_keys(job_id, queue) if queue else None  # a partitioned queue's: the id's
        redis, _ = await self._conn(keys)
        where = keys.queue if keys is not None else None
        flow = find_job_with_dependents_flow(job_id, where, self.registry)
        return await run(redis, flow)

    @reaching
    async def logs(self, job_id: str, *, queue: str | None = None) -> list[str]:
        """The job's log lines, oldest first (the last 1,000; kept as long as the job)."""
        keys = self._job_keys(job_id, queue)
        redis, _ = await self._conn(keys)
        return await queries.job_logs(redis, keys, job_id)

    @reaching
    async def list_jobs(
        self,
        status: JobStatus | str | None = None,
        *,
        queue: str | None = None,
        limit: int = 100,
        cursor: int = 0,
        oldest: bool = False,
    ) -> JobPage:
        """Jobs of one status (or of every status, status by status), newest first, one page
        at a time; with `oldest`, oldest first (by the time each entered its status; a
        finished job's index is scored by its expiry)."""
        redis, _ = await self._conn(self.keys(queue))
        return await list_jobs(redis, self.keys(queue), status, limit, cursor, oldest)

    # -- queues and workers ---------------------------------------------------------------------

    @reaching
    async def stats(self, queue: str | None = None) -> dict[str, int]:
        """The queue's counters and its jobs waiting now.

        Returns:
            The running totals ``enqueued started completed failed retried reclaimed
            cancelled deferred``, and the jobs in the queue now: ``pending scheduled running`` and
            ``dead`` (failed for good, kept 30 days, or `result_ttl` when longer).
        """
        redis, _ = await self._conn(self.keys(queue))
        return await queries.stats(redis, self.keys(queue))

    @reaching
    async def job_counts(self, queues: Sequence[str] | None = None) -> list[QueueCounts]:
        """Jobs by status, running counters and the oldest pending job, of several queues.

        Args:
            queues: the queues (default: every known queue, in name order).

        Returns:
            One :class:`~redisjobs.queries.QueueCounts` per queue, in order, all read in one
            round trip at one instant of Redis's clock.
        """
        names = [self.keys(q).queue for q in await self._names(queues)]
        redis, _ = await self._conn()
        return await queries.job_counts(redis, names)

    @reaching
    async def event_rates(
        self, queues: Sequence[str] | None = None, *, now_ms: int | None = None
    ) -> dict[str, dict[str, float]]:
        """Enqueued, completed and failed events per second over the last minute, per queue.

        A busy queue's capped event log may not reach back a minute; the rate is then taken
        over the span the log still covers.

        Args:
            queues: the queues (default: every known queue).
            now_ms: Redis's clock in ms, when the caller has read it (else one more round trip).

        Returns:
            queue -> event type -> events per second.
        """
        names = [self.keys(q).queue for q in await self._names(queues)]
        redis, _ = await self._conn()
        if self._homes is None:
            return await queries.event_rates(redis, names, now_ms)
        if now_ms is None:  # one instant for every home
            now_ms = int(await queries.redis_time(redis) * 1000)
        groups = self._homes.split([self.keys(name).prefix for name in names])
        parts = await asyncio.gather(
            *(queries.event_rates(r, [names[i] for i in at], now_ms) for r, at in groups)
        )
        rates = {name: rate for part in parts for name, rate in part.items()}
        return {name: rates[name] for name in names}

    @reaching
    async def queues(self) -> list[str]:
        """The names of every queue anything was ever enqueued to, sorted."""
        redis, _ = await self._conn()
        return await queries.list_queues(redis, self.registry)

    @reaching
    async def workers(self, *, gone: bool = False) -> list[WorkerInfo]:
        """The live (and quiet) workers of every queue, from their registry entries, which
        heartbeats refresh; with `gone` also those lost or stopped within the last hour (see
        :mod:`redisjobs.workerinfo`). Oldest first."""
        redis, _ = await self._conn()
        return await run(redis, list_workers_flow(self.registry, gone))

    @reaching
    async def history(self, queue: str | None = None, *, minutes: int = 60) -> list[Note]:
        """The queue's history of the last `minutes` minutes (one note a minute while workers
        serve it, a day at most: see :mod:`redisjobs.history`), oldest first."""
        keys = self.keys(queue)
        redis, _ = await self._conn(keys)
        return await run(redis, history_flow(keys, max(1, min(minutes, HISTORY_MINUTES))))

    @reaching
    async def server_facts(self) -> ServerFacts | None:
        """The Redis server's facts (version, memory, clients, persistence, eviction policy)
        and its settings that lose jobs (:attr:`ServerFacts.risks`); on a cluster, those of the
        master of the registry. None on the embedded backend, or where ``INFO`` is refused."""
        redis, _ = await self._conn()
        return await server_facts(redis, self.backend)

    @reaching
    async def server_time(self) -> float:
        """Redis's clock in seconds since the epoch: the clock of every time Redis records."""
        redis, _ = await self._conn()
        return await queries.redis_time(redis)

    @reaching
    async def nodes(self) -> list[NodeInfo]:
        """The Redis nodes serving this Client, in one round trip.

        Returns:
            The node it talks to (the master) first, then its replicas with their state, lag
            and bytes behind (from the master's ``INFO replication``), then, for a
            ``redis+sentinel://`` URL, the sentinels it names. The embedded backend is one
            master at ``memory``.
        """
        redis, _ = await self._conn()
        return await list_nodes(redis, self.backend)

    @reaching
    async def ping(self) -> None:
        """Check that Redis answers now (ConnectionFailed when it does not)."""
        redis, _ = await self._conn()
        await redis.ping()

    # -- the event log --------------------------------------------------------------------------

    @reaching
    async def log_cursor(self, queue: str | None = None) -> str:
        """The id of the newest event in the queue's log ("0" when empty): a resume cursor for
        :meth:`Client.events` and :meth:`replay` that misses nothing after this read."""
        redis, _ = await self._conn(self.keys(queue))
        return await queries.log_cursor(redis, self.keys(queue))

    @reaching
    async def job_history(self, job: Job, *, limit: int = queries.HISTORY_SCAN) -> History:
        """The events of `job` still in its queue's capped log, oldest first.

        Args:
            job: the job (its creation time bounds the read).
            limit: log entries read at most; beyond them the history is marked incomplete.
        """
        redis, _ = await self._conn(self.keys(job.queue))
        return await queries.job_history(redis, self.keys(job.queue), job, limit)

    async def replay(
        self, job_id: str | None = None, *, queue: str | None = None, since: str = "0"
    ) -> AsyncGenerator[Event, None]:
        """The events the queue's capped log holds after id `since` (``"0"``: all), oldest
        first, of one job or of all; each carries its log id in `Event.id`."""
        keys = self.keys(queue) if job_id is None else self._job_keys(job_id, queue)
        redis, _ = await self._conn(keys)
        with self.backend.reaching():
            async for ev, _raw in queries.replay(redis, keys, since, job_id):
                yield ev
