"""The producer calls of :class:`redisjobs.Client` for sync code, on redis-py's sync client.

Every call says to Redis exactly what the async client's says (the flows of
:mod:`redisjobs.producing`, :mod:`redisjobs.queries` and :mod:`redisjobs.scripts`); only the
I/O differs. No event loop is involved anywhere.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, Self, TypeVar, Unpack

import redis

from ..cleaning import drain_flow, obliterate_flow, purge_flow, remove_flow
from ..composition import FlowRun, StepLike, cancel_flow_flow, enqueue_flow_flow
from ..connection import Backend, resolve_url
from ..durability import Durability
from ..errors import WaitTimeout
from ..flowview import Tree, get_job_flow, tree_flow
from ..homes import SyncHomes
from ..job import Job, JobStatus
from ..keys import QueueNames
from ..limits import KeyState, Limit, clear_limit_flow, key_states_flow, limits_flow, set_limit_flow
from ..listing import JobPage, list_jobs_flow
from ..options import EnqueueOptions, JobDefaults, JobOptions
from ..producing import JobSpec, Producer, cancel_job_flow, wait_flow
from ..queries import stats_flow
from ..queuecontrol import is_paused_flow, pause_flow, resume_flow
from ..roundtrips import Flow
from ..schedule_client import ScheduleOptions, spec_of
from ..schedule_flows import list_flow, unschedule_flow, upsert_flow
from ..schedule_spec import Schedule, check_schedule_id
from ..serialization import DEFAULT_MAX_PAYLOAD_BYTES
from ..ticks import Misfire
from ..wire import EnqueueRow
from .driver import Scripts, connect, run
from .listener import Expired, Listener

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _reaching(
    method: Callable[Concatenate[Client, _P], _R],
) -> Callable[Concatenate[Client, _P], _R]:
    """A method that raises ConnectionFailed (naming the URL) for a lost, refused or silent
    Redis, rather than redis-py's own errors."""

    @functools.wraps(method)
    def call(self: Client, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self.backend.reaching():
            return method(self, *args, **kwargs)

    return call


class Client(Producer, QueueNames):
    """The producer side of :class:`redisjobs.Client` for sync code (Flask, Django, threads).

    Args:
        url: as for :class:`redisjobs.Client` (``redis://``, ``rediss://``, ``memory://``;
            default ``$REDIS_URL``). On ``memory://x`` it shares the store of every asyncio
            client and worker of ``memory://x`` in this process.
        queue: the queue used when a call names none.
        max_payload_bytes: cap on an encoded payload.
        durable: as for :class:`redisjobs.Client`: writes return once replicas confirmed them.
        partitions: as for :class:`redisjobs.Client`: the queues spread over partitions.
        **defaults: ``max_retries``, ``retry_delay``, ``retry_backoff``, ``retry_jitter``,
            ``timeout``, ``result_ttl``: the defaults of :meth:`enqueue`, as for the async
            client.

    One instance serves every thread of a process: commands go through a blocking pool of
    connections (a thread beyond its 64 connections waits for one), and every `wait` of the
    process on one queue shares one reader of the queue's event log (a daemon thread). Use it as
    ``with Client(url) as client:``, or call :meth:`close` at shutdown; it connects on first
    use. The calls raise what the async client's raise, ConnectionFailed (naming the URL) among
    them. Tracing (OpenTelemetry) is the async client's alone: this one writes no trace context.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        queue: str = "default",
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        durable: bool | Durability = False,
        partitions: int | Mapping[str, int] = 1,
        **defaults: Unpack[JobDefaults],
    ) -> None:
        QueueNames.__init__(self, queue, partitions)
        backend = Backend(resolve_url(url, warn_private=True))
        Producer.__init__(self, backend, max_payload_bytes, JobOptions(**defaults), durable)
        self._connecting = threading.Lock()
        self._redis: redis.Redis | None = None
        self._homes: SyncHomes | None = None  # a cluster's
        self._scripts: Scripts | None = None
        self._listener: Listener | None = None
        self._pid = os.getpid()

    # -- lifecycle ------------------------------------------------------------------------------

    def _conn(self) -> tuple[redis.Redis, Scripts, Listener]:
        # A forked child (a gunicorn worker of a preloading master) gets its own: the reader
        # thread did not come along, and the parent's sockets are not the child's to use.
        if self._listener is None or self._pid != os.getpid():
            with self._connecting:  # one client, pool and listener, whichever thread is first
                if self._listener is None or self._pid != os.getpid():
                    client = self._connect()
                    self._redis = client
                    embedded = self.backend.embedded
                    self._scripts = Scripts(client, embedded=embedded, durable=self.durable)
                    self._listener = Listener(self.backend)
                    self._pid = os.getpid()
        assert self._redis is not None and self._scripts is not None
        return self._redis, self._scripts, self._listener

    def _connect(self) -> redis.Redis:
        """The client flows run on (on a cluster: the registry's home, routing to the others)."""
        if not self.backend.cluster:
            return connect(self.backend)
        self._homes = SyncHomes(self.backend)
        return self._homes.routed(self.backend.registry.queues)

    def _run(self, flow: Flow[_R]) -> _R:
        client, scripts, _ = self._conn()
        return run(client, flow, scripts)

    @_reaching
    def ping(self) -> None:
        """Check that Redis answers now (ConnectionFailed when it does not)."""
        client, _, _ = self._conn()
        client.ping()

    def close(self) -> None:
        """Close the connections (the event log readers stop too); the client reconnects if
        used again."""
        with self._connecting:
            listener, client, homes = self._listener, self._redis, self._homes
            self._listener = self._redis = self._scripts = self._homes = None
        if listener is not None:
            listener.close()
        if homes is not None:
            homes.close()
        elif client is not None:
            client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- producing ------------------------------------------------------------------------------

    @_reaching
    def enqueue(
        self,
        kind: str,
        payload: Any = None,
        *,
        queue: str | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> Job:
        """Add one job: :meth:`redisjobs.Client.enqueue`, with the same keywords.

        Returns:
            The job as written (or as it already was, for a duplicate `job_id`).

        Raises:
            CallRefused, SerializationError, PayloadTooLarge, ValueError, TypeError: bad input
                (nothing is written).
            RedisOutOfMemory: Redis is at maxmemory. ConnectionFailed: Redis cannot be reached.
            QueueFull: the queue holds its `max_pending` jobs waiting (nothing is written).
        """
        row = self.given_row(kind, payload, options, self.count(queue))
        return self._write_placed(queue, [row])[0]

    @_reaching
    def enqueue_many(self, jobs: Iterable[JobSpec], *, queue: str | None = None) -> list[Job]:
        """Add many jobs, one round trip per 100: :meth:`redisjobs.Client.enqueue_many`.

        Every payload is encoded before anything is written, so one bad payload fails the
        whole call with nothing enqueued.
        """
        return self._write_placed(queue, self.rows(jobs, self.count(queue)))

    def _write_placed(self, queue: str | None, rows: list[EnqueueRow]) -> list[Job]:
        """Write `rows` to `queue`, or to each of its partitions in turn."""
        jobs: list[Job] = [None] * len(rows)  # type: ignore[list-item]
        for keys, at in self.placed(queue, [row.job_id for row in rows]):
            written = self._run(self.write_flow(keys, [rows[i] for i in at]))
            for i, job in zip(at, written, strict=True):
                jobs[i] = job
        return jobs

    @_reaching
    def cancel(self, job_id: str, *, queue: str | None = None) -> bool:
        """Cancel a job: :meth:`redisjobs.Client.cancel`.

        Returns:
            True when it was cancelled, or its worker told to stop it; False when it had
            already finished or does not exist.
        """
        return self._run(cancel_job_flow(self._job_keys(job_id, queue), job_id))

    @_reaching
    def enqueue_flow(self, flow: StepLike, *, queue: str | None = None) -> FlowRun:
        """Write a chain, group, chord or flow: :meth:`redisjobs.Client.enqueue_flow`."""
        return self._run(enqueue_flow_flow(self, flow, self.keys(queue).queue))

    @_reaching
    def cancel_flow(self, flow_id: str, *, queue: str | None = None) -> int:
        """Cancel what has not ended of a flow: :meth:`redisjobs.Client.cancel_flow`."""
        return self._run(cancel_flow_flow(self._job_keys(flow_id, queue).queue, flow_id))

    @_reaching
    def flow_tree(self, job_id: str, *, queue: str | None = None) -> Tree | None:
        """A job's tree: :meth:`redisjobs.Client.flow_tree`."""
        return self._run(tree_flow(self._job_keys(job_id, queue).queue, job_id))

    @_reaching
    def pause(self, queue: str | None = None) -> bool:
        """Pause a queue: :meth:`redisjobs.Client.pause` (True: this call paused it)."""
        return any([self._run(pause_flow(keys)) for keys in self.every(queue)])

    @_reaching
    def resume(self, queue: str | None = None) -> bool:
        """Resume a paused queue: :meth:`redisjobs.Client.resume` (True: this call resumed
        it)."""
        return any([self._run(resume_flow(keys)) for keys in self.every(queue)])

    @_reaching
    def is_paused(self, queue: str | None = None) -> bool:
        """Whether a queue is paused now (a partitioned queue: every partition)."""
        return all([self._run(is_paused_flow(keys)) for keys in self.every(queue)])

    @_reaching
    def set_limit(
        self,
        queue: str | None = None,
        rate: float | None = None,
        per: float = 1.0,
        burst: int | None = None,
        *,
        key: str | None = None,
        max_running: int | None = None,
        max_pending: int | None = None,
    ) -> None:
        """Set a limit of a queue: :meth:`redisjobs.Client.set_limit`."""
        flow = set_limit_flow(self.keys(queue), rate, per, burst, key, max_running, max_pending)
        self._run(flow)

    @_reaching
    def clear_limit(self, queue: str | None = None, key: str | None = None) -> bool:
        """Remove a limit: :meth:`redisjobs.Client.clear_limit` (True: there was one)."""
        return self._run(clear_limit_flow(self.keys(queue), key))

    @_reaching
    def limits(self, queue: str | None = None) -> list[Limit]:
        """The limits of a queue: :meth:`redisjobs.Client.limits`."""
        return self._run(limits_flow(self.keys(queue)))

    @_reaching
    def limit_keys(self, queue: str | None = None) -> list[KeyState]:
        """The limit keys with jobs: :meth:`redisjobs.Client.limit_keys`."""
        return self._run(key_states_flow(self.keys(queue)))

    # -- schedules ------------------------------------------------------------------------------

    @_reaching
    def schedule(
        self,
        schedule_id: str,
        kind: str,
        payload: Any = None,
        *,
        cron: str | None = None,
        every: float | None = None,
        tz: str = "UTC",
        queue: str | None = None,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        limit: int | None = None,
        misfire: Misfire = "skip",
        **options: Unpack[ScheduleOptions],
    ) -> bool:
        """Create or change a recurring job: :meth:`redisjobs.Client.schedule`, with the same
        arguments; True when created or changed, False when this spec was stored already."""
        spec = spec_of(locals(), self.options, self.max_payload_bytes)
        return self._run(upsert_flow(self.keys(queue), spec, self.backend.registry))

    @_reaching
    def unschedule(self, schedule_id: str, *, queue: str | None = None) -> bool:
        """Remove a schedule: :meth:`redisjobs.Client.unschedule`."""
        return self._run(unschedule_flow(self.keys(queue), check_schedule_id(schedule_id)))

    @_reaching
    def schedules(self, queue: str | None = None) -> list[Schedule]:
        """The queue's schedules: :meth:`redisjobs.Client.schedules`."""
        return self._run(list_flow(self.keys(queue)))

    # -- cleaning -------------------------------------------------------------------------------

    @_reaching
    def remove(self, job_id: str, *, queue: str | None = None) -> bool:
        """Delete a finished job now: :meth:`redisjobs.Client.remove`."""
        return self._run(remove_flow(self._job_keys(job_id, queue), job_id))

    @_reaching
    def purge(
        self,
        queue: str | None = None,
        *,
        status: JobStatus | str = JobStatus.FAILED,
        older_than: float | None = None,
    ) -> int:
        """Delete finished jobs of one status, older than `older_than` s:
        :meth:`redisjobs.Client.purge`; returns how many."""
        return self._run(purge_flow(self.keys(queue), status, older_than))

    @_reaching
    def drain(self, queue: str | None = None) -> int:
        """Drop pending and scheduled jobs: :meth:`redisjobs.Client.drain`; how many."""
        return self._run(drain_flow(self.keys(queue)))

    @_reaching
    def obliterate(self, queue: str | None = None, *, force: bool = False) -> int:
        """Delete every key of the queue: :meth:`redisjobs.Client.obliterate` (QueueInUse
        while live workers serve it, unless `force`); returns the jobs deleted."""
        keys = self.keys(queue)
        total = self._run(obliterate_flow(keys, force, self.backend.registry))
        self._known_queues.discard(keys.queue)
        return total

    # -- reading --------------------------------------------------------------------------------

    @_reaching
    def get(self, job_id: str, *, queue: str | None = None) -> Job | None:
        """The job's current state, or None when it does not exist (or has expired), with the
        jobs waiting for it: :meth:`redisjobs.Client.get`."""
        return self._run(get_job_flow(self._job_keys(job_id, queue), job_id))

    @_reaching
    def list_jobs(
        self,
        status: JobStatus | str | None = None,
        *,
        queue: str | None = None,
        limit: int = 100,
        cursor: int = 0,
    ) -> JobPage:
        """Jobs of one status (or of every status), newest first, one page at a time."""
        return self._run(list_jobs_flow(self.keys(queue), status, limit, cursor))

    @_reaching
    def stats(self, queue: str | None = None) -> dict[str, int]:
        """The queue's counters and its jobs waiting now: :meth:`redisjobs.Client.stats`."""
        return self._run(stats_flow(self.keys(queue)))

    @_reaching
    def wait(self, job_id: str, timeout: float | None = None, *, queue: str | None = None) -> Any:
        """Block until the job finishes and return its result.

        Follows the job's events in its queue's log (through the client's one reader of that
        queue) from before it reads the job's state, so a completion in between is never
        missed; no Redis polling.

        Raises:
            WaitTimeout: not finished within `timeout` seconds (also a `TimeoutError`).
            JobFailed: it failed for good. JobCancelled: it was cancelled.
            JobNotFound: there is no such job.
            ConnectionFailed: Redis cannot be reached, or stayed unreachable while waiting for
                over :data:`~redisjobs.sync.listener.DOWN_LIMIT` s.
        """
        keys = self._job_keys(job_id, queue)
        deadline = None if timeout is None else time.monotonic() + timeout
        client, _, listener = self._conn()
        try:
            with listener.subscribe(keys.log, job_id) as inbox:
                return run(client, wait_flow(keys, job_id), receive=lambda: inbox.get(deadline))
        except Expired:
            raise WaitTimeout(f"job {job_id} did not finish within {timeout} s") from None
