"""Job events: the Event type, and one multiplexed pub/sub connection per Client.

Every transition script publishes its event once, on the job's channel, and appends it to the capped
log stream (DESIGN.md, "Events"); a whole queue is followed through the pattern of its job channels.
A pub/sub connection cannot run other commands, so a Client opens exactly one and fans its messages
out to in-process listeners (:class:`Subscriber`). `subscribe` returns only once Redis has confirmed
the subscription, which is what lets `wait` subscribe *before* it reads a job's status and never
miss a fast completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from .job import FINAL_STATUSES
from .keys import QueueKeys
from .serialization import unpackb

log = logging.getLogger("redisjobs.events")

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
)
FINAL_EVENTS = FINAL_STATUSES  # a final event is named after the final status it records

READ_TIMEOUT = 1.0

RECHECK = b""
"""Put on every listener after the pub/sub connection was lost: events may have been missed."""


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
            ``crashes`` (reclaimed).
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


class Subscription:
    """Messages of one channel (or channel pattern), in order; use as an async context manager."""

    def __init__(self, owner: Subscriber, channel: bytes, pattern: bool) -> None:
        self.channel = channel
        self.pattern = pattern
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._owner = owner

    @property
    def key(self) -> tuple[bool, bytes]:
        """What the subscriber files it under: (is a pattern, name)."""
        return self.pattern, self.channel

    async def get(self) -> bytes:
        """The next raw message, or :data:`RECHECK` after a reconnect."""
        return await self.queue.get()

    async def close(self) -> None:
        """Stop receiving (unsubscribes when this was the channel's last listener)."""
        await self._owner.remove(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Subscriber:
    """One pub/sub connection fanned out to many :class:`Subscription` objects."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pubsub: PubSub | None = None
        self._subs: dict[tuple[bool, bytes], set[Subscription]] = {}
        self._confirm: dict[tuple[bool, bytes], list[asyncio.Future[None]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def subscribe(self, channel: str, *, pattern: bool = False) -> Subscription:
        """Subscribe to `channel` (a PSUBSCRIBE pattern when `pattern`); returns once Redis has
        confirmed the subscription."""
        sub = Subscription(self, channel.encode(), pattern)
        async with self._lock:
            listeners = self._subs.setdefault(sub.key, set())
            listeners.add(sub)
            if len(listeners) > 1:
                return sub
            fut = asyncio.get_running_loop().create_future()
            self._confirm.setdefault(sub.key, []).append(fut)
            if self._pubsub is None:
                self._pubsub = self._redis.pubsub()
            if pattern:
                await self._pubsub.psubscribe(sub.channel)
            else:
                await self._pubsub.subscribe(sub.channel)
            if self._reader is None:
                self._reader = asyncio.create_task(self._read(), name="redisjobs-pubsub")
        try:
            await fut
        except BaseException:
            await self.remove(sub)
            raise
        return sub

    async def remove(self, sub: Subscription) -> None:
        """Detach `sub`, unsubscribing the channel when nobody else listens."""
        async with self._lock:
            listeners = self._subs.get(sub.key)
            if listeners is None or sub not in listeners:
                return
            listeners.discard(sub)
            if not listeners:
                del self._subs[sub.key]
                if self._pubsub is not None:
                    with contextlib.suppress(RedisError, OSError):
                        if sub.pattern:
                            await self._pubsub.punsubscribe(sub.channel)
                        else:
                            await self._pubsub.unsubscribe(sub.channel)

    async def _read(self) -> None:
        assert self._pubsub is not None
        delay = 0.1
        while not self._closed:
            try:
                # A bounded read, so the loop also ends on `_closed`: on the embedded backend a
                # cancellation that lands inside the fake connection's read can be swallowed.
                msg = await self._pubsub.get_message(timeout=READ_TIMEOUT)
            except (RedisError, OSError) as exc:
                log.warning("event subscription lost (%s); reconnecting", exc)
                self._broadcast_recheck()
                # The next get_message reconnects, and redis-py resubscribes every channel.
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            if msg is not None:
                self._dispatch(msg)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "message":
            for sub in self._subs.get((False, msg["channel"]), ()):
                sub.queue.put_nowait(msg["data"])
        elif kind == "pmessage":
            for sub in self._subs.get((True, msg["pattern"]), ()):
                sub.queue.put_nowait(msg["data"])
        elif kind in ("subscribe", "psubscribe"):
            waiting = self._confirm.get((kind == "psubscribe", msg["channel"]))
            if waiting:
                fut = waiting.pop(0)
                if not fut.done():
                    fut.set_result(None)

    def _broadcast_recheck(self) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.queue.put_nowait(RECHECK)

    async def aclose(self) -> None:
        """Stop the reader and close the pub/sub connection."""
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait([self._reader], timeout=READ_TIMEOUT + 1)
            self._reader = None
        if self._pubsub is not None:
            # Typed in newer redis-py, untyped in 5.x: a typed alias satisfies both.
            close: Callable[[], Awaitable[None]] = self._pubsub.aclose
            with contextlib.suppress(RedisError, OSError):
                await close()
            self._pubsub = None


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
    was lost, events may have been missed: `on_recheck` is awaited then, to look again.
    """
    if job_id:
        subscribing = subscriber.subscribe(keys.job_events(job_id))
    else:
        subscribing = subscriber.subscribe(keys.events, pattern=True)
    async with await subscribing as sub:
        replayed: set[bytes] = set()
        if since is not None:
            async for ev, raw in _replay(redis, keys, since, job_id):
                replayed.add(raw)
                yield ev
        while True:
            raw = await sub.get()
            if raw == RECHECK:
                if on_recheck is not None:
                    await on_recheck()
                continue
            if raw in replayed:
                replayed.discard(raw)
                continue
            yield Event.decode(raw)


async def _replay(
    redis: Redis, keys: QueueKeys, since: str, job_id: str | None
) -> AsyncIterator[tuple[Event, bytes]]:
    cursor = since
    while True:
        entries: Any = await redis.xrange(keys.log, f"({cursor}", "+", count=500)
        if not entries:
            return
        for eid, fields in entries:
            raw = fields[b"e"]
            ev = Event.decode(raw, eid.decode())
            if job_id is None or ev.job_id == job_id:
                yield ev, raw
        cursor = entries[-1][0].decode()
