"""The contracts of the Pyjobkit face: executors, their context, and the engine's hooks.

Pyjobkit code imports them from here (``from pyjobkit.contracts import Executor``).
"""

from __future__ import annotations

import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..executors import ExecContext as _BaseContext
from ._ids import uuid_of

if TYPE_CHECKING:
    from .engine import Engine

__all__ = [
    "EventBus",
    "ExecContext",
    "Executor",
    "LogRecord",
    "LogSink",
    "OptimisticLockError",
    "QueueBackend",
    "WorkerContext",
]

# Pyjobkit's logger names, so that a Pyjobkit user's logging configuration still applies
log = logging.getLogger("pyjobkit.contracts")


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


class OptimisticLockError(RuntimeError):
    """The job's version is not the one expected: another worker holds it, or it ended."""


class QueueBackend(ABC):
    """Where an engine keeps its jobs: Pyjobkit's backend interface.

    :class:`~redisjobs.pyjobkit.backends.memory.MemoryBackend` and
    :class:`~redisjobs.pyjobkit.backends.redis.RedisBackend` implement it on redisjobs.
    """

    @abstractmethod
    async def enqueue(self, **job: Any) -> uuid.UUID:
        """Store a job; its id."""

    @abstractmethod
    async def get(self, job_id: uuid.UUID) -> Any:
        """The job's record; KeyError when there is none."""

    @abstractmethod
    async def cancel(self, job_id: uuid.UUID) -> Any:
        """Cancel the job (a running one is asked to stop)."""

    @abstractmethod
    async def is_cancelled(self, job_id: uuid.UUID) -> bool:
        """True once a cancel of the job was requested."""

    @abstractmethod
    async def claim_batch(self, worker_id: uuid.UUID, *, limit: int = 1) -> list[Any]:
        """Lease up to `limit` due jobs to `worker_id`."""

    @abstractmethod
    async def mark_running(self, job_id: uuid.UUID, worker_id: uuid.UUID) -> None:
        """Mark a claimed job running."""

    @abstractmethod
    async def extend_lease(
        self,
        job_id: uuid.UUID,
        worker_id: uuid.UUID,
        ttl_s: float,
        *,
        expected_version: int | None = None,
    ) -> None:
        """Extend `worker_id`'s lease on the job."""

    @abstractmethod
    async def succeed(
        self, job_id: uuid.UUID, result: Any, *, expected_version: int | None = None
    ) -> None:
        """Record the job's result."""

    @abstractmethod
    async def fail(
        self, job_id: uuid.UUID, reason: Any, *, expected_version: int | None = None
    ) -> None:
        """Fail the job for good."""

    @abstractmethod
    async def timeout(self, job_id: uuid.UUID, *, expected_version: int | None = None) -> None:
        """End the run as timed out."""

    @abstractmethod
    async def retry(self, job_id: uuid.UUID, *, delay: float) -> None:
        """Run the job again after `delay` seconds."""

    @abstractmethod
    async def reap_expired(self) -> int:
        """Give jobs whose lease ran out back to the queue; how many."""

    @abstractmethod
    async def queue_depth(self) -> int:
        """Jobs ready to run."""

    @abstractmethod
    async def check_connection(self) -> None:
        """Raise if the backend cannot be reached."""


class ExecContext(ABC):
    """What an executor gets with its job: a log, the cancel flag, progress reports.

    Subclass it for a context of your own (tests, :class:`~redisjobs.pyjobkit.engine.
    DefaultExecContext`); the worker hands executors a :class:`WorkerContext`.
    """

    is_shadow: bool = False
    """True in a shadow (dry) run: skip side effects; the result is discarded."""

    @abstractmethod
    async def log(self, message: str, /, *, stream: str = "stdout") -> None:
        """Append a line to the job's log."""

    @abstractmethod
    async def is_cancelled(self) -> bool:
        """True once a cancel of this job was requested."""

    @abstractmethod
    async def set_progress(self, value: float, /, **meta: Any) -> None:
        """Report progress, with metadata for the event bus."""

    @asynccontextmanager
    async def profile_phase(self, name: str, /, **meta: Any) -> AsyncIterator[None]:
        """Time a phase of the run: logs ``phase.started`` and ``phase.ended`` (with
        ``duration_ms``, `meta`, and ``error`` when the block raised), observes the
        ``pyjobkit_phase_duration_seconds`` histogram, and writes a summary line to the job's
        log. What the block raises goes through."""
        from . import metrics

        job = getattr(self, "job_id", None)
        fields = {"phase": name, "job_id": None if job is None else str(job), **meta}
        log.info("phase started", extra={"event": "phase.started", **fields})
        start, error = time.perf_counter(), None
        try:
            yield
        except BaseException as exc:
            error = type(exc).__name__
            raise
        finally:
            seconds = time.perf_counter() - start
            metrics.phase_duration_seconds.observe(seconds)
            ended = {"event": "phase.ended", "duration_ms": round(seconds * 1000, 3), **fields}
            log.info("phase ended", extra=ended if error is None else {**ended, "error": error})
            note = f" (error: {error})" if error else ""
            await self.log(f"phase {name} took {seconds * 1000:.1f}ms{note}")


class WorkerContext(ExecContext, _BaseContext):
    """The context the face's worker gives executors: :class:`redisjobs.ExecContext` with
    Pyjobkit's signatures, feeding the engine's log sink and event bus."""

    engine: Engine | None = None  # set on the subclass a Worker makes for its engine

    async def log(self, message: str, /, *, stream: str = "stdout") -> None:
        """Append a line to the job's log; ``stream="stderr"`` marks it."""
        await _BaseContext.log(self, message if stream == "stdout" else f"[{stream}] {message}")
        if self.engine is not None and self.engine.log_sink is not None:
            await self.engine.log_sink.write(LogRecord(uuid_of(self.job_id), stream, str(message)))

    async def is_cancelled(self) -> bool:  # type: ignore[override]
        """True once a cancel of this job was requested (Pyjobkit awaits it)."""
        return self.cancelled

    async def set_progress(  # type: ignore[override]
        self, value: float, /, message: str | None = None, **meta: Any
    ) -> None:
        """Report progress in percent; `meta` goes to the engine's event bus."""
        await _BaseContext.set_progress(self, value, message)
        if self.engine is not None and self.engine.event_bus is not None:
            topic = f"job.{uuid_of(self.job_id)}.progress"
            await self.engine.event_bus.publish(topic, {"value": value, **meta})
