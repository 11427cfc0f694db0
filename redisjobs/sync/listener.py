"""One pub/sub connection per sync client, read by one daemon thread, fanned out to threads.

redis-py's sync ``PubSub`` is not safe to share between threads (subscribing from one thread
while another reads, or reconnects, races on its state), so it is not used: the listener owns a
plain connection with the pool's settings. Only the reader thread connects, reads and
reconnects; other threads send SUBSCRIBE / UNSUBSCRIBE / PING on its socket under a lock,
which the reader also holds while it reconnects and resubscribes, so no send can slip in
between a handshake and its resubscription.

As in :mod:`redisjobs.subscriber`: `subscribe` returns once Redis has answered a PING sent
after the SUBSCRIBE (so a `wait` that reads a job's state afterwards misses no event), and
after every reconnect, once the resubscription is answered, every inbox gets ``RECHECK``. A
connection silent for KEEPALIVE seconds is PINGed; one that does not answer within
COMMAND_TIMEOUT is replaced. While the connection is down, waiters keep waiting (a restarted
Redis brings their results back) for up to :data:`DOWN_LIMIT` seconds, then fail.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..connection import COMMAND_TIMEOUT, Backoff
from ..subscriber import KEEPALIVE, READ_TIMEOUT, RECHECK, file, unfile

log = logging.getLogger("redisjobs.events")

DOWN_LIMIT = 2 * COMMAND_TIMEOUT
"""Seconds a waiter waits through a lost pub/sub connection (a Redis restart, a failover)
before it fails with ConnectionFailed."""


NAME = "redisjobs-sync-events"
"""The connection's name in CLIENT LIST."""


class Expired(Exception):
    """A deadline given to :meth:`Inbox.get` or :meth:`Listener.subscribe` passed."""


class Inbox:
    """The messages of one channel for one waiting thread (use as a context manager)."""

    def __init__(self, listener: Listener, channel: bytes) -> None:
        self.channel = channel
        self._listener = listener
        self._messages: deque[bytes] = deque()  # appended by the reader, taken by the waiter
        self._ready = threading.Event()
        self._recheck_queued = False

    def put(self, raw: bytes) -> None:
        """Hand a message to the waiter (reader thread)."""
        self._messages.append(raw)
        self._ready.set()

    def recheck(self) -> None:
        """Queue a ``RECHECK`` unless one is queued still unread (that one covers this one)."""
        if not self._recheck_queued:
            self._recheck_queued = True
            self.put(RECHECK)

    def get(self, deadline: float | None) -> bytes:
        """The next message, or ``RECHECK`` after a reconnect.

        Raises:
            Expired: `deadline` (``time.monotonic()``) passed first.
            redis.ConnectionError: the pub/sub connection has been down over DOWN_LIMIT s.
        """
        while True:
            if self._messages:
                raw = self._messages.popleft()
                if raw == RECHECK:
                    self._recheck_queued = False
                return raw
            self._listener.check()
            # Woken by the reader; at least once a second, to notice an outage that lasts.
            wait = READ_TIMEOUT
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    raise Expired
            self._ready.wait(wait)
            self._ready.clear()  # the deque is looked at again before any wait

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.remove(self)


class _Barrier:
    """A subscription's PING: set once Redis answered it, or a resync covered it."""

    def __init__(self, generation: int) -> None:
        self.generation = generation  # the connects seen when it was sent
        self.done = threading.Event()
        self.error: BaseException | None = None


class Listener:
    """One pub/sub connection fanned out to many :class:`Inbox` objects, thread-safe.

    Args:
        client: the sync client whose pool settings the connection takes.
    """

    def __init__(self, client: redis.Redis) -> None:
        pool = client.connection_pool
        settings = {**pool.connection_kwargs, "client_name": NAME}
        self._conn: Any = pool.connection_class(**settings)  # its own, outside the pool
        self._lock = threading.Lock()  # sends, (re)connects, and the two dicts below
        self._subs: dict[bytes, set[Inbox]] = {}
        self._barriers: dict[bytes, _Barrier] = {}
        self._tokens = itertools.count()
        self._generation = 0  # connects so far
        self._resync: bytes | None = None  # the PING token of the resync under way
        self._thread: threading.Thread | None = None
        self._connecting = False  # the reader is in a handshake: nothing else may be sent
        self._closing = threading.Event()
        self._heard = time.monotonic()  # when the connection last said anything
        self._pinged: float | None = None  # when the keepalive PING under way was sent
        self._down_since: float | None = None  # when the connection was lost, while it is
        self._last_error: BaseException | None = None

    def subscribe(self, channel: str, deadline: float | None = None) -> Inbox:
        """An inbox of `channel`, once Redis has confirmed the subscription.

        Raises:
            Expired: `deadline` passed first.
            redis.RedisError: not confirmed within COMMAND_TIMEOUT, or Redis is unreachable.
        """
        inbox = Inbox(self, channel.encode())
        with self._lock:
            self._start()
            first = file(self._subs, inbox.channel, inbox)
            token = b"rj-sync:%d" % next(self._tokens)
            barrier = self._barriers[token] = _Barrier(self._generation)
            self._send(*([(b"SUBSCRIBE", inbox.channel)] if first else []), (b"PING", token))
        try:
            self._confirmed(barrier, deadline)
        except BaseException:
            self.remove(inbox)
            raise
        finally:
            with self._lock:
                self._barriers.pop(token, None)
        return inbox

    @staticmethod
    def _confirmed(barrier: _Barrier, deadline: float | None) -> None:
        limit = COMMAND_TIMEOUT
        if deadline is not None:
            limit = min(limit, max(deadline - time.monotonic(), 0.0))
        if not barrier.done.wait(limit):
            if limit < COMMAND_TIMEOUT:
                raise Expired
            raise RedisTimeoutError(
                f"Redis did not confirm a subscription within {COMMAND_TIMEOUT:g} s"
            )
        if barrier.error is not None:
            raise RedisConnectionError(str(barrier.error))

    def remove(self, inbox: Inbox) -> None:
        """Detach `inbox`, unsubscribing its channel when nobody else listens."""
        with self._lock:
            if unfile(self._subs, inbox.channel, inbox):
                self._send((b"UNSUBSCRIBE", inbox.channel))

    def check(self) -> None:
        """Raise when the connection has been down for over DOWN_LIMIT seconds."""
        since = self._down_since
        if since is not None and time.monotonic() - since > DOWN_LIMIT:
            raise RedisConnectionError(
                f"event subscription lost for over {DOWN_LIMIT:g} s: {self._last_error}"
            )

    def close(self) -> None:
        """Stop the reader and close the connection."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(READ_TIMEOUT + COMMAND_TIMEOUT)
        self._conn.disconnect()

    # -- under the lock -------------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._read, name="redisjobs-pubsub", daemon=True)
            self._thread.start()

    def _send(self, *commands: tuple[bytes, ...]) -> None:
        """Send `commands`, unless the connection is down: then the reader's reconnect
        resubscribes what is filed, and its resync answers the waiting barriers."""
        sock = self._conn._sock
        if sock is None or self._connecting or not commands:
            return
        try:
            # Straight to the socket: the connection's own send would disconnect it (from this
            # thread) on an error; the reader finds a broken connection by itself.
            for packed in self._conn.pack_commands(commands):
                sock.sendall(packed)
        except OSError as exc:
            log.debug("event subscription: send failed (%s)", exc)

    def _resubscribe(self) -> None:
        """After a connect: resubscribe everything filed and send the resync PING."""
        self._generation += 1
        self._resync = b"rj-resync:%d" % self._generation
        self._heard, self._pinged = time.monotonic(), None
        commands = [(b"SUBSCRIBE", *self._subs)] if self._subs else []
        self._send(*commands, (b"PING", self._resync))

    # -- the reader thread ----------------------------------------------------------------------

    def _read(self) -> None:
        backoff = Backoff("event subscription", log)
        while not self._closing.is_set():
            try:
                if self._conn._sock is None:
                    self._reconnect()
                reply = self._read_one()
            except Exception as exc:  # whatever broke, a fresh connection mends it
                self._closing.wait(self._lost(exc, backoff))
                continue
            backoff.ok()
            if reply is not None:
                self._dispatch(reply)

    def _read_one(self) -> Any:
        """The next reply, or None after READ_TIMEOUT s of silence (then maybe a keepalive)."""
        if self._conn.can_read(timeout=READ_TIMEOUT):
            # push_request: else redis-py takes a subscribe reply for a push and drops it
            reply = self._conn.read_response(disconnect_on_error=False, push_request=True)
            self._heard, self._pinged = time.monotonic(), None
            return reply
        now = time.monotonic()
        if self._pinged is not None:
            if now - self._pinged > COMMAND_TIMEOUT:
                raise RedisTimeoutError(f"no answer to a PING within {COMMAND_TIMEOUT:g} s")
        elif now - self._heard > KEEPALIVE:
            self._pinged = now
            with self._lock:
                self._send((b"PING", b"rj-alive"))
        return None

    def _reconnect(self) -> None:
        """Connect; when Redis cannot be reached, subscribes still waiting for a confirmation
        fail now (a wait that is already subscribed waits on).

        Not under the lock, which a frozen Redis would hold for a whole handshake timeout:
        meanwhile subscribes file their channel and send nothing, and the resubscription that
        follows the handshake (under the lock) covers them.
        """
        with self._lock:
            self._connecting = True
        try:
            self._conn.connect()
        except Exception as exc:
            with self._lock:
                self._connecting = False
                for barrier in self._barriers.values():
                    barrier.error = exc
                    barrier.done.set()
            raise
        with self._lock:
            self._connecting = False
            self._resubscribe()

    def _lost(self, exc: BaseException, backoff: Backoff) -> float:
        """The connection broke or could not be made: drop it, note since when, and return the
        seconds to wait before the next connect."""
        log.debug("event subscription lost: %s", exc)
        with self._lock:
            self._conn.disconnect()
            if self._down_since is None:
                # A frozen Redis went silent when the unanswered PING was sent, not now.
                self._down_since = self._pinged or time.monotonic()
            self._last_error = exc
        if not backoff.failures:  # a blip: a fresh connection may mend it at once
            backoff.record(exc)
            return 0.0
        return backoff.pause(exc)  # lost again before anything was read: do not spin

    def _dispatch(self, reply: Any) -> None:
        if isinstance(reply, bytes):  # a PING answered outside subscribed mode
            self._answered(reply)
        elif reply[0] == b"message":
            with self._lock:
                inboxes = tuple(self._subs.get(reply[1], ()))
            for inbox in inboxes:
                inbox.put(reply[2])
        elif reply[0] == b"pong":
            self._answered(reply[1])

    def _answered(self, token: bytes) -> None:
        """A PING came back: resolve what it proves."""
        with self._lock:
            if token != self._resync:
                barrier = self._barriers.get(token)
                if barrier is not None:
                    barrier.done.set()
                return
            self._resync = self._down_since = None
            for barrier in self._barriers.values():
                if barrier.generation < self._generation:  # sent before this connect
                    barrier.done.set()
            inboxes = [inbox for subs in self._subs.values() for inbox in subs]
        for inbox in inboxes:
            inbox.recheck()
