"""Following queues' event logs live: one blocking reader per followed queue, fanned out.

Every transition script writes its event once, to the queue's capped log stream ``rj:{Q}:log``
(docs/architecture.md, "Events"). A Client follows a queue by reading that stream with XREAD
BLOCK: one reader task per queue it follows, however many jobs it waits for, hands each entry
to the :class:`Tail` objects that asked for it (one job's, or the whole queue's).

A tail receives every entry added after its *cursor*, the reader's position when the tail was
opened, so a `wait` that opens its tail before it reads the job's status misses no completion;
opening a tail on a queue already followed takes no round trip. A lost connection loses
nothing (the stream keeps the entries, and the reader goes on from its cursor). A reader that
fell so far behind that the cap trimmed entries it had not read, or whose log was deleted,
puts :data:`RECHECK` on its tails: what they look up then covers what they missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from .connection import COMMAND_TIMEOUT, Backend, Backoff
from .roundtrips import Received
from .serialization import unpackb
from .subscriber import RECHECK

log = logging.getLogger("redisjobs.events")

BLOCK_MS = 1000
"""How long one XREAD blocks: a reader whose last tail closed leaves within this, plus LINGER."""

BATCH = 1000
"""Entries per read. Below the log's cap (10,000, LOG_MAXLEN in _lib.lua), so a reader that
has lost entries to a trim reads a full batch, after which it checks (see LogCursor.lost)."""

LINGER = 5.0
"""Seconds a reader without tails stays: a client that waits for one job after another keeps
its cursor, and opens each tail without a round trip."""

POLL = 0.005
"""Seconds between reads on the embedded backend, whose XREAD does not block."""

MAX_FOLLOWED = 10_000
"""Connections the readers may hold at once: one per followed queue (a dashboard follows every
queue), so a reader never waits for another's blocked read to end."""

NAME = "redisjobs-events"
"""The name of the log readers' connections in CLIENT LIST (async and sync clients alike)."""


_EVENT_FIELDS = (("type", str), ("job_id", str))
_OPTIONAL_FIELDS = (("queue", str), ("attempt", int), ("ts", int))
"""What an event may leave out, as its log entry says it (see :meth:`Event.decode`)."""


def event_job(raw: bytes) -> str | None:
    """The job id of an encoded event, or None when `raw` is no event (anything can write to a
    log: an entry that is not one is read past, so that it stops no follower)."""
    try:
        event = unpackb(raw)
    except Exception:
        return None
    if not isinstance(event, dict):
        return None
    if not all(isinstance(event.get(name), kind) for name, kind in _EVENT_FIELDS):
        return None
    if not all(isinstance(event.get(name, kind()), kind) for name, kind in _OPTIONAL_FIELDS):
        return None
    job_id: str = event["job_id"]
    return job_id


def log_events(
    entries: Sequence[tuple[bytes, dict[bytes, bytes]]],
) -> list[tuple[str, str, bytes]]:
    """The entries of a log read (XRANGE, XREAD) that hold an event, each as its entry id, its
    job id and its encoded event: anything can write to a log, and an entry that is no event is
    read past (see :func:`event_job`)."""
    out = []
    for eid, fields in entries:
        raw = fields.get(b"e")
        job_id = None if raw is None else event_job(raw)
        if raw is not None and job_id is not None:
            out.append((eid.decode(), job_id, raw))
    return out


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream id as a tuple that sorts as Redis orders ids."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class LogCursor:
    """Where a reader is in one log, and how it tells that it lost entries: the stream's
    entries-added count at the cursor. Trims drop the oldest entries only, so the log's first
    entry is entry number ``entries-added - length + 1``; when that is past the next one due,
    entries were trimmed unread. Fewer entries ever added than read: the log was deleted (or
    Redis restarted empty) and written anew. Shared by the async and the sync readers.

    Args:
        info: the log's XINFO STREAM reply, or None when it does not exist (yet).
    """

    def __init__(self, info: Any | None) -> None:
        self.id = "0-0"
        self.added = 0
        if info is not None:
            last = info["last-generated-id"]
            self.id = last.decode() if isinstance(last, bytes) else str(last)
            self.added = int(info["entries-added"])

    def advance(
        self, entries: list[tuple[bytes, dict[bytes, bytes]]]
    ) -> list[tuple[str, str, bytes]]:
        """Move past `entries` (an XREAD's, in order); the events among them (log_events)."""
        out = log_events(entries)
        if entries:
            self.id = entries[-1][0].decode()
            self.added += len(entries)
        return out

    def lost(self, info: Any | None) -> bool:
        """Whether entries after the cursor are gone unread (given the log's XINFO STREAM now);
        the cursor then moves to what is left: the first entry remaining, or the new log's
        start."""
        added, length = (
            (0, 0) if info is None else (int(info["entries-added"]), int(info["length"]))
        )
        if added < self.added:
            self.id, self.added = "0-0", 0
            return True
        if added - length > self.added:
            self.added = added - length
            return True
        return False


async def log_info(redis: Redis, key: str) -> Any | None:
    """XINFO STREAM of log `key`, or None when it does not exist."""
    try:
        return await redis.xinfo_stream(key)
    except ResponseError as exc:
        if "no such key" not in str(exc).lower():
            raise
        return None


class Tail:
    """The log entries of one job (or of a whole queue) from its cursor on, in order; use as
    an async context manager."""

    def __init__(self, reader: _QueueReader, job_id: str | None) -> None:
        self.job_id = job_id
        self.cursor = reader.log.id
        """The log id after which this tail receives every entry (of its job). The reader may
        not have read up to the log's end yet: entries older than the tail can follow."""
        self._reader = reader
        self._entries: asyncio.Queue[Received] = asyncio.Queue()
        self._recheck_queued = False

    async def get(self) -> Received:
        """The next entry, its log id and encoded event, or ``(None, RECHECK)`` when entries
        may have been missed (the reader lost them to the log's cap): look again."""
        entry = await self._entries.get()
        if entry[0] is None:
            self._recheck_queued = False
        return entry

    def put(self, entry_id: str, raw: bytes) -> None:
        """Hand an entry to the tail (the reader does)."""
        self._entries.put_nowait((entry_id, raw))

    def recheck(self) -> None:
        """Queue a RECHECK unless one is queued still unread (that one covers this one)."""
        if not self._recheck_queued:
            self._recheck_queued = True
            self._entries.put_nowait((None, RECHECK))

    async def __aenter__(self) -> Tail:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._reader.remove(self)


class _QueueReader:
    """Reads one queue's log from a cursor and fans the entries out to its tails."""

    def __init__(self, owner: EventLog, key: str) -> None:
        self.key = key
        self.log = LogCursor(None)
        self.done = False  # left its EventLog: a tail wanting this queue needs a new reader
        self._owner = owner
        self._queue_tails: set[Tail] = set()
        self._job_tails: dict[str, set[Tail]] = {}
        self._pinned = False
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._idle_since: float | None = None

    @property
    def tails(self) -> int:
        """How many tails are open."""
        return len(self._queue_tails) + sum(len(s) for s in self._job_tails.values())

    async def pin(self) -> None:
        """Take the log's end as the cursor and start reading, the first time."""
        async with self._lock:
            if self._pinned:
                return
            self.log = LogCursor(await log_info(self._owner.commands, self.key))
            self._pinned = True
            self._task = asyncio.create_task(self._run(), name=f"redisjobs-log:{self.key}")

    def add(self, job_id: str | None) -> Tail:
        """Open a tail from the cursor: it gets every entry read from now on."""
        tail = Tail(self, job_id)
        if job_id is None:
            self._queue_tails.add(tail)
        else:
            self._job_tails.setdefault(job_id, set()).add(tail)
        self._idle_since = None
        return tail

    def remove(self, tail: Tail) -> None:
        """Close `tail`."""
        if tail.job_id is None:
            self._queue_tails.discard(tail)
            return
        tails = self._job_tails.get(tail.job_id)
        if tails is not None:
            tails.discard(tail)
            if not tails:
                del self._job_tails[tail.job_id]

    async def _run(self) -> None:
        await self._follow()
        await self._owner.left()

    async def _follow(self) -> None:
        backoff = Backoff("event log", log)
        check = False  # look for a gap before the next read
        while not self._leaving():
            try:
                if check and self.log.lost(await log_info(self._owner.commands, self.key)):
                    self._recheck_all()
                check = False
                read = await self._read()
            except (RedisError, OSError) as exc:
                # The reply may be lost, never the entries: read on from the cursor once Redis
                # answers. Meanwhile the tails look again, so a wait on a Redis that is gone
                # gets the error its look raises.
                self._recheck_all()
                check = True
                await backoff.failed(exc)
                continue
            backoff.ok()
            check = read >= BATCH
            if not read and not self._owner.can_block:
                await asyncio.sleep(POLL)

    def _leaving(self) -> bool:
        """True, and the reader gone from its EventLog, once it has had no tail for LINGER s."""
        if self.tails or self._owner.closed:
            self._idle_since = None
            return self._owner.closed
        now = asyncio.get_running_loop().time()
        if self._idle_since is None:
            self._idle_since = now
        if now - self._idle_since < LINGER:
            return False
        self.done = True
        self._owner.forget(self)
        return True

    async def _read(self) -> int:
        """Read the entries after the cursor and hand them out; how many were read."""
        block = BLOCK_MS if self._owner.can_block else None
        streams: dict[Any, Any] = {self.key: self.log.id}
        reply: Any = await self._owner.redis.xread(streams, count=BATCH, block=block)
        if not reply:
            return 0
        entries = reply[0][1]
        for entry_id, job_id, raw in self.log.advance(entries):
            for tail in self._queue_tails:
                tail.put(entry_id, raw)
            for tail in self._job_tails.get(job_id, ()):
                tail.put(entry_id, raw)
        return len(entries)

    def _recheck_all(self) -> None:
        for tail in self._queue_tails:
            tail.recheck()
        for tails in self._job_tails.values():
            for tail in tails:
                tail.recheck()

    async def stop(self) -> None:
        """Stop reading (the client is closing)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await asyncio.wait_for(self._task, COMMAND_TIMEOUT)


class EventLog:
    """The event logs a Client follows: one reader per queue, on a client of its own whose
    reads may block.

    Args:
        backend: where the logs are.
        commands: the Client's own client, for the reads that must not block (a log's end).
        home: on a cluster, a key of the queues whose logs it reads (their home).
    """

    def __init__(self, backend: Backend, commands: Redis, home: str | None = None) -> None:
        self.can_block = backend.can_block
        self.commands = commands
        self.closed = False
        self.redis: Redis = backend.client(
            socket_timeout=BLOCK_MS / 1000 + COMMAND_TIMEOUT, retries=0, home=home
        )
        pool: Any = self.redis.connection_pool
        pool.connection_kwargs["client_name"] = NAME
        pool.max_connections = MAX_FOLLOWED
        self._readers: dict[str, _QueueReader] = {}

    async def tail(self, key: str, job_id: str | None = None) -> Tail:
        """A tail of log `key`: its entries of job `job_id` (of every job when None) from now.

        Raises:
            RedisError: the log's end could not be read (a queue not followed yet).
        """
        while True:
            reader = self._readers.get(key)
            if reader is None:
                reader = self._readers[key] = _QueueReader(self, key)
            try:
                await reader.pin()
            except BaseException:
                if not reader.tails:
                    self.forget(reader)
                raise
            if not reader.done:  # it may have left while this pinned
                return reader.add(job_id)

    async def left(self) -> None:
        """A reader left: with none left, close the idle connections (a client that stopped
        following holds none)."""
        if not self._readers and not self.closed:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.connection_pool.disconnect(inuse_connections=False)

    def forget(self, reader: _QueueReader) -> None:
        """Drop `reader` (it left, or never started)."""
        reader.done = True
        if self._readers.get(reader.key) is reader:
            del self._readers[reader.key]

    async def aclose(self) -> None:
        """Stop every reader and close the connection."""
        self.closed = True
        readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            await reader.stop()
        close: Any = self.redis.aclose
        with contextlib.suppress(RedisError, OSError):
            await close()
