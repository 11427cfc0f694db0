"""Job events: the Event type, and following a job or a queue live after replaying its log.

Every transition script publishes its event once, on the job's channel, and appends it to the capped
log stream (docs/architecture.md, "Events"); a whole queue is followed through the pattern of its
job channels.
The pub/sub connection that carries them lives in :mod:`redisjobs.subscriber`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from .job import FINAL_STATUSES
from .keys import QueueKeys
from .serialization import unpackb
from .subscriber import RECHECK, Subscriber

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
        ts: Redis time in milliseconds.
        data: the rest: ``kind`` (enqueued), ``worker`` (started), ``progress``/``message``,
            ``result`` (completed), ``error`` (retrying, failed, cancelled), ``due`` (retrying),
            ``crashes`` (reclaimed), ``due``, ``deferrals`` and ``paused`` (deferred).
        id: the log stream id when the event was replayed from the log (a resume cursor).
    """

    type: str
    queue: str
    job_id: str
    attempt: int
    ts: int
    data: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    @classmethod
    def decode(cls, raw: bytes, id: str | None = None) -> Event:
        """Parse the msgpack form the scripts emit."""
        d = unpackb(raw)
        return cls(
            type=d.pop("type"),
            queue=d.pop("queue"),
            job_id=d.pop("job_id"),
            attempt=d.pop("attempt"),
            ts=d.pop("ts"),
            data=d,
            id=id,
        )


async def follow(
    redis: Redis,
    subscriber: Subscriber,
    keys: QueueKeys,
    job_id: str | None,
    since: str | None,
    on_recheck: Callable[[], Awaitable[None]] | None = None,
) -> AsyncGenerator[Event, None]:
    """Events of a queue (or one job) live, after replaying the log from `since` if given.

    It subscribes before it replays, so nothing published meanwhile is missed; what the
    replay already yielded is skipped when it also arrives live. After the pub/sub connection
    was lost, events may have been missed: `on_recheck` is awaited then, to look again (without
    one, Redis is PINGed, so that a follower of a Redis that is gone gets an error).
    """
    if job_id:
        subscribing = subscriber.subscribe(keys.job_events(job_id))
    else:
        subscribing = subscriber.subscribe(keys.events, pattern=True)
    async with await subscribing as sub:
        replayed: set[bytes] = set()
        if since is not None:
            # Imported here: queries decodes Events, so it imports this module first.
            from .queries import replay

            async for ev, raw in replay(redis, keys, since, job_id):
                replayed.add(raw)
                yield ev
        while True:
            raw = await sub.get()
            if raw == RECHECK:
                if on_recheck is not None:
                    await on_recheck()
                else:  # nothing to look up, but a Redis that is gone must end the follow
                    await redis.ping()
                continue
            if raw in replayed:
                replayed.discard(raw)
                continue
            yield Event.decode(raw)
