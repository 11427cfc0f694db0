"""The contracts of the Pyjobkit face: executors, their context, and the engine's hooks.

Pyjobkit code imports them from here (``from pyjobkit.contracts import Executor``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..executors import ExecContext as _BaseContext
from ._ids import uuid_of

if TYPE_CHECKING:
    import uuid

    from .engine import Engine

__all__ = ["EventBus", "ExecContext", "Executor", "LogRecord", "LogSink"]


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

    __slots__ = ("_shadow",)
    engine: Engine | None = None  # set on the subclass a Worker makes for its engine

    @property
    def is_shadow(self) -> bool:
        """True in a shadow (dry) run: skip side effects; the result is discarded."""
        return getattr(self, "_shadow", False)

    @is_shadow.setter
    def is_shadow(self, value: bool) -> None:
        self._shadow = value

    async def log(self, message: str, /, *, stream: str = "stdout") -> None:
        """Append a line to the job's log; ``stream="stderr"`` marks it."""
        await super().log(message if stream == "stdout" else f"[{stream}] {message}")
        if self.engine is not None and self.engine.log_sink is not None:
            await self.engine.log_sink.write(LogRecord(uuid_of(self.job_id), stream, str(message)))

    async def is_cancelled(self) -> bool:  # type: ignore[override]
        """True once a cancel of this job was requested (Pyjobkit awaits it)."""
        return self.cancelled

    async def set_progress(  # type: ignore[override]
        self, value: float, /, message: str | None = None, **meta: Any
    ) -> None:
        """Report progress in percent; `meta` goes to the engine's event bus."""
        await super().set_progress(value, message)
        if self.engine is not None and self.engine.event_bus is not None:
            topic = f"job.{uuid_of(self.job_id)}.progress"
            await self.engine.event_bus.publish(topic, {"value": value, **meta})
