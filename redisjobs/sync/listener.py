"""The event logs a sync client waits on: one reader thread per queue, fanned out to threads.

As in :mod:`redisjobs.eventlog`: a queue's events are entries of its log stream, read with
XREAD BLOCK from a cursor by one daemon thread per queue waited on (on a connection of its own,
named :data:`NAME`), whatever the number of waiting threads; each entry goes to the inboxes of
its job. An inbox receives every entry added after the reader's cursor when it was opened, so a
`wait` that opens its inbox before it reads the job's state misses no event. While Redis cannot
be reached the reader retries from its cursor (a restarted Redis brings the entries back), and
waiters keep waiting for up to :data:`DOWN_LIMIT` seconds, then fail. A reader that lost
entries to the log's cap, or whose log was deleted, puts ``RECHECK`` in every inbox.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from ..connection import COMMAND_TIMEOUT, Backend, Backoff
from ..eventlog import BATCH, BLOCK_MS, LINGER, NAME, POLL, LogCursor
from ..roundtrips import Received
from ..subscriber import RECHECK
from .driver import connect

log = logging.getLogger("redisjobs.events")

DOWN_LIMIT = 2 * COMMAND_TIMEOUT
"""Seconds a waiter waits through an unreachable Redis (a restart, a failover) before it fails
with ConnectionFailed."""


class Expired(Exception):
    """A deadline given to :meth:`Inbox.get` passed."""


class Inbox:
    """The events of one job for one waiting thread (use as a context manager)."""

    def __init__(self, reader: _Reader, job_id: str) -> None:
        self.job_id = job_id
        self._reader = reader
        self._messages: deque[Received] = deque()  # appended by the reader, taken by the waiter
        self._ready = threading.Event()
        self._recheck_queued = False

    def put(self, entry_id: str | None, raw: bytes) -> None:
        """Hand an entry to the waiter (reader thread)."""
        self._messages.append((entry_id, raw))
        self._ready.set()

    def recheck(self) -> None:
        """Queue a ``RECHECK`` unless one is queued still unread (that one covers this one)."""
        if not self._recheck_queued:
            self._recheck_queued = True
            self.put(None, RECHECK)

    def get(self, deadline: float | None) -> Received:
        """The next entry, its log id and event, or ``(None, RECHECK)`` when events may have
        been missed.

        Raises:
            Expired: `deadline` (``time.monotonic()``) passed first.
            redis.ConnectionError: Redis has been unreachable for over DOWN_LIMIT s.
        """
        while True:
            if self._messages:
                entry = self._messages.popleft()
                if entry[0] is None:
                    self._recheck_queued = False
                return entry
            self._reader.check()
            # Woken by the reader; at least once a second, to notice an outage that lasts.
            wait = BLOCK_MS / 1000
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    raise Expired
            self._ready.wait(wait)
            self._ready.clear()  # the deque is looked at again before any wait

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self._reader.remove(self)


def _info(client: redis.Redis, key: str) -> Any | None:
    """XINFO STREAM of log `key`, or None when it does not exist."""
    try:
        return client.xinfo_stream(key)
    except ResponseError as exc:
        if "no such key" not in str(exc).lower():
            raise
        return None


class _Reader:
    """One queue's log, read by one thread from a cursor and handed out to inboxes by job."""

    def __init__(self, owner: Listener, key: str) -> None:
        self.key = key
        self.done = False  # left its listener: an inbox wanting this queue needs a new reader
        self._owner = owner
        self._inboxes: dict[str, set[Inbox]] = {}  # under the owner's lock
        self._log: LogCursor | None = None
        self._client: redis.Redis | None = None
        self.thread: threading.Thread | None = None
        self._down_since: float | None = None
        self._last_error: BaseException | None = None

    def pin(self) -> None:
        """Take the log's end as the cursor and start the thread, the first time (the caller
        holds the owner's pin lock)."""
        if self._log is not None:
            return
        client = connect(self._owner.backend, home=self.key)  # on a cluster, the log's home
        client.connection_pool.connection_kwargs["client_name"] = NAME
        try:
            self._log = LogCursor(_info(client, self.key))
        except BaseException:
            client.close()
            raise
        self._client = client
        name = f"redisjobs-events:{self.key}"
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def add(self, job_id: str) -> Inbox:
        """An inbox of `job_id`'s events from the cursor on (under the owner's lock)."""
        inbox = Inbox(self, job_id)
        self._inboxes.setdefault(job_id, set()).add(inbox)
        return inbox

    def remove(self, inbox: Inbox) -> None:
        """Close `inbox`."""
        with self._owner.lock:
            inboxes = self._inboxes.get(inbox.job_id)
            if inboxes is not None:
                inboxes.discard(inbox)
                if not inboxes:
                    del self._inboxes[inbox.job_id]

    def check(self) -> None:
        """Raise when Redis has been unreachable for over DOWN_LIMIT seconds."""
        since = self._down_since
        if since is not None and time.monotonic() - since > DOWN_LIMIT:
            raise RedisConnectionError(
                f"event log unreadable for over {DOWN_LIMIT:g} s: {self._last_error}"
            )

    def _run(self) -> None:
        assert self._client is not None and self._log is not None
        backoff = Backoff("event log", log)
        check, idle_since = False, None
        try:
            while not self._owner.closing.is_set():
                if self._leaving(idle_since):
                    return
                if self._inboxes:
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                try:
                    if check and self._log.lost(_info(self._client, self.key)):
                        self._recheck_all()
                    check = False
                    read = self._read()
                except Exception as exc:  # whatever broke, read on from the cursor
                    self._down(exc)
                    check = True
                    self._owner.closing.wait(backoff.pause(exc))
                    continue
                backoff.ok()
                self._down_since = None
                check = read >= BATCH
                if not read and not self._owner.backend.can_block:
                    self._owner.closing.wait(POLL)
        finally:
            self._client.close()

    def _leaving(self, idle_since: float | None) -> bool:
        """True, and the reader gone from its listener, once it has had no inbox for LINGER s."""
        if idle_since is None or time.monotonic() - idle_since < LINGER:
            return False
        with self._owner.lock:
            if self._inboxes:
                return False
            self._owner.forget(self)
        return True

    def _read(self) -> int:
        assert self._client is not None and self._log is not None
        block = BLOCK_MS if self._owner.backend.can_block else None
        streams: dict[Any, Any] = {self.key: self._log.id}
        reply: Any = self._client.xread(streams, count=BATCH, block=block)
        if not reply:
            return 0
        entries = reply[0][1]
        for entry_id, job_id, raw in self._log.advance(entries):
            with self._owner.lock:
                inboxes = tuple(self._inboxes.get(job_id, ()))
            for inbox in inboxes:
                inbox.put(entry_id, raw)
        return len(entries)

    def _down(self, exc: BaseException) -> None:
        log.debug("event log %s unreadable: %s", self.key, exc)
        if self._down_since is None:
            self._down_since = time.monotonic()
        self._last_error = exc

    def _recheck_all(self) -> None:
        with self._owner.lock:
            inboxes = [inbox for subs in self._inboxes.values() for inbox in subs]
        for inbox in inboxes:
            inbox.recheck()


class Listener:
    """The queues' event logs a sync client waits on, thread-safe.

    Args:
        backend: where the logs are (each reader thread connects to it on its own).
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.lock = threading.Lock()  # the readers and their inboxes
        self.closing = threading.Event()
        self._pinning = threading.Lock()  # one cursor read at a time, outside `lock`
        self._readers: dict[str, _Reader] = {}

    def subscribe(self, key: str, job_id: str) -> Inbox:
        """An inbox of job `job_id`'s events in log `key`, from now on.

        Raises:
            redis.RedisError: the log's end could not be read (a queue not waited on yet).
        """
        while True:
            with self.lock:
                reader = self._readers.get(key)
                if reader is None:
                    reader = self._readers[key] = _Reader(self, key)
            with self._pinning:
                try:
                    reader.pin()
                except BaseException:
                    with self.lock:
                        if not reader._inboxes:
                            self.forget(reader)
                    raise
            with self.lock:
                if not reader.done:  # it may have left while this pinned
                    return reader.add(job_id)

    def forget(self, reader: _Reader) -> None:
        """Drop `reader` (under the lock)."""
        reader.done = True
        if self._readers.get(reader.key) is reader:
            del self._readers[reader.key]

    def close(self) -> None:
        """Stop the reader threads (each closes its connection once its read returns)."""
        self.closing.set()
        with self.lock:
            threads = [r.thread for r in self._readers.values() if r.thread is not None]
        for thread in threads:
            thread.join(BLOCK_MS / 1000 + COMMAND_TIMEOUT)
