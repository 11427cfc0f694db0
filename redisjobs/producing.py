"""What :class:`redisjobs.Client` and :class:`redisjobs.sync.Client` say to Redis, once.

Building and checking enqueue rows, registering a queue once per client, writing rows in
batches of :data:`ENQUEUE_BATCH`, the out-of-memory message, turning the script's created flags
into jobs, cancelling, and waiting for a job's end: each is a flow
(:mod:`redisjobs.roundtrips`) that either client drives with its own I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import OutOfMemoryError

from .connection import Backend
from .durability import Durability, durability
from .errors import JobCancelled, JobFailed, QueueFull, RedisOutOfMemory
from .eventlog import id_key
from .events import FINAL_EVENTS, Event
from .handover import check_parents_flow, link_flow
from .job import Job, JobStatus
from .keys import QueueKeys
from .options import DEFAULT_PRIORITY, JobOptions, new_job_id
from .partitions import index_of
from .queries import Outcome, final_state_flow, get_jobs_flow
from .roundtrips import RECEIVE, Command, Flow, cmd
from .scripts import cancel_flow, enqueue_flow
from .wire import EnqueueRow, build_row

ENQUEUE_BATCH = 100
"""Jobs per `enqueue` script call in `enqueue_many`: a few ms of Redis time each, never a stall."""

_NOT_OPTIONS = frozenset({"self", "kind", "payload", "queue", "rules"})
"""The arguments of `enqueue` that are not a job's options."""

JobSpec = Mapping[str, Any] | tuple[str, Any]
"""One job of `enqueue_many`: ``(kind, payload)``, or a mapping with `kind`, `payload` and
options."""


def keyed(opts: Mapping[str, Any], count: int) -> dict[str, Any]:
    """`opts` without its ``partition_key``, and with a job id in that key's partition of a
    queue of `count` (a new one; a given one is checked to be there).

    Raises:
        TypeError: the key is not a string. ValueError: the given job id hashes to another
            partition than the key (give one or the other).
    """
    out = dict(opts)
    key = out.pop("partition_key")
    if not isinstance(key, str):
        raise TypeError(f"partition_key must be a str, not {type(key).__name__}")
    if count < 2:
        return out
    given = out.get("job_id")
    if given is None:
        out["job_id"] = _id_in(key, count)
    elif index_of(str(given), count) != index_of(key, count):
        raise ValueError(
            f"job id {given!r} and partition_key {key!r} hash to different partitions of the "
            f"queue: give one or the other"
        )
    return out


def _id_in(key: str, count: int) -> str:
    """A new job id in `key`'s partition of `count` (`count` draws on average)."""
    wanted = index_of(key, count)
    while True:
        job_id = new_job_id()
        if index_of(job_id, count) == wanted:
            return job_id


class Producer:
    """The enqueue side of a client, whatever its I/O.

    Args:
        backend: where the jobs go.
        max_payload_bytes: cap on an encoded payload.
        options: the defaults of every job this client enqueues.
        durable: replicas that must confirm each write before it returns (True: one).
    """

    def __init__(
        self,
        backend: Backend,
        max_payload_bytes: int,
        options: JobOptions,
        durable: bool | Durability = False,
    ) -> None:
        self.backend = backend
        self.durable = durability(durable, embedded=backend.embedded)
        self.max_payload_bytes = max_payload_bytes
        self.options = options
        self._policy = options.policy()
        # Only ever added to: a set's add is atomic, and two threads that both find a queue
        # missing send the same (idempotent) SADD twice.
        self._known_queues: set[str] = set()

    def row(
        self, kind: str, payload: Any, opts: Mapping[str, Any] | None, count: int = 1
    ) -> EnqueueRow:
        """One job's row, checked and encoded (see :func:`redisjobs.wire.build_row`), for a
        queue of `count` partitions (whose ``partition_key`` option places its id)."""
        if opts and "partition_key" in opts:
            opts = keyed(opts, count)
        return build_row(kind, payload, opts, self.options, self._policy, self.max_payload_bytes)

    def given_row(
        self, kind: str, payload: Any, given: Mapping[str, Any], count: int = 1
    ) -> EnqueueRow:
        """The row of an `enqueue` call whose other arguments are `given` (its ``locals()``, or
        its ``**options``), for a queue of `count` partitions.

        Raises:
            TypeError: `given` names an option that is none (nothing is written).
        """
        # The options given (not None, priority not the default); none at all takes the row's
        # fast path.
        opts = {k: v for k, v in given.items() if v is not None and k not in _NOT_OPTIONS}
        if opts.get("priority") == DEFAULT_PRIORITY:
            del opts["priority"]
        return self.row(kind, payload, opts, count)

    def rows(self, jobs: Iterable[JobSpec], count: int = 1) -> list[EnqueueRow]:
        """The rows of `enqueue_many`'s jobs, every payload encoded before anything is written
        (for a queue of `count` partitions)."""
        rows = []
        for spec in jobs:
            if isinstance(spec, tuple):
                rows.append(self.row(spec[0], spec[1], None, count))
            else:
                opts = {k: v for k, v in spec.items() if k not in ("kind", "payload")}
                rows.append(self.row(spec["kind"], spec.get("payload"), opts, count))
        return rows

    def write_flow(
        self, keys: QueueKeys, rows: Sequence[EnqueueRow], prelude: list[Command] | None = None
    ) -> Flow[list[Job]]:
        """Write `rows` (after the commands of `prelude`, if any); returns their jobs: each as
        written, or as it already was for a duplicate id.

        Raises:
            RedisOutOfMemory: Redis refused a batch (the message says which were written).
            QueueFull: a batch would bring the queue's backlog above its max_pending (that
                batch wrote nothing; the error says how many jobs the earlier ones wrote).
        """
        created: list[bool | str] = []
        try:
            if keys.queue not in self._known_queues:
                yield [cmd("sadd", self.backend.registry.queues, keys.queue)]
                self._known_queues.add(keys.queue)
            if prelude:
                yield prelude
            jobs = yield from _write_rows_flow(keys, rows, created)
        except OutOfMemoryError as exc:  # enqueue.lua is deny-oom: its batch wrote nothing
            raise self._out_of_memory(exc, len(created), len(rows)) from exc
        except QueueFull as exc:
            if not created:
                raise
            raise QueueFull(exc.queue, exc.limit, exc.backlog, exc.adding, len(created)) from None
        if self.backend.embedded:
            self.backend.wake(keys.queue)
        if not all(c is True for c in created):  # none in the common case: no read
            yield from _duplicates_flow(keys, rows, created, jobs)
        if any(row.rules for row in rows):
            yield from _read_back_flow(keys, rows, created, jobs)
        return jobs

    def _out_of_memory(self, exc: Exception, written: int, total: int) -> RedisOutOfMemory:
        what = (
            f"the first {written} of {total} jobs were enqueued, the rest were not"
            if written
            else "nothing was enqueued"
        )
        return RedisOutOfMemory(
            f"Redis at {self.backend.masked} is out of memory (maxmemory reached, "
            f"noeviction): {what}; free memory or raise maxmemory ({exc})"
        )


def _write_rows_flow(
    keys: QueueKeys, rows: Sequence[EnqueueRow], created: list[bool | str]
) -> Flow[list[Job]]:
    """Write `rows` in batches of :data:`ENQUEUE_BATCH`, adding the script's created flags to
    `created` batch by batch (what was written when a batch fails); returns each row's job as
    created (built while Redis writes its batch: a duplicate's is replaced by the caller). Rows
    that wait for jobs of other queues are checked first and linked after
    (:mod:`redisjobs.handover`)."""
    ruled = any(row.rules for row in rows)  # only such rows may wait for other queues
    if ruled:
        yield from check_parents_flow(keys, rows)
    fresh: list[Job] = []
    for i in range(0, len(rows), ENQUEUE_BATCH):
        batch = rows[i : i + ENQUEUE_BATCH]
        built = functools.partial(_build, fresh, keys, batch)
        created += yield from enqueue_flow(keys, batch, built)
    if ruled:
        yield from link_flow(keys, rows, created)
    return fresh


def _build(into: list[Job], keys: QueueKeys, rows: Sequence[EnqueueRow]) -> None:
    """Add to `into` the jobs of `rows` as created."""
    now = datetime.now(UTC)
    into += [_fresh(keys, row, row.job_id, now) for row in rows]


def _read_back_flow(
    keys: QueueKeys, rows: Sequence[EnqueueRow], created: list[bool | str], jobs: list[Job]
) -> Flow[None]:
    """Replace in `jobs` each job created `waiting` by its state now: its parents may have
    ended already, so that it is pending, or failed or cancelled by its policy."""
    waiting = [i for i, row in enumerate(rows) if created[i] is True and row.rule("depends_on")]
    if not waiting:
        return
    found = yield from get_jobs_flow(keys, [rows[i].job_id for i in waiting])
    for i, job in zip(waiting, found, strict=True):
        if job is not None:
            jobs[i] = job


def _duplicates_flow(
    keys: QueueKeys, rows: Sequence[EnqueueRow], created: list[bool | str], jobs: list[Job]
) -> Flow[None]:
    """Replace in `jobs` (each row's job as created) the job of each row that was a duplicate:
    the stored job it duplicates, the row's own or the holder of its unique lock (read in one
    round trip), marked :attr:`Job.duplicate`. A job gone meanwhile is the row's own, as it was
    last known: from its idempotency marker when it left one (one more round trip), else as
    written."""
    # a duplicate by id (False) is the row's own job; a unique duplicate names its holder
    dups = {
        i: row.job_id if c is False else str(c)
        for i, (row, c) in enumerate(zip(rows, created, strict=True))
        if c is not True
    }
    found = yield from get_jobs_flow(keys, list(dups.values()))
    stored = dict(zip(dups, found, strict=True))
    for i, job in stored.items():
        if job is None and created[i] is not False:  # a lock outlived its holder's hash
            stored[i] = _fresh(keys, rows[i], dups[i], datetime.now(UTC))
    gone = [i for i, job in stored.items() if job is None and rows[i].rule("idempotency_ttl_ms")]
    if gone:
        marks = yield [cmd("get", keys.idem(rows[i].job_id)) for i in gone]
        for i, mark in zip(gone, marks, strict=True):
            stored[i] = _marked(keys, rows[i], mark)
    for i, dup in stored.items():
        if dup is not None:
            dup.duplicate = True
            jobs[i] = dup


def _marked(keys: QueueKeys, row: EnqueueRow, mark: bytes | None) -> Job | None:
    """The job of `row` as its idempotency marker tells (the status it ended with)."""
    try:
        status = JobStatus(mark.decode()) if mark else None
    except ValueError:
        return None
    return None if status is None else Job(row.job_id, status, datetime.now(UTC), queue=keys.queue)


def _fresh(keys: QueueKeys, row: EnqueueRow, job_id: str, now: datetime) -> Job:
    """Job `job_id` as `row` would have written it."""
    status = JobStatus.SCHEDULED if row.delayed else JobStatus.PENDING
    return Job(job_id, status, now, queue=keys.queue, priority=row.priority)


def cancel_job_flow(keys: QueueKeys, job_id: str) -> Flow[bool]:
    """Cancel a job (see :meth:`redisjobs.Client.cancel`): True when cancelled or stopping."""
    # A fresh token a call: a re-send of this call after a lost reply gets its first answer.
    outcome = yield from cancel_flow(keys, job_id, new_job_id())
    return outcome in ("cancelled", "requested")


def wait_flow(keys: QueueKeys, job_id: str) -> Flow[Any]:
    """The result of a job, once it ends, read by a client already following its events.

    Reads its final state first (it may have ended before the follow began), then takes the
    job's events until a final one, reading the state again after each ``RECHECK`` (an event
    may have been missed). Events the state read saw already are passed over: a failure since
    retried is no outcome of the run waited for.

    Raises:
        JobFailed: it failed for good. JobCancelled: it was cancelled.
        JobNotFound: there is no such job.
    """
    read_after, outcome = yield from final_state_flow(keys, job_id)
    while outcome is None:
        entry_id, raw = yield RECEIVE
        if entry_id is None:  # RECHECK
            read_after, outcome = yield from final_state_flow(keys, job_id)
            continue
        if id_key(entry_id) <= read_after:
            continue  # older than the state read (a tail's reader may lag): that read saw it
        ev = Event.decode(raw, entry_id, keys.queue)
        if ev.type in FINAL_EVENTS:
            outcome = (ev.type, ev.data.get("result"), ev.data.get("error"))
    return _result(job_id, outcome)


def _result(job_id: str, outcome: Outcome) -> Any:
    status, value, error = outcome
    if status == "completed":
        return value
    if status == "cancelled":
        raise JobCancelled(job_id, error)
    raise JobFailed(job_id, error)
