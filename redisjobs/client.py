"""The producer side: enqueue, inspect, wait for, cancel and follow jobs.

A Client never changes a job's state itself: every change is one Lua script
(docs/architecture.md, "Scripts"). It generates job ids before writing, so a re-sent enqueue is
a dedup hit, and encodes every payload before the first write, so bad input leaves nothing behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Unpack

from . import tracing
from .claims import Claims
from .cleaning import QueueCleaning
from .composition import FlowRun, StepLike, cancel_flow_flow, enqueue_flow_flow
from .durability import Durability
from .errors import WaitTimeout
from .events import Event, follow
from .flowview import Tree, tree_flow
from .getters import reaching
from .job import Job
from .jobrules import JobRules
from .keys import QueueKeys
from .options import DEFAULT_PRIORITY, JobOptions
from .producing import ENQUEUE_BATCH, JobSpec, Producer, cancel_job_flow, wait_flow
from .queuecontrol import QueueControl
from .roundtrips import run
from .schedule_client import Scheduling
from .serialization import DEFAULT_MAX_PAYLOAD_BYTES, pack_float
from .wire import EnqueueRow, due_in_ms


class Client(Producer, QueueCleaning, Scheduling, QueueControl, Claims):
    """A connection to one Redis (or the embedded backend) for producing, watching and cleaning
    jobs (the cleaning verbs, ``remove``, ``purge``, ``drain`` and ``obliterate``, are
    :class:`~redisjobs.cleaning.QueueCleaning`'s), for scheduling them (``schedule``,
    ``unschedule``, ``schedules``: :class:`~redisjobs.schedule_client.Scheduling`'s) and for
    pausing a queue (``pause``, ``resume``: :class:`~redisjobs.queuecontrol.QueueControl`'s).

    Args:
        url: ``redis://[user:password@]host:port/db``, ``rediss://…`` for TLS,
            ``redis+sentinel://[user:password@]host:26379[,host:26379...]/service[/db]`` for
            the master that Redis Sentinel names (:mod:`redisjobs.sentinel`),
            ``redis+cluster://host:port[,host:port...]/`` for a Redis Cluster
            (:mod:`redisjobs.cluster`), or ``memory://[name]`` for the embedded backend.
            Defaults to ``$REDIS_URL``, else ``memory://``, with a warning (once per process):
            that store is private to this process, so pass ``memory://`` when that is what
            you want.
        queue: the queue used when a call names none.
        max_payload_bytes: cap on an encoded payload.
        max_retries, retry_delay, retry_backoff, retry_jitter, timeout, result_ttl: defaults
            for :meth:`enqueue` (seconds for times).
        durable: every write (an enqueue, a cancel ...) returns only once a replica confirmed
            it (``WAIT``), so that a failover cannot lose it; or a
            :class:`~redisjobs.durability.Durability` for more replicas or another timeout.
            Raises :class:`~redisjobs.errors.NotReplicated` when they did not in time.
        partitions: spread `queue` over this many partitions (or queue -> count): on a Redis
            Cluster, one hot queue served by several masters (:mod:`redisjobs.partitions`).
            Its workers are given the same count.

    Use it as ``async with Client(url) as client:``; it connects on first use otherwise. Every
    call that takes a `job_id` raises :class:`~redisjobs.errors.InvalidJobId` (a ValueError),
    before anything is read or written, for an id that is not
    :data:`~redisjobs.keys.JOB_ID_RULE`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        queue: str = "default",
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        max_retries: int = 0,
        retry_delay: float = 1.0,
        retry_backoff: float = 2.0,
        retry_jitter: float = 0.1,
        timeout: float | None = None,
        result_ttl: float = 86400.0,
        durable: bool | Durability = False,
        partitions: int | Mapping[str, int] = 1,
    ) -> None:
        QueueControl.__init__(self, url, queue, partitions)
        options = JobOptions(
            max_retries, retry_delay, retry_backoff, retry_jitter, timeout, result_ttl
        )
        Producer.__init__(self, self.backend, max_payload_bytes, options, durable)

    # -- enqueue --------------------------------------------------------------------------------

    @reaching
    async def enqueue(
        self,
        kind: str,
        payload: Any = None,
        *,
        queue: str | None = None,
        job_id: str | None = None,
        delay: float | None = None,
        at: datetime | None = None,
        priority: int = DEFAULT_PRIORITY,
        max_retries: int | None = None,
        retry_delay: float | None = None,
        retry_backoff: float | None = None,
        retry_jitter: float | None = None,
        timeout: float | None = None,
        result_ttl: float | None = None,
        partition_key: str | None = None,
        **rules: Unpack[JobRules],
    ) -> Job:
        """Add one job.

        Args:
            kind: the executor that runs it (``call``, ``http``, ``subprocess``, ``ssh``, yours).
            payload: anything msgpack encodes; the executor's input.
            queue: the queue (default: the client's).
            job_id: a caller-chosen id (:data:`~redisjobs.keys.JOB_ID_RULE`; default: 22 random
                URL-safe characters, :func:`~redisjobs.options.new_job_id`). While a job with
                this id exists, enqueueing it again writes nothing and returns that job.
            delay: seconds from now (on Redis's clock) before it may run.
            at: the time it may run (a naive datetime is taken as UTC).
            priority: 0..2**21, lower runs sooner (default 100); FIFO within a priority. Strict:
                a job waits while more urgent ones are pending (architecture.md, "Priorities").
            max_retries, retry_delay, retry_backoff, retry_jitter, timeout, result_ttl: this
                job's :class:`~redisjobs.options.JobOptions` (default: the client's).
            partition_key: a partitioned queue's jobs of one key go to one partition, in order.
            **rules: ``keep_completed``, ``keep_failed`` (retention per outcome), ``unique``,
                ``unique_key``, ``unique_ttl`` (a unique lock), ``idempotency_ttl``: see
                :class:`~redisjobs.jobrules.JobRules`.

        Returns:
            The job as written, or the one it duplicates (:attr:`Job.duplicate` set).

        Raises:
            CallRefused: a ``call`` payload no worker would run (nothing is written).
            SerializationError, PayloadTooLarge: not msgpack-encodable, or over the cap.
            ValueError, TypeError: an invalid option (InvalidJobId: `job_id`); nothing is written.
            QueueFull: the queue is at its `max_pending`. ConnectionFailed: Redis is unreachable.
        """
        row = self.given_row(kind, payload, {**locals(), **rules}, self.count(queue))
        return (await self._write_placed(queue, [row]))[0]

    @reaching
    async def enqueue_many(self, jobs: Iterable[JobSpec], *, queue: str | None = None) -> list[Job]:
        """Add many jobs in as few round trips as possible (one per 100 jobs).

        Args:
            jobs: ``(kind, payload)`` pairs or mappings with ``kind``, ``payload`` and any
                option of :meth:`enqueue` except ``queue`` (``priority`` among them).
            queue: the queue of all of them.

        Every payload is encoded before anything is written, so one bad payload fails the
        whole call with nothing enqueued.

        Raises:
            QueueFull: a batch of 100 would bring the queue above its `max_pending`: it and the
                batches after it are not written (`enqueued`: how many jobs were before it).
        """
        return await self._write_placed(queue, self.rows(jobs, self.count(queue)))

    async def _write_placed(self, queue: str | None, rows: list[EnqueueRow]) -> list[Job]:
        """Write `rows` to `queue`, or to its partitions (their writes sent at once)."""
        groups = self.placed(queue, [row.job_id for row in rows])
        if len(groups) == 1:
            return await self._write(groups[0][0], rows)
        parts = await asyncio.gather(*(self._write(k, [rows[i] for i in at]) for k, at in groups))
        jobs: list[Job] = [None] * len(rows)  # type: ignore[list-item]
        for (_, at), written in zip(groups, parts, strict=True):
            for i, job in zip(at, written, strict=True):
                jobs[i] = job
        return jobs

    async def _write(self, keys: QueueKeys, rows: list[EnqueueRow]) -> list[Job]:
        redis, scripts = await self._conn(keys)
        if tracing.AVAILABLE and tracing.active():
            ids = [row.job_id for row in rows]
            # Inside the producer's span, whose context the jobs carry to the worker; tracing is
            # the async client's alone (the sync client writes no trace context).
            with tracing.enqueue_span(keys, [row.kind for row in rows], ids) as context:
                prelude = None
                if context is not None:
                    prelude = tracing.store_commands(keys, ids, context, due_in_ms(rows))
                return await run(redis, self.write_flow(keys, rows, prelude), scripts)
        return await run(redis, self.write_flow(keys, rows), scripts)

    @reaching
    async def wait(
        self, job_id: str, timeout: float | None = None, *, queue: str | None = None
    ) -> Any:
        """Wait until the job finishes and return its result.

        Follows the job's events in the queue's log from before it reads the job's status, so a
        completion in between is never missed.

        Raises:
            WaitTimeout: not finished within `timeout` seconds (also a `TimeoutError`).
            JobFailed: it failed for good (the message carries the recorded error).
            JobCancelled: it was cancelled.
            JobNotFound: there is no such job.
        """
        keys = self._job_keys(job_id, queue)
        redis, _ = await self._conn(keys)
        try:
            async with asyncio.timeout(timeout):
                async with await self._log(keys).tail(keys.log, job_id) as tail:
                    return await run(redis, wait_flow(keys, job_id), receive=tail.get)
        except TimeoutError:
            raise WaitTimeout(f"job {job_id} did not finish within {timeout} s") from None

    # -- changing -------------------------------------------------------------------------------

    @reaching
    async def cancel(self, job_id: str, *, queue: str | None = None) -> bool:
        """Cancel a pending, scheduled or running job.

        A call re-sent after a lost reply (redis-py resends once on a broken connection) gets
        the answer the first one had: each call carries a token the job keeps once cancelled.

        Returns:
            True when it was cancelled (pending/scheduled) or its worker was told to stop it
            (running); False when it had already finished or does not exist.
        """
        keys = self._job_keys(job_id, queue)
        redis, scripts = await self._conn(keys)
        return await run(redis, cancel_job_flow(keys, job_id), scripts)

    @reaching
    async def retry(self, job_id: str, *, queue: str | None = None) -> bool:
        """Run a job that failed for good (a dead letter) or was cancelled again, under its id.

        Its attempts start again from 0; its log lines and event history are kept.

        Returns:
            True when it was put back in the queue; False when it is neither failed nor
            cancelled (or gone).
        """
        keys = self._job_keys(job_id, queue)
        _, scripts = await self._conn(keys)
        return await scripts.retry(keys, [job_id]) == 1

    @reaching
    async def run_now(self, job_id: str, *, queue: str | None = None) -> bool:
        """Run a scheduled job now: delayed, or a retry waiting out its backoff (the
        dashboard's "run now"). It becomes pending, in its turn behind the jobs already
        pending, and keeps its attempt.

        Returns:
            True when it was made pending; False when it is not scheduled (or gone).
        """
        keys = self._job_keys(job_id, queue)
        _, scripts = await self._conn(keys)
        return await scripts.run_now(keys, job_id)

    @reaching
    async def retry_failed(self, *, queue: str | None = None) -> int:
        """:meth:`retry` every job of the queue that failed for good; returns how many."""
        keys = self.keys(queue)
        redis, scripts = await self._conn(keys)
        done = 0
        seen: list[bytes] = []
        while True:
            # Each call takes every job it is given off `dead` (the script skips, but still
            # unlists, a job that stopped being failed), so the next read gets the next batch.
            ids: list[bytes] = await redis.zrange(keys.dead, 0, ENQUEUE_BATCH - 1)  # type: ignore[assignment]
            if not ids or ids == seen:
                return done
            done += await scripts.retry(keys, [i.decode() for i in ids])
            seen = ids

    @reaching
    async def set_progress(
        self, job_id: str, progress: float, message: str | None = None, *, queue: str | None = None
    ) -> bool:
        """Record progress (0-100) of a running job from outside its worker."""
        keys = self._job_keys(job_id, queue)
        _, scripts = await self._conn(keys)
        value = float(progress)
        return await scripts.progress(keys, job_id, None, value, pack_float(value), message or "")

    # -- flows ----------------------------------------------------------------------------------

    @reaching
    async def enqueue_flow(self, flow: StepLike, *, queue: str | None = None) -> FlowRun:
        """Write a chain, group, chord or flow (:mod:`redisjobs.composition`): its jobs,
        parents first, each waiting for the ones before it.

        Args:
            flow: what :func:`~redisjobs.chain`, :func:`~redisjobs.group`,
                :func:`~redisjobs.chord` or :func:`~redisjobs.flow` built (or one step).
            queue: the queue of the steps that name none (default: the client's).

        Returns:
            The flow as written: its id (its last job's: ``wait`` on it for the flow's
            result) and its jobs.

        Raises:
            TypeError, ValueError: a step that is none, or an invalid option; nothing written.
        """
        redis, scripts = await self._conn(self.keys(queue))
        return await run(redis, enqueue_flow_flow(self, flow, self.keys(queue).queue), scripts)

    @reaching
    async def cancel_flow(self, flow_id: str, *, queue: str | None = None) -> int:
        """Cancel a flow by its id (its last job's): every job of it that has not ended
        (waiting, pending or scheduled ones at once, a running one is told to stop).

        Returns:
            How many were cancelled or told to stop (0 for no such flow).
        """
        keys = self._job_keys(flow_id, queue)
        redis, scripts = await self._conn(keys)
        return await run(redis, cancel_flow_flow(keys.queue, flow_id), scripts)

    @reaching
    async def flow_tree(self, job_id: str, *, queue: str | None = None) -> Tree | None:
        """A job with the tree of the jobs it waited for (each with its status) and the jobs
        waiting for it (:attr:`Job.dependents`); None when there is no such job."""
        keys = self._job_keys(job_id, queue)
        redis, _ = await self._conn(keys)
        return await run(redis, tree_flow(keys.queue, job_id))

    # -- events ---------------------------------------------------------------------------------

    async def events(
        self,
        job_id: str | None = None,
        *,
        queue: str | None = None,
        since: str | None = None,
        on_recheck: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Follow events live: of one job, or of the whole queue.

        Args:
            job_id: only this job's events.
            queue: the queue (default: the client's).
            since: first replay the capped log from after this stream id (``"0"`` = from the
                start); every event carries its log id in `Event.id`, a resume cursor.
            on_recheck: awaited when events may have been missed (the follower fell behind
                the log's cap, or the log was deleted): look up what you were waiting for.
        """
        keys = self.keys(queue) if job_id is None else self._job_keys(job_id, queue)
        redis, _ = await self._conn(keys)
        with self.backend.reaching():
            async for ev in follow(redis, self._log(keys), keys, job_id, since, on_recheck):
                yield ev
