"""The Pyjobkit face's parts a worker and an engine share: backends, hooks, executors' shape.

:mod:`redisjobs.engine` re-exports every public name here; import them from there.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .connection import resolve_url
from .executors import ExecContext as _BaseContext
from .executors.base import ExecutorBase, adapt

if TYPE_CHECKING:
    from .engine import Engine


def uuid_of(job_id: uuid.UUID | str) -> uuid.UUID:
    """A job id as the UUID Pyjobkit code expects."""
    return job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))


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


class UUIDJobs(ExecutorBase):
    """Hands an executor its job id as a UUID, as Pyjobkit executors expect."""

    def __init__(self, executor: Executor) -> None:
        self.kind = executor.kind
        self._executor = executor
        self._base = adapt(executor)  # its aclose and hung_threads, or their defaults

    async def run(self, *, job_id: str, payload: Any, ctx: _BaseContext) -> Any:
        """Run the job with the Pyjobkit executor, its id as a UUID."""
        return await self._executor.run(job_id=uuid_of(job_id), payload=payload, ctx=ctx)

    async def aclose(self) -> None:
        """The executor's own ``aclose``, if it has one."""
        await self._base.aclose()

    @property
    def hung_threads(self) -> int:
        """The executor's own ``hung_threads``, else 0."""
        return self._base.hung_threads
