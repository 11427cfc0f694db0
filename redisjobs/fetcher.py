"""The fetcher: one per worker, it reads the queue's stream and leases what it read.

XREADGROUP asks for as many entries as the worker has free slots, blocking on Redis (with a
socket timeout above its BLOCK) and polling, jittered, on the embedded backend, which cannot
block; there a local wake-up (an enqueue or promote in this process) ends the poll early. The
entries are leased with one `start` call, which is safe to re-send after a lost reply.

A `start` that reads entries itself (the busy path), or a `reclaim`, cannot simply be re-sent:
the lost call may have leased jobs to this worker, and the re-sent one would read others. So
after such a failure the fetcher first re-offers every entry in its own PEL to `start`, which
returns the jobs already leased to this worker under their existing lease (the worker runs each
lease once) and leases what was read but never started. Without it those jobs would wait for
lease_ttl and count as a crash of a worker that never died.

On a paused queue `start` leases nothing new and says so; the fetcher then waits for `resume`
on the control channel (the worker's control loop calls :meth:`Fetcher.resume`), and looks
again every PAUSE_RECHECK seconds in case pub/sub lost the message.

A queue of a worker over several queues leases only into the slots the worker's arbiter
grants it (its slots are a :class:`~redisjobs.arbiter.Lane`): it asks for slots while it may
have work, gives back what a fetch did not use, and waits for work holding none, with a
blocking XREAD instead of XREADGROUP (see :meth:`Fetcher._await_work`).

Replies that say Redis cannot serve writes *here and now* (a failover made it a replica, it is
loading, a cluster is moving slots) are outages like a lost connection: the fetcher waits and
retries rather than stopping the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from .connection import Backoff, ensure_group, is_transient
from .keys import GROUP, QueueKeys
from .scripts import Delivery, Scripts, Started
from .slots import Slots

log = logging.getLogger("redisjobs.worker")

BLOCK_MS = 2000

MAX_FETCH = 64
"""Jobs leased per `start` (or `reclaim`) call at most, so no script blocks Redis for long."""

_GROUP = GROUP.encode()
# What Redis answers when the stream or its group is gone (a forced obliterate under a live
# worker): XREADGROUP says NOGROUP, XINFO "no such key", the embedded backend's XREADGROUP
# that "the XGROUP subcommand requires the key to exist".
_GONE = ("NOGROUP", "no such key", "requires the key to exist")

KEYS_WAIT_READ = 0.25
"""Seconds a wait for a key's limit lasts at least to be spent in a blocking read, so that a job
of another key ends it (a shorter one just sleeps: it delays such a job by that much at most)."""

HZ_SLACK = 0.12
"""Seconds a blocking read may end after its BLOCK (Redis checks timeouts 10 times a second)."""

PAUSE_RECHECK = 5.0
"""Seconds between a paused fetcher's looks at its queue without a `resume` message (pub/sub
loses what is published while its connection is down)."""


class Fetcher:
    """Feeds a worker with leased jobs.

    Args:
        reader: a connection of its own for the blocking read.
        scripts: the scripts.
        keys: the queue.
        worker_id: the consumer name.
        can_block: whether XREADGROUP BLOCK blocks (False on the embedded backend).
        poll_interval: seconds between polls where it cannot block.
        slots: the worker's slots: it leases as many jobs as are free, waits on their wake-up
            event when none is (or while it polls), and stops once they are closed.
        launch: starts a leased job.
        reclaim_first: called before each fetch; True when it gave the free slots to jobs of
            dead workers instead (they come before new entries).
    """

    def __init__(
        self,
        reader: Redis,
        scripts: Scripts,
        keys: QueueKeys,
        worker_id: str,
        *,
        can_block: bool,
        poll_interval: float,
        slots: Slots,
        launch: Callable[[Delivery], None],
        reclaim_first: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self._reader = reader
        self._scripts = scripts
        self._keys = keys
        self._worker_id = worker_id
        self._block_ms = BLOCK_MS if can_block else 0
        self._can_block = can_block
        self._poll_interval = poll_interval
        self._slots = slots
        self._launch = launch
        self._reclaim_first = reclaim_first
        self.blocked = False
        self.paused = False  # the last `start` found the queue paused
        self._throttle_ms: int | None = None  # how long the last `start` said a limit holds
        self._throttle_by_keys = False  # ... and only its keys' limits (see _wait_throttled)
        self._recover = False
        self._resumed = asyncio.Event()
        self._since: bytes | None = None  # the group's last-delivered id, while idle (lanes)
        self.quieted = False
        self._read: asyncio.Task[Any] | None = None  # a blocking read, which a quiet ends

    def quiet(self) -> None:
        """Lease nothing more, and end a blocking read (the loop then waits for the stop)."""
        self.quieted = True
        if self._read is not None:
            self._read.cancel()
        self._slots.wake.set()

    def resume(self) -> None:
        """The queue may have been resumed (a `resume` message, or a recheck after the pub/sub
        connection came back): a paused fetcher looks again now."""
        self._resumed.set()

    def lost_reply(self) -> None:
        """A start or reclaim call failed: jobs may be leased to this worker unbeknown to it."""
        self._recover = True

    async def run(self) -> None:
        """Fetch until the slots are closed."""
        backoff = Backoff(f"fetch {self._keys.queue}", log)
        busy = True
        wake = self._slots.wake
        while not self._slots.closed:
            if self.quieted:  # until the worker stops (which closes the slots)
                wake.clear()
                await wake.wait()
                continue
            if not busy and self._slots.shared:
                await self._await_work(backoff)  # holding no slot: the other queues use them
                busy = True
                continue
            self._slots.want()
            free = min(self._slots.reserve(), MAX_FETCH)
            wake.clear()
            self._resumed.clear()  # before the call that may find the queue paused
            if free <= 0:
                await wake.wait()
                continue
            try:
                busy = await self._fetch(free, busy, backoff)
            except (RedisError, OSError) as exc:
                self._slots.settle(True)
                await self._failed(exc, backoff)
                continue
            self._slots.settle(busy and not self.paused)
            backoff.ok()
            if self.paused:
                await self._wait_resume()
            elif not busy and self._throttle_ms is not None:
                await self._wait_throttled(self._throttle_ms, backoff)
                busy = True  # then `start` again, not a blocking read
            elif not busy and not self._can_block and not self._slots.shared:
                await self._idle()

    async def _failed(self, exc: RedisError | OSError, backoff: Backoff) -> None:
        """Recreate a lost consumer group, or wait out an outage; re-raise anything else."""
        if isinstance(exc, ResponseError) and any(gone in str(exc) for gone in _GONE):
            await self._recreate_group(backoff)
            return
        if not is_transient(exc):
            raise exc
        self._recover = True
        await backoff.failed(exc)

    async def _await_work(self, backoff: Backoff, block_ms: int | None = None) -> bool:
        """Wait, holding no slot, until the queue may have work (a queue of a worker over
        several queues, whose slots the others use meanwhile): a new entry in `ready`, or
        `block_ms` (default BLOCK_MS) without one, or a local wake-up where Redis cannot
        block. True when something arrived (or an error ended the wait: look again).

        XREAD, not XREADGROUP: it reads nothing into the PEL, so the slot for a job is only
        taken once the arbiter gave one. It reads from the group's last-delivered id, so that
        an entry added since the last look, and not yet delivered, ends the wait at once. That
        id is looked up again only after something arrived: a wait that ended empty leaves it
        as it was, so an idle queue costs a blocking read and a `start` per BLOCK_MS, as a
        worker of one queue does.
        """
        if not self._can_block:
            await self._idle()
            return True
        try:
            self.blocked = True
            if self._since is None:
                groups: Any = await self._reader.xinfo_groups(self._keys.ready)
                self._since = next(
                    (g["last-delivered-id"] for g in groups if g["name"] == _GROUP), None
                )
                if self._since is None:  # gone with its stream (a Redis restarted empty)
                    await self._recreate_group(backoff)
                    return True
            streams: Any = {self._keys.ready: self._since}
            block = self._block_ms if block_ms is None else max(1, block_ms)
            if not await self._reader.xread(streams, count=1, block=block):
                return False
            self._since = None  # read: new work, or entries others took since
        except (RedisError, OSError) as exc:
            self._since = None
            await self._failed(exc, backoff)
        finally:
            self.blocked = False
        return True

    async def _fetch(self, free: int, busy: bool, backoff: Backoff) -> bool:
        """Fill up to `free` slots once; True when there may be more work right away."""
        if self._recover:
            await self._recover_pel()
            self._recover = False
            return True
        if self._reclaim_first is not None and await self._reclaim_first():
            return True  # the free slots went to jobs of dead workers
        if busy or not self._can_block:
            # Read and lease in one round trip while there is work; a short batch means the
            # stream is drained, so the next read may as well block.
            started = await self._scripts.start(self._keys, self._worker_id, read=free)
            self._launch_all(started)
            # paused: read with `start` again once resumed, not with a blocking read
            return started.paused or len(started) >= free
        return await self._blocking_read(free, backoff)

    async def _recover_pel(self) -> None:
        """Offer every entry of this worker's PELs to `start` again (see the module's doc)."""
        for stream in self._keys.streams:
            await self._recover_stream(stream)

    async def _recover_stream(self, stream: str) -> None:
        cursor = "-"
        while True:
            pending: Any = await self._reader.xpending_range(
                stream, GROUP, cursor, "+", MAX_FETCH, self._worker_id
            )
            if not pending:
                return
            ids = [p["message_id"] for p in pending]
            async with self._reader.pipeline(transaction=False) as pipe:
                for mid in ids:
                    pipe.xrange(stream, mid, mid)
                found: list[Any] = await pipe.execute()
            entries = [
                (mid.decode(), _job_id(rows[0][1] if rows else None))
                for mid, rows in zip(ids, found, strict=True)
            ]
            deliveries = await self._scripts.start(self._keys, self._worker_id, entries)
            log.info("after a lost reply: %d of %d pending entries", len(deliveries), len(entries))
            self._launch_all(deliveries)
            if len(pending) < MAX_FETCH:
                return
            cursor = "(" + ids[-1].decode()

    async def _blocking_read(self, free: int, backoff: Backoff) -> bool:
        """Wait on Redis for new entries, then lease them; True when it filled every slot."""
        try:
            self.blocked = True
            streams: Any = {self._keys.ready: ">"}
            self._read = asyncio.ensure_future(
                self._reader.xreadgroup(
                    GROUP, self._worker_id, streams, count=free, block=self._block_ms
                )
            )
            reply: Any = await self._read
        except asyncio.CancelledError:
            # Quieted: an entry Redis delivered as the read was cut waits in the PEL for the
            # stop's hand-back (or another worker's reclaim), as at a stop.
            if not self.quieted or _cancelling():
                raise
            return False
        finally:
            self.blocked = False
            self._read = None
        if not reply:
            # Nothing for BLOCK_MS: look with `start` once (it also finds jobs in `prio` whose
            # wake-up entry a paused queue dropped), then block again.
            return True
        await self._start(reply[0][1], backoff)
        return self.paused or len(reply[0][1]) >= free

    async def _wait_throttled(self, ms: int, backoff: Backoff) -> None:
        """Wait until a limit lets a job start: `ms`, as `start` said, jittered a little upward
        (so that the token is there, and workers do not all come back at once), at most
        BLOCK_MS; a freed slot or a stop ends it sooner.

        Held back by its keys only, the queue may take a job of another key at once: a wait
        of KEYS_WAIT_READ or more first blocks on `ready` (as an idle queue of a lane does),
        so that a new entry ends it. That read ends up to Redis's `hz` tick (100 ms) late, too
        coarse for a rate, so it stops short by that much and a sleep does the rest."""
        pause = min(ms * random.uniform(1.0, 1.02) + 1, BLOCK_MS) / 1000
        loop = asyncio.get_running_loop()
        until = loop.time() + pause
        read = self._throttle_by_keys and self._can_block and pause >= KEYS_WAIT_READ
        if read and await self._await_work(backoff, block_ms=int((pause - HZ_SLACK) * 1000)):
            return  # something new: look at once
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._slots.wake.wait(), max(0.0, until - loop.time()))

    def _launch_all(self, deliveries: Started) -> None:
        self.paused = deliveries.paused
        self._throttle_ms, self._throttle_by_keys = deliveries.throttled_ms, deliveries.by_keys
        if deliveries:
            self._since = None  # it read new entries: the group moved on
        for delivery in deliveries:
            self._launch(delivery)

    async def _recreate_group(self, backoff: Backoff) -> None:
        log.warning("consumer group of %s is gone (Redis restarted?); recreating", self._keys.queue)
        try:
            await ensure_group(self._reader, self._keys)
        except (RedisError, OSError) as exc:
            await backoff.failed(exc)

    async def _wait_resume(self) -> None:
        """Wait, paused, for a resume (or a stop, or PAUSE_RECHECK seconds, jittered)."""
        waits = [asyncio.ensure_future(e.wait()) for e in (self._resumed, self._slots.wake)]
        try:
            await asyncio.wait(
                waits,
                timeout=PAUSE_RECHECK * random.uniform(0.8, 1.2),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for w in waits:
                w.cancel()

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self._slots.wake.wait(), self._poll_interval * random.uniform(0.5, 1.5)
            )

    async def _start(self, raw: list[Any], backoff: Backoff) -> None:
        entries = [(mid.decode(), _job_id(fields)) for mid, fields in raw]
        while True:
            try:
                deliveries = await self._scripts.start(self._keys, self._worker_id, entries)
                break
            except (RedisError, OSError) as exc:
                # start is safe to re-send: jobs it already leased to us come back unchanged.
                # A stopping worker gives up instead: the entries stay in its PEL and come
                # back through reclaim (as never started, not as a crash).
                if self._slots.closed:
                    return
                if not is_transient(exc):
                    raise
                await backoff.failed(exc)
        self._launch_all(deliveries)


def _cancelling() -> bool:
    """Whether the running task itself is being cancelled (not an inner read it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _job_id(fields: dict[bytes, bytes] | None) -> str:
    """The job id a stream entry names ('' for garbage, which `start` drops)."""
    return (fields or {}).get(b"id", b"").decode("utf-8", "replace")
