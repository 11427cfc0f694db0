"""What the pages show, read from Redis: queue summaries, job histories, filtered listings.

Nothing here writes. Summaries are cached for a second, so that many open pages (and the
live streams feeding them) cost Redis one read per queue per second, not one per viewer.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from ..client import Client
from ..events import Event
from ..job import Job, JobStatus
from ..keys import is_job_id
from ..queries import WorkerInfo
from ..serialization import unpackb

STATUSES = tuple(s.value for s in JobStatus)
RATE_WINDOW_MS = 60_000
RATED = ("enqueued", "completed", "failed")
LOG_TRIMMED_AT = 9_000
"""The event log is capped near 10,000 entries (``LOG_MAXLEN ~`` in ``_lib.lua``): at this
length it may have been trimmed, so a rate is taken over the span it still covers."""
HISTORY_SCAN = 5_000
"""Log entries read at most to gather one job's history on its page."""
KIND_SCAN = 2_000
"""Jobs looked at at most for one page of a listing filtered by kind."""


@dataclass(slots=True)
class QueueSummary:
    """One queue on the overview: its jobs by status, counters, rates and workers.

    Attributes:
        name: the queue.
        counts: jobs in each status index now, and ``dead`` (failed for good, still kept).
        totals: the running counters (``enqueued completed failed retried …``).
        rates: ``enqueued completed failed`` per second over the last minute.
        workers: live workers serving the queue; `slots` their concurrency, `busy` the jobs
            they hold.
    """

    name: str
    counts: dict[str, int]
    totals: dict[str, int]
    rates: dict[str, float]
    workers: int = 0
    slots: int = 0
    busy: int = 0

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
            "warning": self.warning,
        }


async def redis_now_ms(redis: Redis) -> int:
    """Redis's clock in ms (the clock of every timestamp the scripts write)."""
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


def event_type(raw: bytes) -> str:
    """The type of an encoded event, without decoding all of it.

    ``_lib.lua`` writes every event as a map whose first entry is ``type`` (a short string), so
    the type sits at a fixed place; a completed event may carry a large result, and rates read
    thousands of events. Anything laid out otherwise is decoded in full.
    """
    if raw[1:6] == b"\xa4type" and len(raw) > 6 and 0xA0 <= raw[6] < 0xC0:
        n = raw[6] - 0xA0
        return raw[7 : 7 + n].decode("utf-8", "replace")
    return str(unpackb(raw).get("type", ""))


async def rates(redis: Redis, log_key: str, now_ms: int) -> dict[str, float]:
    """Events per second of the types in :data:`RATED` over the last minute, from the log."""
    start = now_ms - RATE_WINDOW_MS
    entries: Any = await redis.xrange(log_key, min=str(start), max="+")
    counts = Counter(event_type(fields[b"e"]) for _, fields in entries)
    span = RATE_WINDOW_MS
    length = await redis.xlen(log_key)
    if length >= LOG_TRIMMED_AT:
        first: Any = await redis.xrange(log_key, count=1)
        first_ms = int(first[0][0].split(b"-")[0]) if first else start
        if first_ms > start:
            span = max(now_ms - first_ms, 1000)
    return {k: counts[k] * 1000 / span for k in RATED}


async def queue_summary(
    client: Client, name: str, workers: list[WorkerInfo], now_ms: int
) -> QueueSummary:
    """The summary of queue `name`, given the live workers and Redis's clock."""
    redis = client.redis
    keys = client.keys(name)
    async with redis.pipeline(transaction=False) as pipe:
        for status in STATUSES:
            pipe.zcard(keys.status(status))
        pipe.zcard(keys.dead)
        pipe.hgetall(keys.stats)
        *sizes, raw = await pipe.execute()
    counts = dict(zip((*STATUSES, "dead"), map(int, sizes), strict=True))
    totals = {k.decode(): int(v) for k, v in raw.items() if v.isdigit()}
    serving = [w for w in workers if name in w.queues]
    return QueueSummary(
        name=name,
        counts=counts,
        totals=totals,
        rates=await rates(redis, keys.log, now_ms),
        workers=len(serving),
        slots=sum(w.concurrency for w in serving),
        busy=sum(w.held for w in serving),
    )


@dataclass
class Summaries:
    """Queue summaries and the worker list, each cached for `max_age` seconds.

    Args:
        client: where to read.
        max_age: how long a read is reused.
    """

    client: Client
    max_age: float = 1.0
    _cache: dict[str, tuple[float, QueueSummary]] = field(default_factory=dict)
    _workers: tuple[float, list[WorkerInfo]] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def workers(self) -> list[WorkerInfo]:
        """The live workers."""
        if self._workers is None or time.monotonic() - self._workers[0] > self.max_age:
            self._workers = (time.monotonic(), await self.client.workers())
        return self._workers[1]

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
            workers = await self.workers()
            now_ms = await redis_now_ms(self.client.redis)
            summary = await queue_summary(self.client, name, workers, now_ms)
            self._cache[name] = (read_at, summary)
            return summary

    async def all(self) -> list[QueueSummary]:
        """The summaries of every known queue, by name."""
        return [await self.get(name) for name in await self.client.queues()]


async def get_job(client: Client, job_id: str, queue: str) -> Job | None:
    """The job `job_id` of `queue`, None when there is none (an invalid id names no job)."""
    return await client.get(job_id, queue=queue) if is_job_id(job_id) else None


async def find_job(client: Client, job_id: str, queue: str | None = None) -> Job | None:
    """The job `job_id` of `queue`, or of whichever known queue holds it (None: nowhere)."""
    if not is_job_id(job_id):
        return None
    if queue is not None:
        return await get_job(client, job_id, queue)
    queues = await client.queues()
    async with client.redis.pipeline(transaction=False) as pipe:
        for name in queues:
            pipe.exists(client.keys(name).job(job_id))
        found = await pipe.execute()
    for name, exists in zip(queues, found, strict=True):
        job = await get_job(client, job_id, name) if exists else None
        if job is not None:  # (it may have expired between the two reads)
            return job
    return None


@dataclass(slots=True)
class History:
    """A job's events as the capped log still holds them, and where to follow on from.

    Attributes:
        events: oldest first.
        cursor: the last log id read (of any job): a live stream that replays from here
            misses nothing that happened after this read.
        complete: False when the log was too long to read all of it for this job.
    """

    events: list[Event]
    cursor: str
    complete: bool


async def job_history(client: Client, job: Job) -> History:
    """The events of `job` still in its queue's log (they start at its creation)."""
    keys = client.keys(job.queue)
    created_ms = int(job.created_at.timestamp() * 1000)
    # Log ids are Redis ms times at least as late as the event's own, so nothing of this job
    # comes before its creation.
    start, cursor, scanned = str(created_ms), f"{max(created_ms - 1, 0)}-0", 0
    events: list[Event] = []
    while scanned < HISTORY_SCAN:
        entries: Any = await client.redis.xrange(keys.log, min=start, max="+", count=500)
        if not entries:
            return History(events, cursor, True)
        for eid, fields in entries:
            ev = Event.decode(fields[b"e"], eid.decode())
            if ev.job_id == job.id:
                events.append(ev)
        scanned += len(entries)
        cursor = entries[-1][0].decode()
        start = f"({cursor}"
    return History(events, cursor, False)


async def log_cursor(client: Client, queue: str) -> str:
    """The id of the newest event in the queue's log ("0" when it is empty)."""
    last: Any = await client.redis.xrevrange(client.keys(queue).log, count=1)
    return str(last[0][0].decode()) if last else "0"


async def list_jobs(
    client: Client,
    queue: str,
    status: str | None,
    *,
    kind: str | None = None,
    cursor: int = 0,
    limit: int = 50,
) -> tuple[list[Job], int | None]:
    """A page of the queue's jobs, newest first, optionally only those of one `kind`.

    Returns:
        The jobs and the cursor of the next page (None: no more). A kind filter looks at
        :data:`KIND_SCAN` jobs at most per page, so a page may come back short.
    """
    if not kind:
        page = await client.list_jobs(status, queue=queue, limit=limit, cursor=cursor)
        return page.jobs, page.cursor
    found: list[Job] = []
    nxt: int | None = cursor
    scanned = 0
    while nxt is not None and len(found) < limit and scanned < KIND_SCAN:
        # Asking for exactly the jobs still wanted keeps the cursor exact: a bigger page
        # would read past the last job this page shows.
        want = limit - len(found)
        page = await client.list_jobs(status, queue=queue, limit=want, cursor=nxt)
        found += [j for j in page.jobs if j.kind == kind]
        scanned += want
        nxt = page.cursor
    return found, nxt


async def job_kinds(client: Client, queue: str, sample: int = 200) -> list[str]:
    """The kinds among the queue's newest jobs, for the filter's suggestions."""
    page = await client.list_jobs(None, queue=queue, limit=sample)
    return sorted({j.kind for j in page.jobs if j.kind})


async def get_jobs(client: Client, queue: str, ids: list[str]) -> list[Job | None]:
    """The jobs `ids` of `queue` as stored (None for one that is gone), in one round trip."""
    keys = client.keys(queue)
    async with client.redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hgetall(keys.job(job_id))
        hashes: list[dict[bytes, bytes]] = await pipe.execute()
    return [Job.from_hash(queue, i, h) if h else None for i, h in zip(ids, hashes, strict=True)]
