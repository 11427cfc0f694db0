"""The Pyjobkit face's ``Engine``: enqueue and inspect jobs (see :mod:`redisjobs.pyjobkit`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Self

from ..client import Client
from ..job import Job, JobStatus
from ..options import DEFAULT_PRIORITY
from ._ids import uuid_of as _uuid
from .backends import Backend
from .contracts import EventBus, Executor, LogSink
from .types import JobRecord
from .types import JobStatus as Status

__all__ = ["STATUS", "Engine"]

KIND = re.compile(r"[A-Za-z0-9_.-]+")
_ID_NAMESPACE = uuid.UUID("6d1c5d58-7c0e-4b7b-9d8e-1f6a0c3e2b9a")

STATUS: dict[JobStatus, Status] = {
    JobStatus.WAITING: "queued",
    JobStatus.PENDING: "queued",
    JobStatus.SCHEDULED: "queued",
    JobStatus.RUNNING: "running",
    JobStatus.COMPLETED: "success",
    JobStatus.FAILED: "failed",  # "timeout" when the run outlived its timeout_s
    JobStatus.CANCELLED: "cancelled",
}
"""redisjobs status -> Pyjobkit status."""


# -- the engine -----------------------------------------------------------------------------------


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
            priority: 0..2**21, lower runs sooner (FIFO within a priority).
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
        return (await self._write([{**spec, "priority": priority}]))[0]

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
        specs = []
        for job in jobs:
            spec = self._spec(
                job["kind"],
                job.get("payload"),
                job.get("scheduled_for"),
                job.get("max_attempts"),
                job.get("idempotency_key"),
                job.get("timeout_s"),
            )
            specs.append({**spec, "priority": job.get("priority", DEFAULT_PRIORITY)})
        return await self._write(specs)

    async def _write(self, specs: list[dict[str, Any]]) -> list[uuid.UUID]:
        written = await (await self.client()).enqueue_many(specs)
        return [_uuid(j.id) for j in written]

    # -- inspecting -------------------------------------------------------------------------------

    async def get(self, job_id: uuid.UUID | str) -> JobRecord:
        """The job as a Pyjobkit record (see :data:`STATUS` for its ``status``).

        Raises:
            KeyError: no such job (never enqueued, or expired after its result TTL).
        """
        client = await self.client()
        key = _uuid(job_id).hex
        job = await client.get(key)
        if job is None:
            raise KeyError(str(job_id))
        return _record(job)

    async def cancel(self, job_id: uuid.UUID | str) -> bool:
        """Cancel a queued or running job; False when it had already ended."""
        return await (await self.client()).cancel(_uuid(job_id).hex)

    async def queue_depth(self) -> int:
        """Jobs waiting to run now."""
        stats = await (await self.client()).stats()
        return int(stats.get("pending", 0))


def _record(job: Job) -> JobRecord:
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
        "priority": job.priority,
        "attempts": job.attempt,
        "max_attempts": job.max_retries + 1,
        "timeout_s": job.timeout,
        "scheduled_for": job.scheduled_at,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.completed_at,
        "leased_by": job.worker if job.status == JobStatus.RUNNING else None,
        "version": job.lease,
        # the flag goes when the job ends: a cancelled job was asked to
        "cancel_requested": job.cancel_requested or job.status == JobStatus.CANCELLED,
        "progress": job.progress,
    }
