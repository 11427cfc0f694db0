"""What the pages show, read from Redis: queue summaries, the Redis nodes, job histories,
filtered listings.

Nothing here writes. Summaries are cached for a second, so that many open pages (and the
live streams feeding them) cost Redis one read per queue per second, not one per viewer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from ..client import Client
from ..job import Job
from ..limits import KeyState, Limit
from ..names import is_job_id
from ..nodes import NodeInfo
from ..schedule_spec import Schedule
from ..serverfacts import ServerFacts
from ..workerinfo import WorkerInfo


@dataclass(slots=True)
class QueueSummary:
    """One queue on the overview: its jobs by status, counters, rates and workers.

    Attributes:
        name: the queue.
        counts: jobs in each status index now, and ``dead`` (failed for good, still kept).
        totals: the running counters (``enqueued completed failed retried …``).
        rates: ``enqueued completed failed`` per second over the last minute.
        workers: live workers serving the queue (quiet ones aside: they take no jobs); `slots`
            their concurrency, `busy` the jobs the live and quiet ones hold.
        latency: how long the oldest pending job has waited (seconds; 0: none is pending).
        read_at: Redis's clock at the read (seconds).
    """

    name: str
    counts: dict[str, int]
    totals: dict[str, int]
    rates: dict[str, float]
    workers: int = 0
    slots: int = 0
    busy: int = 0
    latency: float = 0.0
    read_at: float = 0.0

    @property
    def warning(self) -> str | None:
        """Why someone should look: jobs are waiting and no live worker serves the queue."""
        pending = self.counts.get("pending", 0)
        if pending and not self.workers:
            noun = "job is" if pending == 1 else "jobs are"
            return f"{pending:,} {noun} pending and no live worker serves this queue"
        return None

    def json(self) -> dict[str, Any]:
        """The JSON form, for the live streams and the API."""
        return {
            "name": self.name,
            "counts": self.counts,
            "totals": self.totals,
            "rates": {k: round(v, 3) for k, v in self.rates.items()},
            "workers": self.workers,
            "slots": self.slots,
            "busy": self.busy,
            "latency": round(self.latency, 3),
            "read_at": self.read_at,
            "warning": self.warning,
        }


async def queue_summary(client: Client, name: str, workers: list[WorkerInfo]) -> QueueSummary:
    """The summary of queue `name`, given the live workers."""
    (read,) = await client.job_counts([name])
    rates = await client.event_rates([name], now_ms=int(read.read_at * 1000))
    serving = [w for w in workers if name in w.queues]
    taking = [w for w in serving if w.taking]  # a quiet worker runs what it has, takes nothing
    return QueueSummary(
        name=name,
        counts=read.counts,
        totals=read.totals,
        rates=rates[name],
        workers=len(taking),
        slots=sum(w.concurrency for w in taking),
        busy=sum(w.held for w in serving),
        latency=read.pending_age,
        read_at=read.read_at,
    )


def node_json(node: NodeInfo) -> dict[str, Any]:
    """A Redis node's JSON form, for the API: every field of :class:`~redisjobs.nodes.NodeInfo`."""
    return dataclasses.asdict(node)


@dataclass
class Summaries:
    """Queue summaries, the worker list and the Redis nodes, each cached for `max_age` seconds.

    Args:
        client: where to read.
        max_age: how long a read is reused.
    """

    client: Client
    max_age: float = 1.0
    _cache: dict[str, tuple[float, QueueSummary]] = field(default_factory=dict)
    _workers: tuple[float, list[WorkerInfo]] | None = None
    _nodes: tuple[float, list[NodeInfo]] | None = None
    _facts: tuple[float, ServerFacts | None] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def workers(self) -> list[WorkerInfo]:
        """The live workers."""
        if self._workers is None or time.monotonic() - self._workers[0] > self.max_age:
            self._workers = (time.monotonic(), await self.client.workers())
        return self._workers[1]

    async def nodes(self) -> list[NodeInfo]:
        """The Redis nodes serving the client: master, replicas and sentinels."""
        if self._nodes is None or time.monotonic() - self._nodes[0] > self.max_age:
            self._nodes = (time.monotonic(), await self.client.nodes())
        return self._nodes[1]

    async def facts(self) -> ServerFacts | None:
        """The Redis server's facts and risks (None: embedded, or INFO refused)."""
        if self._facts is None or time.monotonic() - self._facts[0] > self.max_age:
            self._facts = (time.monotonic(), await self.client.server_facts())
        return self._facts[1]

    def _fresh(self, name: str, not_before: float) -> QueueSummary | None:
        hit = self._cache.get(name)
        if hit is None or time.monotonic() - hit[0] > self.max_age or hit[0] < not_before:
            return None
        return hit[1]

    async def get(self, name: str, not_before: float = 0.0) -> QueueSummary:
        """The summary of one queue, read at `not_before` (a ``time.monotonic()``) or later.

        A stream that saw an event passes the time it saw it, so it never gets a count read
        before that event; other viewers of the same queue then share the fresh read.
        """
        hit = self._fresh(name, not_before)
        if hit is not None:
            return hit
        async with self._lock:  # one reader at a time: the others then find it cached
            hit = self._fresh(name, not_before)
            if hit is not None:
                return hit
            read_at = time.monotonic()
            summary = await queue_summary(self.client, name, await self.workers())
            self._cache[name] = (read_at, summary)
            return summary

    async def all(self) -> list[QueueSummary]:
        """The summaries of every known queue, by name."""
        return [await self.get(name) for name in await self.client.queues()]


async def find_job(client: Client, job_id: str, queue: str | None = None) -> Job | None:
    """The job `job_id` of `queue`, or of whichever known queue holds it (None: nowhere)."""
    return await client.find_job(job_id, queue=queue) if is_job_id(job_id) else None


async def schedules(client: Client) -> list[Schedule]:
    """The schedules of every known queue, by queue and id."""
    return [s for name in await client.queues() for s in await client.schedules(name)]


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """One queue on the limits page: its rate specs and the limit keys with jobs.

    Attributes:
        queue: the queue.
        limits: its specs (:meth:`redisjobs.Client.limits`), the queue-wide one first.
        keys: its limit keys with jobs waiting or running (:meth:`redisjobs.Client.limit_keys`).
        now: Redis's clock when they were read (epoch seconds), to tell a key's state.
    """

    queue: str
    limits: list[Limit]
    keys: list[KeyState]
    now: float

    def state(self, key: KeyState) -> str:
        """What holds a key back: ``at max_running``, ``waiting`` (its rate or a hold, until
        :attr:`KeyState.next_at`), ``running`` (no backlog) or ``ready``."""
        if key.next_at is None:
            return "at max_running" if key.backlog else "running"
        return "waiting" if key.next_at > self.now else "ready"


async def limits(client: Client) -> list[QueueLimits]:
    """The queues with limits or limit keys, by name."""
    now = await client.server_time()
    found = []
    for name in await client.queues():
        specs, keys = await client.limits(name), await client.limit_keys(name)
        if specs or keys:
            found.append(QueueLimits(name, specs, keys, now))
    return found
