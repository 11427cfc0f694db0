"""The context an engine makes for a job outside a worker (``Engine.make_ctx``): it writes to
the engine's log sink and event bus and asks the backend about cancels."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .contracts import EventBus, ExecContext, LogRecord, LogSink

if TYPE_CHECKING:
    from .backends.store import StoreBackend

__all__ = ["PROGRESS_TOPIC", "DefaultExecContext", "ExecContextFactory"]

PROGRESS_TOPIC = "job.{job_id}.progress"
"""The event bus topic of a job's progress reports."""


class ExecContextFactory(Protocol):
    """Makes a job's context: ``factory(job_id, log_sink=..., event_bus=..., backend=...)``."""

    def __call__(
        self, job_id: uuid.UUID, /, *, log_sink: Any, event_bus: Any, backend: Any
    ) -> ExecContext:
        """The context of job `job_id`."""
        ...


@dataclass
class DefaultExecContext(ExecContext):
    """A job's context made by :meth:`~redisjobs.pyjobkit.Engine.make_ctx`.

    Args:
        job_id: the job.
        log_sink: where :meth:`log` writes.
        event_bus: where :meth:`set_progress` publishes (topic ``job.<id>.progress``).
        backend: asked by :meth:`is_cancelled`.
        is_shadow: a shadow (dry) run.
    """

    job_id: uuid.UUID
    log_sink: LogSink
    event_bus: EventBus
    backend: StoreBackend
    is_shadow: bool = False

    async def log(self, message: str, /, *, stream: str = "stdout") -> None:
        """Write a line to the log sink."""
        await self.log_sink.write(LogRecord(self.job_id, stream, message))

    async def is_cancelled(self) -> bool:
        """Whether the backend has a cancel request for the job."""
        return await self.backend.is_cancelled(self.job_id)

    async def set_progress(self, value: float, /, **meta: Any) -> None:
        """Publish ``{"value": value, **meta}`` to the job's progress topic."""
        topic = PROGRESS_TOPIC.format(job_id=self.job_id)
        await self.event_bus.publish(topic, {"value": value, **meta})
