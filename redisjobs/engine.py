"""The Pyjobkit face (seed ``001``): ``Engine``, ``Worker``, backends, executors, hooks.

A Pyjobkit user switches by changing imports and the backend::

    from redisjobs.engine import Engine, MemoryBackend, RedisBackend, Worker
    from redisjobs.executors import HTTPExecutor, SubprocessExecutor

    engine = Engine(backend=RedisBackend("redis://..."), executors=[SubprocessExecutor()])
    job_id = await engine.enqueue(kind="subprocess", payload={"cmd": ["echo", "hi"]})
    await Worker(engine, max_concurrency=4).run()

It is a thin layer over :class:`~redisjobs.Client` and :class:`~redisjobs.Worker`, so it has
their guarantees, where Pyjobkit's own Redis backend falls short: attempts survive a claim
(``max_attempts`` is enforced), jobs scheduled for later never hold up ready ones, an
``idempotency_key`` is checked atomically with the write, and a lease that runs out (a worker
died) gives the job to another worker instead of failing it.

Differences, by design: a ``cmd`` string needs a worker whose
:class:`~redisjobs.executors.SubprocessExecutor` has ``allow_shell=True`` (a list runs
directly); :class:`~redisjobs.executors.HTTPExecutor` reaches loopback and private addresses
only when allowed (``allow_private``, or the host in ``allow_hosts``); ``priority`` is kept on
the job but jobs of a queue run in FIFO order (give urgent work its own queue); statuses map as
in :data:`STATUS`.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, Self

from redis.exceptions import RedisError

from .client import Client
from .connection import resolve_url
from .errors import RedisJobsError
from .executors import ExecContext as _BaseContext
from .executors.base import ExecutorBase, adapt
from .job import Job, JobStatus
from .worker import Worker as _Worker

__all__ = [
    "STATUS",
    "Engine",
    "EventBus",
    "ExecContext",
    "Executor",
    "LogRecord",
    "LogSink",
    "MemoryBackend",
    "RedisBackend",
    "Worker",
]

KIND = re.compile(r"[A-Za-z0-9_.-]+")
DEFAULT_PRIORITY = 100
_ID_NAMESPACE = uuid.UUID("6d1c5d58-7c0e-4b7b-9d8e-1f6a0c3e2b9a")

STATUS = {
    JobStatus.PENDING: "queued",
    JobStatus.SCHEDULED: "queued",
    JobStatus.RUNNING: "running",
    JobStatus.COMPLETED: "success",
    JobStatus.FAILED: "failed",  # "timeout" when the run outlived its timeout_s
    JobStatus.CANCELLED: "cancelled",
}
"""redisjobs status -> Pyjobkit status."""


# -- backends -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryBackend:
    """The embedded in-memory backend: jobs live in this process only (tests, scripts)."""

    name: str = field(default_factory=lambda: f"pyjobkit-{os.urandom(6).hex()}")
    queue: str = "default"

    @property
    def url(self) -> str:
        """The backend's URL."""
        return f"memory://{self.name}"


@dataclass(frozen=True, slots=True)
class RedisBackend:
    """A Redis server shared by producers and workers (default ``$REDIS_URL``)."""

    url: str = field(default_factory=lambda: resolve_url(None, warn_private=True))
    queue: str = "default"


Backend = MemoryBackend | RedisBackend


# -- observability hooks --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One line an executor logged."""

    job_id: uuid.UUID
    stream: str
    message: str


class LogSink(Protocol):
    """Where executors' log lines also go (the job's own log keeps them anyway)."""

    async def write(self, record: LogRecord) -> None:
        """Take one record."""


class EventBus(Protocol):
    """Where progress is also published, on topic ``job.<id>.progress``."""

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Take one message."""


class Executor(Protocol):
    """Pyjobkit's executor: like :class:`redisjobs.Executor`, with the job id as a UUID.

    Subclass it (``class HelloExecutor(Executor)``) or just match its shape.
    """

    kind: str

    async def run(self, *, job_id: Any, payload: Any, ctx: Any) -> Any:
        """Run one job and return its result; raise to fail it."""


class ExecContext(_BaseContext):
    """:class:`redisjobs.ExecContext` with Pyjobkit's signatures, feeding the engine's hooks."""

    __slots__ = ()
    engine: Engine | None = None  # set on the subclass a Worker makes for its engine

    async def log(self, message: str, /, *, stream: str = "stdout") -> None:
        """Append a line to the job's log; ``stream="stderr"`` marks it."""
        await super().log(message if stream == "stdout" else f"[{stream}] {message}")
        if self.engine is not None and self.engine.log_sink is not None:
            await self.engine.log_sink.write(LogRecord(_uuid(self.job_id), stream, str(message)))

    async def is_cancelled(self) -> bool:  # type: ignore[override]
        """True once a cancel of this job was requested (Pyjobkit awaits it)."""
        return self.cancelled

    async def set_progress(  # type: ignore[override]
        self, value: float, /, message: str | None = None, **meta: Any
    ) -> None:
        """Report progress in percent; `meta` goes to the engine's event bus."""
        await super().set_progress(value, message)
        if self.engine is not None and self.engine.event_bus is not None:
            topic = f"job.{_uuid(self.job_id)}.progress"
            await self.engine.event_bus.publish(topic, {"value": value, **meta})


class _UUIDJobs(ExecutorBase):
    """Hands an executor its job id as a UUID, as Pyjobkit executors expect."""

    def __init__(self, executor: Executor) -> None:
        self.kind = executor.kind
        self._executor = executor
        self._base = adapt(executor)  # its aclose and hung_threads, or their defaults

    async def run(self, *, job_id: str, payload: Any, ctx: _BaseContext) -> Any:
        return await self._executor.run(job_id=_uuid(job_id), payload=payload, ctx=ctx)

    async def aclose(self) -> None:
        await self._base.aclose()

    @property
    def hung_threads(self) -> int:
        return self._base.hung_threads


# -- the engine -----------------------------------------------------------------------------------


def _uuid(job_id: uuid.UUID | str) -> uuid.UUID:
    return job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))


class Engine:
    """Enqueue and inspect jobs; the executors its workers run.

    Args:
        backend: :class:`MemoryBackend` or :class:`RedisBackend`.
        executors: the executors, one per kind.
        log_sink: also receives every line executors log.
        event_bus: also receives every progress report.
    """

    def __init__(
        self,
        *,
        backend: Backend,
        executors: Iterable[Executor] = (),
        log_sink: LogSink | None = None,
        event_bus: EventBus | None = None,
    ) -> None:
        self.backend = backend
        self.executors: dict[str, Executor] = {}
        for executor in executors:
            self.register_executor(executor)
        self.log_sink = log_sink
        self.event_bus = event_bus
        self._client: Client | None = None

    def register_executor(self, executor: Executor) -> None:
        """Add an executor for its kind (workers made afterwards run it).

        Raises:
            ValueError: another executor already has that kind.
        """
        if executor.kind in self.executors:
            raise ValueError(f"duplicate executor kind registered: {executor.kind}")
        self.executors[executor.kind] = executor

    async def client(self) -> Client:
        """The engine's connected client."""
        if self._client is None:
            self._client = await Client(self.backend.url, queue=self.backend.queue).connect()
        return self._client

    async def close(self) -> None:
        """Close the connection."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> Self:
        await self.client()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- enqueueing -------------------------------------------------------------------------------

    def _spec(
        self,
        kind: str,
        payload: Any,
        scheduled_for: datetime | None,
        max_attempts: int | None,
        idempotency_key: str | None,
        timeout_s: float | None,
    ) -> dict[str, Any]:
        if not isinstance(kind, str) or not KIND.fullmatch(kind):
            raise ValueError("kind must contain only alphanumerics, dash, underscore, or dot")
        attempts = 3 if max_attempts is None else max_attempts
        if attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        job_id = (
            uuid.uuid5(_ID_NAMESPACE, f"{self.backend.queue}\0{idempotency_key}")
            if idempotency_key is not None
            else uuid.uuid4()
        )
        # Pyjobkit retries after 1, 2, 4 ... seconds.
        return {
            "kind": kind,
            "payload": payload,
            "job_id": job_id.hex,
            "at": scheduled_for,
            "max_retries": attempts - 1,
            "retry_delay": 1.0,
            "retry_backoff": 2.0,
            "timeout": timeout_s,
        }

    async def enqueue(
        self,
        *,
        kind: str,
        payload: Any,
        priority: int = DEFAULT_PRIORITY,
        scheduled_for: datetime | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
    ) -> uuid.UUID:
        """Add a job; returns its id.

        Args:
            kind: the executor's kind (letters, digits, ``_ . -``).
            payload: the executor's input (anything msgpack encodes).
            priority: kept on the job (order within a queue is FIFO).
            scheduled_for: not before this time (naive = UTC).
            max_attempts: runs in all before it fails for good (default 3).
            idempotency_key: while a job with this key exists, enqueueing it again returns
                that job's id and writes nothing (checked atomically with the write).
            timeout_s: seconds a run may take.

        Raises:
            ValueError: a bad kind or max_attempts.
            SerializationError: the payload is not msgpack-encodable (nothing is written).
        """
        spec = self._spec(kind, payload, scheduled_for, max_attempts, idempotency_key, timeout_s)
        return (await self._write([spec], [priority]))[0]

    async def enqueue_at(self, when: datetime, **kwargs: Any) -> uuid.UUID:
        """:meth:`enqueue` a job that runs at `when`."""
        return await self.enqueue(scheduled_for=when, **kwargs)

    async def enqueue_in(self, delay: float | timedelta, **kwargs: Any) -> uuid.UUID:
        """:meth:`enqueue` a job that runs after `delay` (seconds or a timedelta)."""
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        client = await self.client()
        now = await client.server_time()  # Redis's clock, which the scheduler uses
        when = datetime.fromtimestamp(now + seconds).astimezone()
        return await self.enqueue(scheduled_for=when, **kwargs)

    async def enqueue_many(self, jobs: Iterable[Mapping[str, Any]]) -> list[uuid.UUID]:
        """Add many jobs (mappings of :meth:`enqueue`'s arguments) in few round trips."""
        specs, priorities = [], []
        for job in jobs:
            specs.append(
                self._spec(
                    job["kind"],
                    job.get("payload"),
                    job.get("scheduled_for"),
                    job.get("max_attempts"),
                    job.get("idempotency_key"),
                    job.get("timeout_s"),
                )
            )
            priorities.append(job.get("priority", DEFAULT_PRIORITY))
        return await self._write(specs, priorities)

    async def _write(self, specs: list[dict[str, Any]], priorities: list[int]) -> list[uuid.UUID]:
        client = await self.client()
        written = await client.enqueue_many(specs)
        custom = {
            j.id: int(p) for j, p in zip(written, priorities, strict=True) if p != DEFAULT_PRIORITY
        }
        if custom:
            await client.annotate("priority", custom)
        return [_uuid(j.id) for j in written]

    # -- inspecting -------------------------------------------------------------------------------

    async def get(self, job_id: uuid.UUID | str) -> dict[str, Any]:
        """The job as a Pyjobkit record (see :data:`STATUS` for its ``status``).

        Raises:
            KeyError: no such job (never enqueued, or expired after its result TTL).
        """
        client = await self.client()
        key = _uuid(job_id).hex
        job = await client.get(key)
        if job is None:
            raise KeyError(str(job_id))
        priority = await client.job_field(key, "priority")
        return _record(job, int(priority) if priority else DEFAULT_PRIORITY)

    async def cancel(self, job_id: uuid.UUID | str) -> bool:
        """Cancel a queued or running job; False when it had already ended."""
        return await (await self.client()).cancel(_uuid(job_id).hex)

    async def queue_depth(self) -> int:
        """Jobs waiting to run now."""
        stats = await (await self.client()).stats()
        return int(stats.get("pending", 0))


def _record(job: Job, priority: int) -> dict[str, Any]:
    status = STATUS[job.status]
    if job.status == JobStatus.FAILED and job.failure == "timeout":
        status = "timeout"
    return {
        "id": _uuid(job.id),
        "kind": job.kind,
        "status": status,
        "payload": job.payload,
        "result": job.result,
        "error": job.error,
        "priority": priority,
        "attempts": job.attempt,
        "max_attempts": job.max_retries + 1,
        "timeout_s": job.timeout,
        "scheduled_for": job.scheduled_at,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.completed_at,
        "progress": job.progress,
    }


# -- the worker -----------------------------------------------------------------------------------


class Worker:
    """Runs an engine's jobs with its executors.

    Args:
        engine: the engine whose backend and executors to use.
        max_concurrency: jobs run at once.
        batch: jobs leased per fetch (``batch_size`` is accepted too, as the seed spells it).
        poll_interval: seconds between polls where Redis cannot block (the memory backend).
        lease_ttl: seconds without a heartbeat before another worker takes a job over.
        stop_timeout: seconds running jobs get to finish when the worker stops.
        handle_signals: stop gracefully on SIGTERM/SIGINT.

    Stop it with :meth:`request_stop` (or a signal); :meth:`run` then returns once running
    jobs finished (or were handed back after `stop_timeout`). As an ``async with`` block it
    serves for the block's duration, and a :meth:`run` called in the block (Pyjobkit's
    ``asyncio.create_task(worker.run())``) serves along with it and returns when the block ends.
    Cancelling :meth:`run`, or a task inside the block, hands running jobs back at once and then
    lets the cancellation through.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_concurrency: int = 8,
        batch: int = 1,
        batch_size: int | None = None,
        poll_interval: float = 0.5,
        lease_ttl: float = 30,
        stop_timeout: float = 60,
        handle_signals: bool = True,
    ) -> None:
        self.engine = engine
        self.max_concurrency = max_concurrency
        self.batch = batch_size or batch
        self.poll_interval = poll_interval
        self.lease_ttl = lease_ttl
        self.stop_timeout = stop_timeout
        self.handle_signals = handle_signals
        self._worker: _Worker | None = None
        self._serving: asyncio.Task[None] | None = None
        self._stop_requested = False
        self._stopped = asyncio.Event()

    def _make(self, once: bool) -> _Worker:
        context = type("Context", (ExecContext,), {"__slots__": (), "engine": self.engine})
        backend = self.engine.backend
        return _Worker(
            backend.url,
            queue=backend.queue,
            executors=[_UUIDJobs(e) for e in self.engine.executors.values()],
            concurrency=self.max_concurrency,
            batch_size=self.batch,
            poll_interval=self.poll_interval,
            lease_ttl=self.lease_ttl,
            grace_period=self.stop_timeout,
            handle_signals=self.handle_signals,
            context_class=context,
            burst=once,
        )

    async def run(self, *, once: bool = False) -> None:
        """Serve the queue until :meth:`request_stop` or a signal.

        With `once`, stop as soon as no job is waiting to run and none is running here (the
        worker's burst mode: jobs scheduled for later are not waited for). While the worker
        already serves (an ``async with`` block), this waits until that ends.
        """
        serving = self._serving
        if serving is None or serving.done():
            serving = self._start(once)
        await self._guard(serving)
        serving.result()

    def _start(self, once: bool) -> asyncio.Task[None]:
        """Serve in a task of its own, so that whoever waits for it can be cancelled alone."""
        self._stopped.clear()
        self._worker = worker = self._make(once)
        if self._stop_requested:
            worker.stop()
        self._serving = asyncio.create_task(self._serve(worker), name="pyjobkit-worker")
        return self._serving

    async def _serve(self, worker: _Worker) -> None:
        try:
            await worker.run()
        finally:
            self._worker = None
            self._stopped.set()

    async def _guard(self, serving: asyncio.Task[None], *until: asyncio.Task[None]) -> None:
        """Wait until `serving` (or one of `until`) ends. Cancelled meanwhile: hand the running
        jobs back now, wait for that, then let the cancellation through."""
        try:
            await asyncio.wait([serving, *until], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self._halt(now=True)
            await asyncio.wait([serving])
            raise

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop gracefully."""
        self._halt(now=False)

    def _halt(self, *, now: bool) -> None:
        self._stop_requested = True
        if self._worker is not None:
            self._worker.stop(now=now)

    async def wait_stopped(self) -> None:
        """Return once :meth:`run` has returned."""
        await self._stopped.wait()

    async def check_health(self) -> dict[str, Any]:
        """``{"status": "healthy", "queue_depth": N}``, or ``"unhealthy"`` with a reason."""
        try:
            client = await self.engine.client()
            await client.ping()
            depth = await self.engine.queue_depth()
        except (RedisJobsError, RedisError, OSError) as exc:
            return {"status": "unhealthy", "reason": str(exc)}
        return {"status": "healthy", "queue_depth": depth}

    async def __aenter__(self) -> Self:
        serving = self._serving
        if serving is None or serving.done():
            serving = self._start(once=False)
        worker = self._worker
        if worker is not None:
            ready = asyncio.create_task(worker.wait_ready())
            try:
                await self._guard(serving, ready)
            finally:
                ready.cancel()
        if serving.done():
            serving.result()  # it failed to start: say why
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # Left by a cancellation: hand running jobs back now, not after stop_timeout.
        self._halt(now=exc_type is not None and issubclass(exc_type, asyncio.CancelledError))
        if self._serving is not None:
            await self._guard(self._serving)
            self._serving.result()
