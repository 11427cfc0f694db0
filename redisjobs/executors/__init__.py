"""Executors run jobs by kind; the worker owns one registry of them.

An executor is any object with a ``kind`` string and ``async run(*, job_id, payload, ctx)``
returning a msgpack-encodable result (the httpx transport shape: one method to plug in);
:class:`ExecutorBase` adds what a worker also asks of it (``aclose``, ``hung_threads``) with
defaults, and the registry wraps an executor that does not derive from it once. It
reports through its :class:`ExecContext`: ``log`` lines, throttled ``set_progress``, the
cancellation signal, and the job's fencing token ``lease`` for fencing its own side effects.

The built-in kinds, each in its own module with its own dependency imported only there:
``call`` (:class:`CallExecutor`), ``http`` (:class:`HTTPExecutor`, httpx), ``subprocess``
(:class:`SubprocessExecutor`) and ``ssh`` (:class:`SSHExecutor`, asyncssh). They are importable
from here; the module of one is loaded when its name is first used.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import UnknownExecutor
from ..serialization import unpackb
from .base import ExecutorBase, adapt

if TYPE_CHECKING:
    from .call import CallExecutor
    from .http import HTTPExecutor
    from .http import HTTPExecutor as HttpExecutor
    from .ssh import SSHExecutor
    from .subprocess import SubprocessExecutor

__all__ = [
    "ANY_KIND",
    "CallExecutor",
    "ExecContext",
    "Executor",
    "ExecutorBase",
    "Executors",
    "HTTPExecutor",
    "HttpExecutor",
    "SSHExecutor",
    "SubprocessExecutor",
]

_BUILT_IN = {
    "CallExecutor": ("call", "CallExecutor"),
    "HTTPExecutor": ("http", "HTTPExecutor"),
    "HttpExecutor": ("http", "HTTPExecutor"),  # Pyjobkit's spelling
    "SSHExecutor": ("ssh", "SSHExecutor"),
    "SubprocessExecutor": ("subprocess", "SubprocessExecutor"),
}


def __getattr__(name: str) -> Any:
    """Load a built-in executor's module (and its dependency) on first use of its name."""
    try:
        module, attr = _BUILT_IN[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), attr)


PROGRESS_INTERVAL = 0.2
"""Seconds between two progress writes of one job; the last value is always written."""


class JobHost(Protocol):
    """What an ExecContext reports to (the worker)."""

    def write_log(self, job_id: str, line: str) -> None:
        """Buffer one log line of a job."""

    async def write_progress(self, ctx: ExecContext) -> None:
        """Record `ctx.progress` of a job under its lease."""

    async def read_parents(self, job_id: str) -> dict[bytes, bytes]:
        """The hash of the results (and ignored failures) of the jobs a job waited for."""


class ExecContext:
    """What a running job may know and do: its identity, logging, progress, cancellation.

    Attributes:
        job_id: the job.
        queue: its queue.
        kind: its kind.
        attempt: 1 for the first run, then one more per retry or reclaim.
        lease: the fencing token of this run; it only grows, so a side effect store can
            reject writes carrying an older token than one it has seen.
        progress: the last progress set (0-100).
        function: the registered name of the function a ``call`` job runs, set by the call
            executor once it has resolved the payload's name to an allowed function (None
            before that, and for the other kinds); the job duration metric's ``name`` label.
    """

    __slots__ = (
        "_cancelled",
        "_host",
        "_last",
        "_trailing",
        "attempt",
        "function",
        "job_id",
        "kind",
        "lease",
        "progress",
        "progress_message",
        "queue",
    )

    def __init__(
        self, host: JobHost, *, job_id: str, queue: str, kind: str, attempt: int, lease: int
    ) -> None:
        self._host = host
        self.job_id = job_id
        self.queue = queue
        self.kind = kind
        self.attempt = attempt
        self.lease = lease
        self.progress = 0.0
        self.progress_message: str | None = None
        self.function: str | None = None
        self._cancelled: asyncio.Event | None = None
        self._last = 0.0
        self._trailing: asyncio.TimerHandle | None = None

    async def children_results(self) -> dict[str, Any]:
        """The results of the jobs this one waited for that completed (its ``depends_on``: a
        chord's group, a flow's children, a chain's previous step), by their ref: the job id
        for a job of this queue, ``queue/id`` for one of another. One read, when called."""
        raw = await self._host.read_parents(self.job_id)
        return {k.decode(): unpackb(v) for k, v in raw.items() if not k.startswith(b"!")}

    async def children_failures(self) -> dict[str, str]:
        """The errors of the jobs this one waited for that failed or were cancelled, when it
        runs anyway (``on_parent_failure="ignore"`` or ``"run"``), by ref."""
        raw = await self._host.read_parents(self.job_id)
        return {
            k[1:].decode(): v.decode("utf-8", "replace") for k, v in raw.items() if k[:1] == b"!"
        }

    async def log(self, message: str) -> None:
        """Append a line to the job's log (kept with the job, shown by its watchers)."""
        self._host.write_log(self.job_id, str(message))

    async def set_progress(self, percent: float, message: str | None = None) -> None:
        """Report progress in percent (0-100), with an optional message.

        Writes are throttled to one per :data:`PROGRESS_INTERVAL` per job; a value set in
        between is written at the end of the interval, so the last one always lands.
        """
        self.progress = max(0.0, min(100.0, float(percent)))
        self.progress_message = message
        wait = self._last + PROGRESS_INTERVAL - time.monotonic()
        if wait <= 0:
            self._cancel_trailing()
            self._last = time.monotonic()
            await self._host.write_progress(self)
        elif self._trailing is None:
            self._trailing = asyncio.get_running_loop().call_later(wait, self._flush_trailing)

    def _flush_trailing(self) -> None:
        self._trailing = None
        self._last = time.monotonic()
        task = asyncio.ensure_future(self._host.write_progress(self))
        task.add_done_callback(_ignore_result)

    def _cancel_trailing(self) -> None:
        if self._trailing is not None:
            self._trailing.cancel()
            self._trailing = None

    async def flush(self) -> None:
        """Write progress the throttle is still holding back (the worker calls this at the end)."""
        if self._trailing is not None:
            self._cancel_trailing()
            await self._host.write_progress(self)

    @property
    def cancelled(self) -> bool:
        """True once a cancel of this job was requested (check it in long loops)."""
        return self._cancelled is not None and self._cancelled.is_set()

    def is_cancelled(self) -> bool:
        """Same as :attr:`cancelled`, as a call."""
        return self.cancelled

    async def wait_cancelled(self) -> None:
        """Return when a cancel of this job is requested."""
        if self._cancelled is None:
            self._cancelled = asyncio.Event()
        await self._cancelled.wait()

    def request_cancel(self) -> None:
        """Mark the job as cancelled (the worker calls this before cancelling the task)."""
        if self._cancelled is None:
            self._cancelled = asyncio.Event()
        self._cancelled.set()


def _ignore_result(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # a failed trailing progress write is not worth a crash


@runtime_checkable
class Executor(Protocol):
    """Runs the jobs of one kind."""

    kind: str

    async def run(self, *, job_id: str, payload: Any, ctx: ExecContext) -> Any:
        """Run one job and return its (msgpack-encodable) result; raise to fail it."""


ANY_KIND = "*"
"""The kind of an executor that gets every job whose kind has no executor of its own (the
Pyjobkit face's filtered workers register one that declines those jobs)."""


class Executors:
    """The executors of one worker, by kind, each an :class:`ExecutorBase` (an executor that
    does not derive from it is wrapped, once, when it is added). An executor of kind
    :data:`ANY_KIND` gets the jobs of every kind that has none of its own.

    Raises:
        ValueError: two executors claim the same kind, or one is not an executor.
    """

    def __init__(self, executors: Iterable[Executor] = ()) -> None:
        self._by_kind: dict[str, ExecutorBase] = {}
        self._users = 1
        for ex in executors:
            self.add(ex)

    def add(self, executor: Executor) -> None:
        """Register `executor` under its kind.

        Raises:
            ValueError: another executor has that kind, or it has no `kind` or `run`.
        """
        adapted = adapt(executor)
        if adapted.kind in self._by_kind:
            raise ValueError(f"two executors for kind {adapted.kind!r}")
        self._by_kind[adapted.kind] = adapted

    def get(self, kind: str) -> ExecutorBase:
        """The executor of `kind`, else the one of :data:`ANY_KIND`.

        Raises:
            UnknownExecutor: none is registered for it.
        """
        found = self._by_kind.get(kind)
        if found is None:
            found = self._by_kind.get(ANY_KIND)
        if found is None:
            raise UnknownExecutor(f"no executor for kind {kind!r} on this worker")
        return found

    def __contains__(self, kind: object) -> bool:
        return kind in self._by_kind

    def all(self) -> list[ExecutorBase]:
        """Every registered executor."""
        return list(self._by_kind.values())

    @property
    def hung_threads(self) -> int:
        """Threads still running code of stopped jobs, over every executor."""
        return sum(ex.hung_threads for ex in self._by_kind.values())

    @property
    def allowed(self) -> str:
        """What the worker may run: each kind, with what its executor allows in brackets
        (``call [app.tasks:resize, app.reports:*]; http``)."""
        return "; ".join(
            f"{kind} [{ex.allowed}]" if ex.allowed else kind
            for kind, ex in sorted(self._by_kind.items())
        )

    def share(self) -> Executors:
        """This registry, for one more worker: it is closed when the last of them closes it."""
        self._users += 1
        return self

    async def aclose(self) -> None:
        """Close every executor (once every worker sharing them has closed them)."""
        self._users -= 1
        if self._users > 0:
            return
        for executor in self._by_kind.values():
            await executor.aclose()

    @property
    def kinds(self) -> list[str]:
        """The registered kinds."""
        return sorted(self._by_kind)
