"""Cleaning a queue: remove or purge finished jobs, drain waiting ones, obliterate it all.

Each verb is a loop of short Lua calls (``remove``, ``purge``, ``drain``, ``obliterate``), each
doing a bounded batch of 1-2 ms of Redis time, so no call blocks Redis for long however
large the queue (well under the 10 ms any one script may take, with room for a loaded
machine), and other clients' commands run in between. Written
once as flows (:mod:`redisjobs.roundtrips`), which :class:`redisjobs.Client` and
:class:`redisjobs.sync.Client` both drive.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .errors import QueueInUse
from .getters import QueueGetters, reaching
from .handover import deliver_flow
from .job import FINAL_STATUSES, JobStatus
from .keys import QueueKeys, Registry
from .roundtrips import Flow, ScriptCall, cmd, run
from .workerinfo import ALIVE, state_of

if TYPE_CHECKING:
    from .scriptcall import Arg

# Redis time per job measured on a shared 2-core machine: purge 3-4 µs an index entry,
# drain 10 µs a job (its event, published and logged, is half of it), obliterate 2-3 µs a job.
PURGE_BATCH = 500
"""Index entries ``purge.lua`` looks at per call."""
DRAIN_BATCH = 100
"""Jobs ``drain.lua`` drops per call: each also publishes and logs a ``cancelled`` event."""
OBLITERATE_BATCH = 500
"""Jobs ``obliterate.lua`` deletes per call."""
SWEEP_COUNT = 1000
"""Keys per SCAN (and per UNLINK) of the sweep that ends an obliterate."""


def final_status(status: JobStatus | str) -> str:
    """`status` when it is a final one (``completed``, ``failed``, ``cancelled``).

    Raises:
        ValueError: any other status (only finished jobs are purged).
    """
    value = status.value if isinstance(status, JobStatus) else status
    if value not in FINAL_STATUSES:
        raise ValueError(
            f"purge takes a final status (completed, failed or cancelled), not {status!r}: "
            "drain() drops waiting jobs, cancel() stops a running one"
        )
    return str(value)


def age_ms(older_than: float | None) -> int:
    """`older_than` seconds as ms (None: 0, every finished job).

    Raises:
        TypeError: not a number. ValueError: negative, NaN or infinite.
    """
    if older_than is None:
        return 0
    if isinstance(older_than, bool) or not isinstance(older_than, int | float):
        raise TypeError(f"older_than must be a number of seconds, not {older_than!r}")
    if not math.isfinite(older_than) or older_than < 0:
        raise ValueError(f"older_than must be a finite number of seconds >= 0, not {older_than}")
    return int(older_than * 1000)


def remove_flow(keys: QueueKeys, job_id: str) -> Flow[bool]:
    """Delete one finished job now (see :meth:`QueueCleaning.remove`)."""
    return int((yield ScriptCall("remove", keys, [job_id]))) == 1


def purge_flow(keys: QueueKeys, status: JobStatus | str, older_than: float | None) -> Flow[int]:
    """Delete the jobs of final `status` that finished `older_than` seconds ago or earlier
    (see :meth:`QueueCleaning.purge`); returns how many."""
    wanted, age = final_status(status), age_ms(older_than)
    # The cutoff is fixed once, on Redis's clock: jobs finishing during the walk are younger.
    cutoff = (yield from _redis_now()) - age
    total = offset = 0
    while True:
        args: list[Arg] = [wanted, cutoff, offset, PURGE_BATCH]
        deleted, kept, looked = yield ScriptCall("purge", keys, args)
        total += int(deleted)
        offset += int(kept)
        if int(looked) < PURGE_BATCH:
            return total


def drain_flow(keys: QueueKeys) -> Flow[int]:
    """Drop every job pending, scheduled or waiting when the call begins (see
    :meth:`QueueCleaning.drain`); returns how many."""
    now = yield from _redis_now()
    total = yield from _in_batches(ScriptCall("drain", keys, [now, DRAIN_BATCH]), DRAIN_BATCH)
    yield from deliver_flow(keys)  # to the jobs of other queues that waited for a dropped one
    return total


def _redis_now() -> Flow[int]:
    """Redis's clock, in ms."""
    ((seconds, micros),) = yield [cmd("time")]
    return int(seconds) * 1000 + int(micros) // 1000


def _in_batches(call: ScriptCall, batch: int) -> Flow[int]:
    """Send `call` until it looks at fewer than `batch` entries; the sum of the counts it
    answers (each reply is ``{count, looked}``)."""
    total = 0
    while True:
        done, looked = yield call
        total += int(done)
        if int(looked) < batch:
            return total


def serving_flow(keys: QueueKeys, registry: Registry) -> Flow[list[str]]:
    """The live workers serving the queue: those of `registry` whose entry names it, and
    those that recorded a lease TTL for it, while their entry says they are alive (judged on
    Redis's clock, see :mod:`redisjobs.workerinfo`)."""
    listed, leased, now = yield [
        cmd("zrange", registry.workers, 0, -1),
        cmd("hkeys", keys.leases),
        cmd("time"),
    ]
    leasing = {w.decode() for w in leased}
    ids = sorted({w.decode() for w in listed} | leasing)
    if not ids:
        return []
    entries = yield [cmd("hgetall", registry.worker(w)) for w in ids]
    now_ms = int(now[0]) * 1000 + int(now[1]) // 1000
    return [
        w
        for w, fields in zip(ids, entries, strict=True)
        if fields
        and state_of(fields, now_ms) in ALIVE
        and (w in leasing or keys.queue in fields.get(b"queues", b"").decode().split(","))
    ]


def obliterate_flow(keys: QueueKeys, force: bool, registry: Registry) -> Flow[int]:
    """Delete every key of the queue (see :meth:`QueueCleaning.obliterate`); jobs deleted."""
    if not force:
        serving = yield from serving_flow(keys, registry)
        if serving:
            raise QueueInUse(
                f"queue {keys.queue!r} is served by {len(serving)} live worker(s) "
                f"({', '.join(serving[:5])}): stop them first, or pass force=True"
            )
    call = ScriptCall("obliterate", keys, [OBLITERATE_BATCH])
    total = yield from _in_batches(call, OBLITERATE_BATCH)
    yield from deliver_flow(keys)  # before its stream goes with the queue's keys
    yield [cmd("unlink", *_queue_keys(keys))]
    total += yield from _sweep(keys)
    yield [cmd("srem", registry.queues, keys.queue)]
    return total


def _queue_keys(keys: QueueKeys) -> list[str]:
    """The queue's own keys (the keyspace table of docs/architecture.md), jobs aside."""
    fixed = [keys.ready, keys.prio, keys.carry, keys.paused, keys.delayed, keys.dead, keys.stats]
    fixed += [keys.log, keys.leases, keys.handover, keys.history]
    return fixed + [keys.status(s) for s in JobStatus]


def _sweep(keys: QueueKeys) -> Flow[int]:
    """UNLINK whatever is left under the queue's prefix (keys of other versions, of jobs no
    index listed any more); returns the job hashes among them."""
    job_prefix = keys.job("").encode()
    jobs, cursor = 0, 0
    while True:
        ((cursor, found),) = yield [cmd("scan", cursor, match=keys.prefix + "*", count=SWEEP_COUNT)]
        if found:
            yield [cmd("unlink", *found)]
            jobs += sum(
                1 for k in found if k.startswith(job_prefix) and b":" not in k[len(job_prefix) :]
            )
        if int(cursor) == 0:
            return jobs


class QueueCleaning(QueueGetters):
    """The cleaning verbs of :class:`redisjobs.Client` (see the module)."""

    _known_queues: set[str]  # the Producer's: queues this client registered in rj:queues

    async def _drive(self, flow: Flow[Any]) -> Any:
        redis, scripts = await self._conn()
        return await run(redis, flow, scripts)

    @reaching
    async def remove(self, job_id: str, *, queue: str | None = None) -> bool:
        """Delete a finished job (completed, failed or cancelled) now, instead of when it
        expires: its hash, log lines and trace context, its index entries and dead letter.

        Returns:
            True when it was deleted; False when it has not finished (or is already gone).
        """
        keys = self._job_keys(job_id, queue)
        return bool(await self._drive(remove_flow(keys, job_id)))

    @reaching
    async def purge(
        self,
        queue: str | None = None,
        *,
        status: JobStatus | str = JobStatus.FAILED,
        older_than: float | None = None,
    ) -> int:
        """Delete the queue's jobs of one final status that finished `older_than` seconds ago
        or earlier (on Redis's clock; None: every one finished before the call).

        Deleted as :meth:`remove` deletes, a batch of 500 index entries per script call. The
        status index is ordered by expiry, not by age, so the call reads the age of every job
        of the status from its hash (about 2 s of short calls per million jobs).

        Args:
            queue: the queue (default: the client's).
            status: ``failed`` (the dead letters, the default), ``completed`` or ``cancelled``.
            older_than: seconds since the job finished, >= 0.

        Returns:
            How many jobs were deleted.

        Raises:
            ValueError: a status that is not final, a negative or non-finite `older_than`, an
                invalid queue name.
            TypeError: an `older_than` that is not a number.
        """
        flow = purge_flow(self.keys(queue), status, older_than)
        return int(await self._drive(flow))

    @reaching
    async def drain(self, queue: str | None = None) -> int:
        """Drop the queue's jobs waiting to run when the call begins: pending ones, scheduled
        ones (delayed jobs and retries waiting out their backoff) and those waiting for other
        jobs (``depends_on``), whose own dependents learn they were cancelled. Running jobs
        finish and are recorded; jobs enqueued meanwhile are left, so the call ends even while
        producers go on.

        Each dropped job is deleted and announced by a ``cancelled`` event (error
        ``drained``), so a :meth:`wait` on it raises JobCancelled rather than waiting on, and
        it counts as cancelled in :meth:`stats`.

        Returns:
            How many jobs were dropped.

        Raises:
            ValueError: an invalid queue name.
        """
        return int(await self._drive(drain_flow(self.keys(queue))))

    @reaching
    async def obliterate(self, queue: str | None = None, *, force: bool = False) -> int:
        """Delete every key of the queue, whatever its jobs' status, and unlist it (``queues()``).

        Args:
            queue: the queue (default: the client's).
            force: go on while live workers serve the queue. Their running jobs are lost to
                them (they stop them at the next heartbeat), and they recreate the queue's
                stream as they go on reading it: stop them.

        Returns:
            How many jobs were deleted.

        Raises:
            QueueInUse: live workers serve the queue (nothing was deleted) and `force` is False.
            ValueError: an invalid queue name.
        """
        keys = self.keys(queue)
        total = int(await self._drive(obliterate_flow(keys, force, self.registry)))
        self._known_queues.discard(keys.queue)  # the next enqueue lists it again
        return total
