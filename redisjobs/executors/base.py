"""The base class of executors, and the adapter that gives any executor its defaults.

An executor only has to have a ``kind`` and ``async run(*, job_id, payload, ctx)`` (the
:class:`~redisjobs.executors.Executor` protocol). What else a worker asks of it, closing it on
shutdown and the count of threads its stopped jobs left running, has defaults here (as httpx's
``AsyncBaseTransport`` has for ``aclose``): derive from :class:`ExecutorBase` to get them, or
register any object of the protocol's shape, and the worker wraps it once in an adapter.
"""

from __future__ import annotations

import operator
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from . import ExecContext


class ExecutorBase:
    """An executor with the defaults a worker relies on; built-in executors derive from it.

    Subclasses set :attr:`kind` and implement :meth:`run`; they override :meth:`aclose` when
    they hold resources (connections, processes) and :attr:`hung_threads` when stopped jobs
    can leave threads behind.
    """

    kind: str
    """The job kind this executor runs."""

    async def run(self, *, job_id: str, payload: Any, ctx: ExecContext) -> Any:
        """Run one job and return its (msgpack-encodable) result; raise to fail it."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what the executor holds (the worker calls this once, when it stops)."""

    @property
    def hung_threads(self) -> int:
        """Threads still running code of jobs that were stopped (0: it runs no threads)."""
        return 0

    @property
    def allowed(self) -> str:
        """What it may run beyond its kind, for the worker registry ("": anything its kind
        names)."""
        return ""


class _Runs(Protocol):
    kind: str

    async def run(self, *, job_id: str, payload: Any, ctx: ExecContext) -> Any: ...


class _Adapted(ExecutorBase):
    """An executor that does not derive from :class:`ExecutorBase`, with its defaults: its own
    ``aclose`` and ``hung_threads`` when it has them, found once, here."""

    def __init__(self, executor: _Runs) -> None:
        self.kind = executor.kind
        self.wrapped = executor
        closer = getattr(executor, "aclose", None)
        self._aclose: Callable[[], Awaitable[None]] | None = closer if callable(closer) else None
        counts = hasattr(type(executor), "hung_threads")
        self._threads: Callable[[Any], Any] | None = (
            operator.attrgetter("hung_threads") if counts else None
        )

    async def run(self, *, job_id: str, payload: Any, ctx: ExecContext) -> Any:
        """Run the job with the wrapped executor."""
        return await self.wrapped.run(job_id=job_id, payload=payload, ctx=ctx)

    async def aclose(self) -> None:
        """The wrapped executor's ``aclose``, if it has one."""
        if self._aclose is not None:
            await self._aclose()

    @property
    def hung_threads(self) -> int:
        """The wrapped executor's ``hung_threads``, if it has one."""
        return 0 if self._threads is None else int(self._threads(self.wrapped))

    def __repr__(self) -> str:
        return repr(self.wrapped)


def adapt(executor: Any) -> ExecutorBase:
    """`executor` as an :class:`ExecutorBase`: itself when it derives from it, else wrapped.

    Raises:
        ValueError: it has no `kind` string or no `run` method.
    """
    if isinstance(executor, ExecutorBase):
        return executor
    kind = getattr(executor, "kind", None)
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"{executor!r} has no `kind` string")
    if not callable(getattr(executor, "run", None)):
        raise ValueError(f"{executor!r} has no `run` method")
    return _Adapted(executor)
