"""Every read of a queue, once: jobs, counts, workers, rates and the event log, pipelined.

Nothing here changes state. Each read takes as few round trips as Redis allows (most take one:
a pipeline); :class:`redisjobs.getters.QueueGetters` puts each behind a Client method, and
everything outside the core reads through those.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from .errors import JobNotFound
from .eventlog import id_key, log_events
from .events import Event
from .job import FINAL_STATUSES, Job, JobStatus
from .keys import QueueKeys, Registry
from .pending import groups_read, oldest_ready_flow, pending_count
from .roundtrips import Flow, cmd, driven
from .serialization import unpackb

COUNTERS = (
    "enqueued",
    "started",
    "completed",
    "failed",
    "retried",
    "reclaimed",
    "cancelled",
    "deferred",
    "throttled",
)
"""The running counters of the stats hash (``throttled`` counts the ``start`` calls a rate
limit, max_running or hold held back, not jobs)."""
WAITING = ("waiting", "pending", "scheduled", "running")
STATUSES = tuple(s.value for s in JobStatus)
INDEXED = tuple(s for s in STATUSES if s != JobStatus.PENDING.value)
"""The statuses counted by their index: pending jobs have none to count (see pending.py)."""
RATED = ("enqueued", "completed", "failed")
"""The event types :func:`event_rates` counts unless told others."""
RATE_WINDOW_MS = 60_000
HISTORY_SCAN = 5_000
"""Log entries read at most to gather one job's history."""
REPLAY_PAGE = 500


def list_queues_flow(registry: Registry) -> Flow[list[str]]:
    """The queues anything was ever enqueued to (the queue registry), sorted."""
    (names,) = yield [cmd("smembers", registry.queues)]
    return sorted(name.decode() for name in names)


list_queues = driven(list_queues_flow)


async def redis_time(redis: Redis) -> float:
    """Redis's clock in seconds (the clock of every timestamp the scripts write)."""
    return _seconds(await redis.time())


def _seconds(reply: Any) -> float:
    seconds, micros = reply
    return int(seconds) + int(micros) / 1e6


def get_jobs_flow(keys: QueueKeys, ids: Sequence[str]) -> Flow[list[Job | None]]:
    """The jobs `ids` of a queue as stored (None for one that is gone), in one round trip."""
    hashes: list[dict[bytes, bytes]] = yield [cmd("hgetall", keys.job(i)) for i in ids]
    return [
        Job.from_hash(keys.queue, i, h) if h else None for i, h in zip(ids, hashes, strict=True)
    ]


get_jobs = driven(get_jobs_flow)


def find_job_flow(job_id: str, queue: str | None, registry: Registry) -> Flow[Job | None]:
    """The job `job_id` of `queue`, or of the first known queue (by name) that holds it.

    One round trip for a given queue; two for any queue (the registry, then every queue's
    job hash at once).
    """
    names = [queue] if queue is not None else (yield from list_queues_flow(registry))
    hashes: list[dict[bytes, bytes]] = yield [
        cmd("hgetall", QueueKeys(name).job(job_id)) for name in names
    ]
    for name, h in zip(names, hashes, strict=True):
        if h:
            return Job.from_hash(name, job_id, h)
    return None


async def job_logs(redis: Redis, keys: QueueKeys, job_id: str) -> list[str]:
    """The log lines of a job, oldest first."""
    lines: list[bytes] = await redis.lrange(keys.job_log(job_id), 0, -1)  # type: ignore[assignment]
    return [line.decode("utf-8", "replace") for line in lines]


Outcome = tuple[str, Any, str | None]
"""How a job ended: its final status, its result (when completed) and its error text."""


LogId = tuple[int, int]
"""A log entry's id as :func:`~redisjobs.eventlog.id_key` orders it."""


def final_state_flow(keys: QueueKeys, job_id: str) -> Flow[tuple[LogId, Outcome | None]]:
    """How a job ended: ``(status, result, error)``, or None while it has not; with the id of
    the queue's last log entry, read just before: every event up to it was written before the
    state was read, which shows its effect (or a later one: a failure since retried).

    Raises:
        JobNotFound: there is no such job.
    """
    last, (status, result, error) = yield [
        cmd("xrevrange", keys.log, "+", "-", count=1),
        cmd("hmget", keys.job(job_id), "status", "result", "error"),
    ]
    read_after = id_key(last[0][0].decode()) if last else (0, 0)
    if status is None:
        raise JobNotFound(f"no job {job_id!r} in queue {keys.queue!r}")
    st = status.decode()
    if st not in FINAL_STATUSES:
        return read_after, None
    value = unpackb(result) if st == "completed" and result is not None else None
    return read_after, (st, value, error.decode() if error is not None else None)


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """One queue's jobs by status and its running counters, read at one instant.

    Attributes:
        name: the queue.
        counts: the jobs in each status now, and ``dead`` (failed for good, still kept).
        totals: the running counters: every one of :data:`COUNTERS` (0 when never counted)
            and any other numeric field of the stats hash.
        oldest_pending_ms: when the oldest pending job became pending (Redis ms), None when
            none is.
        read_at: Redis's clock at the read, in seconds.
    """

    name: str
    counts: dict[str, int]
    totals: dict[str, int]
    oldest_pending_ms: int | None
    read_at: float

    @property
    def pending_age(self) -> float:
        """Seconds the oldest pending job had waited at the read (0 when none was pending)."""
        first = self.oldest_pending_ms
        return max(0.0, self.read_at - first / 1000) if first else 0.0


def job_counts_flow(names: Sequence[str]) -> Flow[list[QueueCounts]]:
    """The :class:`QueueCounts` of every queue of `names`, in two round trips (one when none
    has a `ready` stream): the second reads where the oldest pending job waits in it."""
    return (yield from _counts_flow(names, oldest=True))


def _counts_flow(names: Sequence[str], *, oldest: bool) -> Flow[list[QueueCounts]]:
    """:func:`job_counts_flow`; without `oldest`, in one round trip and with no
    ``oldest_pending_ms`` (None), for the readers that do not show it."""
    batch = [cmd("time")]  # ages are measured on Redis's clock, which wrote the status scores
    for name in names:
        keys = QueueKeys(name)
        batch.append(cmd("hgetall", keys.stats))  # the counters, and the pending count's
        batch += [cmd("zcard", keys.status(status)) for status in INDEXED]
        batch.append(cmd("zcard", keys.dead))
        if oldest:
            batch.append(cmd("zrange", keys.status(JobStatus.PENDING), 0, 0, withscores=True))
            batch.append(groups_read(keys))
    now, *replies = yield batch
    read_at = _seconds(now)
    per_queue = (len(batch) - 1) // max(len(names), 1)  # each queue's commands, in order
    rows = [replies[n * per_queue : (n + 1) * per_queue] for n in range(len(names))]
    heads: dict[str, int] = {}
    if oldest:
        heads = yield from oldest_ready_flow(names, [row[-1] for row in rows])
    out = []
    for name, (raw, *rest) in zip(names, rows, strict=True):
        totals = dict.fromkeys(COUNTERS, 0)
        totals.update({k.decode(): int(v) for k, v in raw.items() if v.isdigit()})
        sized = dict(zip((*INDEXED, "dead"), map(int, rest[: len(INDEXED) + 1]), strict=True))
        counts = {s: sized[s] if s in sized else pending_count(raw) for s in (*STATUSES, "dead")}
        starts = [int(first[0][1])] if oldest and (first := rest[-2]) else []
        if name in heads:
            starts.append(heads[name])
        out.append(QueueCounts(name, counts, totals, min(starts, default=None), read_at))
    return out


job_counts = driven(job_counts_flow)


def stats_flow(keys: QueueKeys) -> Flow[dict[str, int]]:
    """The running counters of a queue and its jobs waiting now (see Client.stats)."""
    (read,) = yield from _counts_flow([keys.queue], oldest=False)
    out = {k: read.totals[k] for k in COUNTERS}
    out.update({k: read.counts[k] for k in (*WAITING, "dead")})
    return out


stats = driven(stats_flow)


def event_type(raw: bytes) -> str:
    """The type of an encoded event, without decoding all of it.

    ``_lib.lua`` writes every event as a map whose first entry is ``type`` (a short string), so
    the type sits at a fixed place; a completed event may carry a large result, and rates read
    thousands of events. Anything laid out otherwise is decoded in full.
    """
    if raw[1:6] == b"\xa4type" and len(raw) > 6 and 0xA0 <= raw[6] < 0xC0:
        n = raw[6] - 0xA0
        return raw[7 : 7 + n].decode("utf-8", "replace")
    try:
        event = unpackb(raw)
    except Exception:  # anything can write to a log: an entry that is no event has no type
        return ""
    return str(event.get("type", "")) if isinstance(event, dict) else ""


async def event_rates(
    redis: Redis, names: Sequence[str], now_ms: int | None = None, types: Sequence[str] = RATED
) -> dict[str, dict[str, float]]:
    """Events per second of each of `types` over the last minute, per queue, from the logs.

    The log is capped, so a busy queue's log may no longer reach back a minute: the rate is then
    taken over the span it still covers, from its first entry. XINFO STREAM tells a trimmed log
    by its ``entries-added`` above its length, whatever that length (Redis < 7 does not report
    it: there a log counts as never trimmed). One round trip for every queue at once, plus one
    for Redis's clock when `now_ms` is not given.
    """
    if now_ms is None:
        now_ms = int(await redis_time(redis) * 1000)
    start = now_ms - RATE_WINDOW_MS
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            log = QueueKeys(name).log
            pipe.xrange(log, min=str(start), max="+")
            pipe.xinfo_stream(log)  # an error for a log never written: read below
        replies = await pipe.execute(raise_on_error=False)
    out = {}
    for n, name in enumerate(names):
        entries, info = replies[2 * n], replies[2 * n + 1]
        if isinstance(entries, Exception):
            raise entries
        if not entries:
            out[name] = dict.fromkeys(types, 0.0)
            continue
        if isinstance(info, Exception):
            raise info
        covered_from = start
        if info.get("entries-added", 0) > info["length"]:  # it dropped some: trimmed
            covered_from = max(start, int(info["first-entry"][0].split(b"-")[0]))
        span = now_ms - covered_from
        counts = Counter(event_type(fields.get(b"e", b"")) for _, fields in entries)
        out[name] = {t: counts[t] * 1000 / max(span, 1) for t in types}
    return out


async def log_cursor(redis: Redis, keys: QueueKeys) -> str:
    """The id of the newest event in the queue's log ("0" when it is empty)."""
    last: Any = await redis.xrevrange(keys.log, count=1)
    return str(last[0][0].decode()) if last else "0"


async def replay(
    redis: Redis, keys: QueueKeys, since: str, job_id: str | None = None, until: str = "+"
) -> AsyncIterator[tuple[Event, bytes]]:
    """The events of a queue's log after id `since` up to id `until` (of one job, or all),
    oldest first, each with its encoded form; read a page of :data:`REPLAY_PAGE` entries per
    round trip."""
    cursor = since
    while True:
        entries: Any = await redis.xrange(keys.log, f"({cursor}", until, count=REPLAY_PAGE)
        if not entries:
            return
        for eid, _, raw in log_events(entries):
            ev = Event.decode(raw, eid, keys.queue)
            if job_id is None or ev.job_id == job_id:
                yield ev, raw
        cursor = entries[-1][0].decode()


@dataclass(frozen=True, slots=True)
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


async def job_history(
    redis: Redis, keys: QueueKeys, job: Job, limit: int = HISTORY_SCAN
) -> History:
    """The events of `job` still in its queue's log, reading `limit` entries at most, in one
    round trip."""
    created_ms = int(job.created_at.timestamp() * 1000)
    # Log ids are Redis ms times at least as late as the event's own, so nothing of this job
    # comes before its creation.
    entries: Any = await redis.xrange(keys.log, min=str(created_ms), max="+", count=limit + 1)
    read = entries[:limit]
    events = [Event.decode(raw, eid, keys.queue) for eid, _, raw in log_events(read)]
    cursor = read[-1][0].decode() if read else f"{max(created_ms - 1, 0)}-0"
    return History([ev for ev in events if ev.job_id == job.id], cursor, len(entries) <= limit)
