"""Job events: the Event type, and following a job or a queue live after replaying its log.

Every transition script writes its event once, to the queue's capped log stream
(docs/architecture.md, "Events"); :mod:`redisjobs.eventlog` reads it live for a job's waiters
and a queue's followers alike.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from .eventlog import EventLog, id_key
from .job import FINAL_STATUSES
from .keys import QueueKeys
from .serialization import unpackb

EVENT_TYPES = (
    "enqueued",
    "started",
    "progress",
    "retrying",
    "completed",
    "failed",
    "cancelled",
    "reclaimed",
    "released",
    "deferred",
    "ready",
    "waiting",
)
FINAL_EVENTS = FINAL_STATUSES  # a final event is named after the final status it records


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a job.

    Attributes:
        type: one of :data:`EVENT_TYPES`.
        queue: the job's queue.
        job_id: the job.
        attempt: the attempt it belongs to (0 before the first start).
        ts: Redis time in milliseconds: when it was written to the log (its log id's time).
        data: the rest: ``kind`` (enqueued), ``worker`` (started), ``progress``/``message``,
            ``result`` (completed), ``error`` (retrying, failed, cancelled), ``due`` (retrying),
            ``crashes`` (reclaimed), ``due``, ``deferrals`` and ``paused`` (deferred).
        id: its log stream id (a resume cursor: ``since`` of :meth:`redisjobs.Client.events`).
    """

    type: str
    queue: str
    job_id: str
    attempt: int
    ts: int
    data: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    @classmethod
    def decode(cls, raw: bytes, id: str | None = None, queue: str = "") -> Event:
        """Parse the msgpack form the scripts emit, read from log entry `id` of `queue`'s log.

        An event may leave out what its log entry already says (docs/wire-format.md,
        "Events"): ``queue`` (the log's queue), ``ts`` (the time of the entry's id) and
        ``attempt`` (0).
        """
        d = unpackb(raw)
        ts = d.pop("ts", None)
        if ts is None:
            ts = id_key(id)[0] if id is not None else 0
        return cls(
            type=d.pop("type"),
            queue=d.pop("queue", queue),
            job_id=d.pop("job_id"),
            attempt=d.pop("attempt", 0),
            ts=ts,
            data=d,
            id=id,
        )


async def follow(
    redis: Redis,
    log: EventLog,
    keys: QueueKeys,
    job_id: str | None,
    since: str | None,
    on_recheck: Callable[[], Awaitable[None]] | None = None,
) -> AsyncGenerator[Event, None]:
    """Events of a queue (or one job) live, after replaying the log from `since` if given.

    It opens its tail of the log before it replays, and replays up to the tail's cursor, so
    nothing is missed or yielded twice; every event carries its log id. When the log's reader
    may have missed events (it fell behind the log's cap, or the log was deleted),
    `on_recheck` is awaited to look again (without one, Redis is PINGed, so that a follower of
    a Redis that is gone gets an error).
    """
    async with await log.tail(keys.log, job_id) as tail:
        after = None
        if since is not None:
            # Imported here: queries decodes Events, so it imports this module first.
            from .queries import replay

            async for ev, _ in replay(redis, keys, since, job_id, until=tail.cursor):
                yield ev
            after = id_key(since)
        while True:
            entry_id, raw = await tail.get()
            if entry_id is None:
                if on_recheck is not None:
                    await on_recheck()
                else:  # nothing to look up, but a Redis that is gone must end the follow
                    await redis.ping()
                continue
            if after is not None and id_key(entry_id) <= after:
                continue  # `since` was past the tail's cursor: the replay's, or older
            yield Event.decode(raw, entry_id, keys.queue)
