"""One multiplexed pub/sub connection per worker session, fanned out to in-process listeners.

A pub/sub connection cannot run other commands, so a worker opens exactly one
(:class:`Subscriber`) for its queues' ``control`` channels and fans its messages out to
:class:`Subscription` objects (job events do not travel on pub/sub: see
:mod:`redisjobs.eventlog`). `subscribe` returns only once Redis has confirmed the subscription,
so a message published after it returns is received. After every reconnect, once the
resubscription is confirmed, every listener gets :data:`RECHECK`: what it reads then covers what
was published while the connection was down. A connection that stays silent is PINGed, so a
Redis that froze becomes an error rather than a wait without end.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .connection import COMMAND_TIMEOUT, Backoff

log = logging.getLogger("redisjobs.events")

READ_TIMEOUT = 1.0
KEEPALIVE = 5.0
"""Seconds of silence on the pub/sub connection after which it is PINGed: a Redis that froze
(SIGSTOPped, wedged) keeps the socket open, so only a missing answer tells."""

RECHECK = b""
"""Put on every listener once the pub/sub connection was lost and its subscriptions are back:
events may have been missed meanwhile, so look again."""


class Subscription:
    """Messages of one channel, in order; use as an async context manager."""

    def __init__(self, owner: Subscriber, channel: bytes) -> None:
        self.channel = channel
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._owner = owner
        self._recheck_queued = False

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
    channel and sends a PING; only once Redis answers that PING, so that every
    later event reaches the listeners, is :data:`RECHECK` put on every listener. What a listener
    reads after taking the RECHECK cannot miss anything.

    Only the reader task connects, holding the lock that subscribing and unsubscribing hold:
    redis-py's own retry (which reconnects inside a read or a send) is off on this connection,
    so no command can slip in between a handshake and its resync.
    """

    def __init__(self, redis: Redis, *, sharded: bool = False) -> None:
        self._redis = redis
        # A cluster's channels are sharded (SSUBSCRIBE on the node serving their slot): the
        # scripts publish them with SPUBLISH (redisjobs.scripts.library).
        self._verbs = (
            (b"SSUBSCRIBE", b"SUNSUBSCRIBE") if sharded else (b"SUBSCRIBE", b"UNSUBSCRIBE")
        )
        self._pubsub: PubSub | None = None
        self._conn: Any = None  # the pub/sub connection (untyped in redis-py)
        self._retry: Any = None  # its retry policy, restored before it goes back to the pool
        self._subs: dict[bytes, set[Subscription]] = {}
        self._barriers: dict[bytes, _Barrier] = {}
        self._tokens = itertools.count()
        self._generation = 0  # connects since the first
        self._synced = 0  # the connect whose resync Redis has answered
        self._resync: bytes | None = None  # the PING token of the resync under way
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._heard = time.monotonic()  # when the connection last said anything
        self._pinged: float | None = None  # when the keepalive PING under way was sent

    async def subscribe(self, channel: str) -> Subscription:
        """Subscribe to `channel`; returns once Redis has
        confirmed the subscription.

        Raises:
            RedisError: Redis cannot be reached.
        """
        sub = Subscription(self, channel.encode())
        async with self._lock:
            await self._open()
            first = file(self._subs, sub.channel, sub)
            # Made once the key is filed: any reconnect from here on resubscribes it before its
            # resync PING, which then answers this barrier too.
            token = b"rj-sync:%d" % next(self._tokens)
            barrier = self._barriers[token] = _Barrier(
                asyncio.get_running_loop().create_future(), self._generation
            )
            subscribe = [(self._verbs[0], sub.channel)] if first else []
            await self._send(*subscribe, (b"PING", token))
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await barrier.future
        except TimeoutError:
            await self.remove(sub)
            raise RedisTimeoutError(
                f"Redis did not confirm a subscription within {COMMAND_TIMEOUT:g} s"
            ) from None
        except BaseException:
            await self.remove(sub)
            raise
        finally:
            self._barriers.pop(token, None)
        return sub

    async def remove(self, sub: Subscription) -> None:
        """Detach `sub`, unsubscribing the channel when nobody else listens."""
        async with self._lock:
            if unfile(self._subs, sub.channel, sub):
                await self._send((self._verbs[1], sub.channel))

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
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        try:
            await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        except (RedisError, OSError) as exc:  # the connection is closed: the reader reconnects
            log.debug("event subscription: send failed (%s)", exc)
        # On Python 3.11, the asyncio.wait_for inside redis-py's send returns normally when a
        # cancel lands as the send completes, swallowing it; the task still counts the request.
        # Honour it: a subscriber cancelled while subscribing would otherwise wait forever.
        if task is not None and task.cancelling() > cancels:
            raise asyncio.CancelledError

    async def _resubscribe(self, conn: Any) -> None:
        """The connect callback: resubscribe everything filed, then the resync PING."""
        self._generation += 1
        self._resync = b"rj-resync:%d" % self._generation
        self._heard, self._pinged = time.monotonic(), None
        commands = [(self._verbs[0], *self._subs)] if self._subs else []
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
                    # Redis is down or frozen: waiting subscribes fail, and every listener looks
                    # again now (a look that fails tells its caller Redis is gone; one that
                    # succeeds is repeated after the resync anyway).
                    self._fail_waiting(exc)
                    self._recheck_all()
                    await backoff.failed(exc)
                    continue
            try:
                # A bounded read, so the loop also ends on `_closed`: on the embedded backend a
                # cancellation that lands inside the fake connection's read can be swallowed.
                msg = await self._pubsub.get_message(timeout=READ_TIMEOUT)
                await self._keepalive(msg is not None)
            except Exception as exc:  # whatever broke the read, a fresh connection mends it
                with contextlib.suppress(Exception):
                    await self._conn.disconnect(nowait=True)
                if backoff.failures:  # lost again before anything was read: do not spin
                    await backoff.failed(exc)
                else:
                    backoff.record(exc)
                continue
            backoff.ok()
            if msg is not None and not self._dispatch(msg):
                # the server dropped a channel still listened to (its slot moved to another
                # node): a new connection subscribes it where it lives now
                await self._conn.disconnect(nowait=True)

    async def _keepalive(self, heard: bool) -> None:
        """PING the connection after KEEPALIVE s of silence; raise when that PING has gone
        unanswered for COMMAND_TIMEOUT, so that the reader replaces the connection (and its
        listeners recheck, and a frozen Redis turns into errors rather than waits)."""
        now = time.monotonic()
        if heard:
            self._heard, self._pinged = now, None
        elif self._pinged is not None:
            if now - self._pinged > COMMAND_TIMEOUT:
                raise RedisTimeoutError(f"no answer to a PING within {COMMAND_TIMEOUT:g} s")
        elif now - self._heard > KEEPALIVE:
            self._pinged = now
            async with self._lock:
                await self._send((b"PING", b"rj-alive"))

    def _dispatch(self, msg: dict[str, Any]) -> bool:
        """Hand `msg` out; False when it says a channel listened to is no longer subscribed."""
        kind = msg["type"]
        if kind in ("message", "smessage"):
            for sub in self._subs.get(msg["channel"], ()):
                sub.queue.put_nowait(msg["data"])
        elif kind == "pong":
            self._answered(msg["data"])
        elif kind == "sunsubscribe" and msg["channel"] in self._subs:
            return False
        return True

    def _answered(self, token: bytes) -> None:
        """A PING came back: resolve what it proves."""
        if token == self._resync:
            self._resync = None
            self._synced = self._generation
            for barrier in self._barriers.values():
                if barrier.generation < self._synced or barrier.answered:
                    _resolve(barrier.future)
            self._recheck_all()
            return
        own = self._barriers.get(token)
        if own is None:
            return
        if self._synced == self._generation:
            _resolve(own.future)
        else:  # answered ahead of a resync under way: its key may not be resubscribed yet
            own.answered = True

    def _recheck_all(self) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.recheck()

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


_K = TypeVar("_K")
_L = TypeVar("_L")


def file(subs: dict[_K, set[_L]], key: _K, listener: _L) -> bool:
    """File `listener` under `key`; True when it is the first (the key must be subscribed)."""
    listeners = subs.setdefault(key, set())
    listeners.add(listener)
    return len(listeners) == 1


def unfile(subs: dict[_K, set[_L]], key: _K, listener: _L) -> bool:
    """Take `listener` from under `key`; True when it was the last (unsubscribe the key)."""
    listeners = subs.get(key)
    if listeners is None or listener not in listeners:
        return False
    listeners.discard(listener)
    if listeners:
        return False
    del subs[key]
    return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
