"""Job events: the Event type, and one multiplexed pub/sub connection per Client.

Every transition script publishes its event once, on the job's channel, and appends it to the capped
log stream (DESIGN.md, "Events"); a whole queue is followed through the pattern of its job channels.
A pub/sub connection cannot run other commands, so a Client opens exactly one and fans its messages
out to in-process listeners (:class:`Subscriber`). `subscribe` returns only once Redis has confirmed
the subscription, which is what lets `wait` subscribe *before* it reads a job's status and never
miss a fast completion. After every reconnect, once the resubscription is confirmed, every listener
gets :data:`RECHECK`: what it reads then covers what was published while the connection was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .connection import Backoff
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
"""Put on every listener once the pub/sub connection was lost and its subscriptions are back:
events may have been missed meanwhile, so look again."""


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
        self._recheck_queued = False

    @property
    def key(self) -> tuple[bool, bytes]:
        """What the subscriber files it under: (is a pattern, name)."""
        return self.pattern, self.channel

    async def get(self) -> bytes:
        """The next raw message, or :data:`RECHECK` after a reconnect."""
        raw = await self.queue.get()
        if raw == RECHECK:
            self._recheck_queued = False
        return raw

    def recheck(self) -> None:
        """Queue a :data:`RECHECK`, unless one is queued still unread: that one is read later,
        so a look taken then already sees everything the second would have asked for."""
        if not self._recheck_queued:
            self._recheck_queued = True
            self.queue.put_nowait(RECHECK)

    async def close(self) -> None:
        """Stop receiving (unsubscribes when this was the channel's last listener)."""
        await self._owner.remove(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@dataclass(slots=True)
class _Barrier:
    """A PING on the pub/sub connection: once answered, every command sent before it is done."""

    future: asyncio.Future[None]
    generation: int  # the connects seen when it was made
    answered: bool = False


class Subscriber:
    """One pub/sub connection fanned out to many :class:`Subscription` objects.

    Events published while the connection is down are lost, so every reconnect ends in a
    *resync*: a connect callback (run by redis-py inside every connect) resubscribes every
    channel and pattern and sends a PING; only once Redis answers that PING, so that every
    later event reaches the listeners, is :data:`RECHECK` put on every listener. What a listener
    reads after taking the RECHECK cannot miss anything.

    Only the reader task connects, holding the lock that subscribing and unsubscribing hold:
    redis-py's own retry (which reconnects inside a read or a send) is off on this connection,
    so no command can slip in between a handshake and its resync.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pubsub: PubSub | None = None
        self._conn: Any = None  # the pub/sub connection (untyped in redis-py)
        self._retry: Any = None  # its retry policy, restored before it goes back to the pool
        self._subs: dict[tuple[bool, bytes], set[Subscription]] = {}
        self._barriers: dict[bytes, _Barrier] = {}
        self._tokens = itertools.count()
        self._generation = 0  # connects since the first
        self._synced = 0  # the connect whose resync Redis has answered
        self._resync: bytes | None = None  # the PING token of the resync under way
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def subscribe(self, channel: str, *, pattern: bool = False) -> Subscription:
        """Subscribe to `channel` (a PSUBSCRIBE pattern when `pattern`); returns once Redis has
        confirmed the subscription.

        Raises:
            RedisError: Redis cannot be reached.
        """
        sub = Subscription(self, channel.encode(), pattern)
        async with self._lock:
            await self._open()
            listeners = self._subs.setdefault(sub.key, set())
            first = not listeners
            listeners.add(sub)
            # Made once the key is filed: any reconnect from here on resubscribes it before its
            # resync PING, which then answers this barrier too.
            token = b"rj-sync:%d" % next(self._tokens)
            barrier = self._barriers[token] = _Barrier(
                asyncio.get_running_loop().create_future(), self._generation
            )
            verb = b"PSUBSCRIBE" if pattern else b"SUBSCRIBE"
            await self._send(*([(verb, sub.channel)] if first else []), (b"PING", token))
        try:
            await barrier.future
        except BaseException:
            await self.remove(sub)
            raise
        finally:
            self._barriers.pop(token, None)
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
                await self._send((b"PUNSUBSCRIBE" if sub.pattern else b"UNSUBSCRIBE", sub.channel))

    async def _open(self) -> None:
        """Connect the pub/sub connection and start the reader, the first time."""
        if self._pubsub is not None:
            return
        pubsub = self._redis.pubsub()
        connect: Callable[[], Awaitable[None]] = pubsub.connect  # untyped in redis-py
        try:
            await connect()
        except BaseException:
            await self._close_pubsub(pubsub)
            raise
        conn: Any = pubsub.connection
        self._conn = conn
        self._retry, conn.retry = conn.retry, Retry(NoBackoff(), 0, supported_errors=())
        conn.register_connect_callback(self._resubscribe)
        self._pubsub = pubsub
        self._reader = asyncio.create_task(self._read(), name="redisjobs-pubsub")

    async def _send(self, *commands: tuple[bytes, ...]) -> None:
        """Send `commands` (under the lock), unless the connection is down: then the reader's
        reconnect resubscribes what is filed, and its resync answers the waiting barriers."""
        conn = self._conn
        if not conn.is_connected:
            return
        try:
            await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        except (RedisError, OSError) as exc:  # the connection is closed: the reader reconnects
            log.debug("event subscription: send failed (%s)", exc)

    async def _resubscribe(self, conn: Any) -> None:
        """The connect callback: resubscribe everything filed, then the resync PING."""
        self._generation += 1
        self._resync = b"rj-resync:%d" % self._generation
        channels = [name for pattern, name in self._subs if not pattern]
        patterns = [name for pattern, name in self._subs if pattern]
        commands = [(b"SUBSCRIBE", *channels)] if channels else []
        commands += [(b"PSUBSCRIBE", *patterns)] if patterns else []
        commands.append((b"PING", self._resync))
        await conn.send_packed_command(conn.pack_commands(commands), check_health=False)

    async def _read(self) -> None:
        assert self._pubsub is not None
        backoff = Backoff("event subscription", log)
        while not self._closed:
            if not self._conn.is_connected:
                try:
                    async with self._lock:  # no subscribe sends between handshake and resync
                        await self._conn.connect()
                except (RedisError, OSError) as exc:
                    self._fail_waiting(exc)
                    await backoff.failed(exc)
                    continue
            try:
                # A bounded read, so the loop also ends on `_closed`: on the embedded backend a
                # cancellation that lands inside the fake connection's read can be swallowed.
                msg = await self._pubsub.get_message(timeout=READ_TIMEOUT)
            except Exception as exc:  # whatever broke the read, a fresh connection mends it
                with contextlib.suppress(Exception):
                    await self._conn.disconnect(nowait=True)
                if backoff.failures:  # lost again before anything was read: do not spin
                    await backoff.failed(exc)
                else:
                    backoff.record(exc)
                continue
            backoff.ok()
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
        elif kind == "pong":
            self._answered(msg["data"])

    def _answered(self, token: bytes) -> None:
        """A PING came back: resolve what it proves."""
        if token == self._resync:
            self._resync = None
            self._synced = self._generation
            for barrier in self._barriers.values():
                if barrier.generation < self._synced or barrier.answered:
                    _resolve(barrier.future)
            for subs in self._subs.values():
                for sub in subs:
                    sub.recheck()
            return
        own = self._barriers.get(token)
        if own is None:
            return
        if self._synced == self._generation:
            _resolve(own.future)
        else:  # answered ahead of a resync under way: its key may not be resubscribed yet
            own.answered = True

    def _fail_waiting(self, exc: BaseException) -> None:
        """Redis cannot be reached: subscribers still waiting for a confirmation get `exc`."""
        for barrier in self._barriers.values():
            if not barrier.future.done():
                barrier.future.set_exception(exc)

    async def aclose(self) -> None:
        """Stop the reader and close the pub/sub connection."""
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait([self._reader], timeout=READ_TIMEOUT + 1)
            self._reader = None
        if self._pubsub is not None:
            self._conn.deregister_connect_callback(self._resubscribe)
            self._conn.retry = self._retry  # the connection goes back to the pool
            await self._close_pubsub(self._pubsub)
            self._pubsub = self._conn = None

    @staticmethod
    async def _close_pubsub(pubsub: PubSub) -> None:
        # Typed in newer redis-py, untyped in 5.x: a typed alias satisfies both.
        close: Callable[[], Awaitable[None]] = pubsub.aclose
        with contextlib.suppress(RedisError, OSError):
            await close()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


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
