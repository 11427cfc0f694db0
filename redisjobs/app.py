"""An App: the tasks of a service, and the connections that enqueue them.

``app = App(url)`` at the top of a module, ``@app.task`` on the functions, and the same module
is both sides: producers import it to enqueue (``await resize.enqueue(...)``, or
``resize.enqueue_sync(...)`` from sync code), workers serve it (``redisjobs worker
myapp.tasks:app`` or ``Worker(app=app)``) and run each task by its registered name. Nothing
connects until the first enqueue.

The async client is one per event loop: a loop's connections cannot serve another loop, and a
service that runs ``asyncio.run`` per request (or a notebook that restarts its loop) would
otherwise reuse connections of a closed loop. The sync client is one per App, shared by every
thread.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, Unpack, overload

from .cancelling import cancel_and_wait
from .connection import resolve_url
from .executors import ExecContext
from .executors._callspec import valid_name
from .executors._procpool import check_process_target
from .executors.call import function_ref
from .jobrules import TaskRules
from .limits import TaskLimit
from .names import check_queue_name
from .options import JobOptions
from .schedule_spec import ScheduleSpec
from .task import AsyncTask, Isolation, SyncTask, Task
from .ticks import Misfire

if TYPE_CHECKING:
    from .client import Client
    from .executors.call import CallExecutor
    from .sync import Client as SyncClient

P = ParamSpec("P")
R = TypeVar("R")

ISOLATIONS = ("thread", "process")

_JOB_DEFAULTS = (
    ("max_retries", "retries"),
    ("retry_delay", "retry_delay"),
    ("retry_backoff", "retry_backoff"),
    ("retry_jitter", "retry_jitter"),
    ("timeout", "timeout"),
    ("result_ttl", "result_ttl"),
    ("priority", "priority"),
)
"""A job default of a task, by the name of its argument to :meth:`App.task`."""


class TaskDecorator(Protocol):
    """What ``@app.task(...)`` with options returns: applied to the function, a Task."""

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[Concatenate[ExecContext, P], Coroutine[Any, Any, R]], /
    ) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, fn: Callable[Concatenate[ExecContext, P], R], /) -> SyncTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> SyncTask[P, R]: ...


def _default_name(fn: Callable[..., Any]) -> str:
    """``module:qualname``; the bare qualname for a function of a script (``__main__`` is no
    name a payload may use)."""
    ref = function_ref(fn)
    if valid_name(ref):
        return ref
    short = getattr(fn, "__qualname__", "")
    if getattr(fn, "__module__", None) == "__main__" and valid_name(short):
        return str(short)
    raise ValueError(
        f"{ref} has no name a job can carry (a nested, private or lambda function): define it "
        "at the top of a module, or give it one with @app.task(name=...)"
    )


class App:
    """The tasks of a service, with the connections that enqueue them.

    Args:
        url: the Redis URL (see :class:`~redisjobs.Client`); default ``$REDIS_URL`` (read at
            the first enqueue), else the embedded ``memory://`` with a warning.
        queue: the queue of tasks that name none.

    Use ``async with app:`` (or ``await app.aclose()``, and ``app.close()`` for the sync
    client) to close its connections at the end; a process that just exits needs neither.
    """

    def __init__(self, url: str | None = None, *, queue: str = "default") -> None:
        self.url, self.queue = url, check_queue_name(queue)
        self._tasks: dict[str, Task[Any, Any]] = {}
        # Each loop's client, with the task that closes it when the loop ends.
        self._clients: dict[asyncio.AbstractEventLoop, tuple[Client, asyncio.Task[None]]] = {}
        self._sync: SyncClient | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<App {sorted(self._tasks)} queue={self.queue!r}>"

    # -- declaring tasks ------------------------------------------------------------------------

    @overload
    def task(  # type: ignore[overload-overlap]
        self, fn: Callable[Concatenate[ExecContext, P], Coroutine[Any, Any, R]], /
    ) -> AsyncTask[P, R]: ...
    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...  # type: ignore[overload-overlap]
    @overload
    def task(self, fn: Callable[Concatenate[ExecContext, P], R], /) -> SyncTask[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R], /) -> SyncTask[P, R]: ...
    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
        retry_backoff: float | None = None,
        retry_jitter: float | None = None,
        timeout: float | None = None,
        result_ttl: float | None = None,
        priority: int | None = None,
        isolation: Isolation = "thread",
        cron: str | None = None,
        every: float | None = None,
        tz: str = "UTC",
        misfire: Misfire = "skip",
        rate_limit: str | None = None,
        limit_key: Callable[..., Any] | str | None = None,
        max_running: int | None = None,
        **rules: Unpack[TaskRules],
    ) -> TaskDecorator: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        queue: str | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
        retry_backoff: float | None = None,
        retry_jitter: float | None = None,
        timeout: float | None = None,
        result_ttl: float | None = None,
        priority: int | None = None,
        isolation: Isolation = "thread",
        cron: str | None = None,
        every: float | None = None,
        tz: str = "UTC",
        misfire: Misfire = "skip",
        rate_limit: str | None = None,
        limit_key: Callable[..., Any] | str | None = None,
        max_running: int | None = None,
        **rules: Unpack[TaskRules],
    ) -> Any:
        """Declare a task: ``@app.task`` or ``@app.task(retries=3, timeout=60, ...)``.

        Args:
            fn: the function (``async def`` or ``def``); one that names a ``ctx`` parameter
                gets the job's :class:`~redisjobs.ExecContext` there.
            name: what jobs and workers call it (default ``module:qualname``).
            queue: its jobs' queue (default: the app's).
            retries, retry_delay, retry_backoff, retry_jitter, timeout, result_ttl, priority,
                **rules: its jobs' defaults (as :meth:`redisjobs.Client.enqueue`; ``retries``
                is ``max_retries``), which an enqueue's :meth:`Task.options` may override.
            isolation: ``"thread"`` (default) or ``"process"`` for a plain function that must
                be stoppable: a worker runs it in a child process it kills on the job's
                timeout or cancel.
            cron, every, tz, misfire: also run it, with no arguments, on a schedule (as
                :meth:`redisjobs.Client.schedule`'s) whose id is its name with ``:`` made ``.``,
                upserted by the app's workers at start, kept in Redis until unscheduled.
            rate_limit, limit_key, max_running: its jobs' limit key, ``"<name>:<value>"``
                with `limit_key` (a function of the task's arguments, or a constant), else
                ``"<name>"``, and that key's limits (as :meth:`redisjobs.Client.set_limit`'s,
                `rate_limit` as ``"100/s"``, ``"5/m"``, ``"10/2s"``), upserted by the app's
                workers at start as the spec of every key of the task.

        Raises:
            ValueError: an invalid option, or a name another task of the app has.
            TypeError: a scheduled function that needs arguments.
        """
        given = locals()
        defaults = {k: given[arg] for k, arg in _JOB_DEFAULTS if given[arg] is not None}
        defaults |= {k: v for k, v in rules.items() if v is not None}
        when = {"cron": cron, "every": every, "tz": tz, "misfire": misfire}
        limit = (rate_limit, limit_key, max_running)

        def declare(f: Callable[..., Any]) -> Task[Any, Any]:
            task = self._declare(f, name, queue, isolation, defaults)
            try:
                task.limit = TaskLimit.build(task.name, *limit)
            except ValueError:
                del self._tasks[task.name]
                raise
            if when["cron"] is not None or when["every"] is not None:
                self._schedule(task, when)  # after the limit: its runs carry the limit key
            return task

        return declare if fn is None else declare(fn)

    def _declare(
        self,
        fn: Callable[..., Any],
        name: str | None,
        queue: str | None,
        isolation: Isolation,
        defaults: Mapping[str, Any],
    ) -> Task[Any, Any]:
        name = name if name is not None else _default_name(fn)
        if not valid_name(name):
            raise ValueError(f"task name {name!r} is not a name a job can carry")
        if name in self._tasks:
            raise ValueError(f"the app already has a task named {name!r}")
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be 'thread' or 'process', got {isolation!r}")
        if isolation == "process":  # refused here, not by every worker that registers it
            check_process_target(fn)
        _check_defaults(defaults)
        kind: type[Task[Any, Any]] = AsyncTask if inspect.iscoroutinefunction(fn) else SyncTask
        task = kind(
            self,
            fn,
            name=name,
            queue=check_queue_name(queue or self.queue),
            isolation=isolation,
            defaults=defaults,
        )
        self._tasks[name] = task
        return task

    def _schedule(self, task: Task[Any, Any], when: Mapping[str, Any]) -> None:
        """Give `task` its schedule (checked now, as everything else of a task)."""
        options = {k: v for k, v in task.defaults.items() if k != "queue"}
        try:
            task.payload((), {})
            if task.limit is not None:  # its runs carry the key a call with no arguments has
                options["limit_key"] = task.limit.key((), {})
        except TypeError as exc:
            del self._tasks[task.name]
            raise TypeError(f"a scheduled task is called with no arguments: {exc}") from None
        except ValueError:
            del self._tasks[task.name]
            raise
        sid = task.name.replace(":", ".")
        try:
            spec = ScheduleSpec.build(sid, "call", {"fn": task.name}, **when, options=options)
            if any(t.schedule and t.schedule.schedule_id == sid for t in self._tasks.values()):
                raise ValueError(f"the app already has a schedule {sid!r}")
        except ValueError:
            del self._tasks[task.name]
            raise
        task.schedule = spec

    def schedules(self, queue: str) -> list[ScheduleSpec]:
        """The schedules the app's tasks on `queue` declare (what its workers upsert)."""
        tasks = self._tasks.values()
        return [t.schedule for t in tasks if t.schedule is not None and t.queue == queue]

    def limits(self, queue: str) -> list[TaskLimit]:
        """The limits the app's tasks on `queue` declare (what its workers upsert)."""
        return [t.limit for t in self._tasks.values() if t.limit is not None and t.queue == queue]

    def register(self, call: CallExecutor) -> CallExecutor:
        """Allow `call` (a worker's ``call`` executor) to run the app's tasks, each by its name
        and with its isolation; returns it."""
        for task in self._tasks.values():
            call.register(task.fn, name=task.name, isolation=task.isolation)
        return call

    @property
    def tasks(self) -> Mapping[str, Task[Any, Any]]:
        """The app's tasks by name."""
        return dict(self._tasks)

    @property
    def queues(self) -> list[str]:
        """The queues its tasks use (the app's own queue when it has no task)."""
        return list(dict.fromkeys(t.queue for t in self._tasks.values())) or [self.queue]

    # -- connections ----------------------------------------------------------------------------

    def client(self) -> Client:
        """The async :class:`~redisjobs.Client` of the running event loop (made on first use).

        Raises:
            RuntimeError: no event loop runs in this thread (use :meth:`sync_client`).
        """
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is not None:
            return entry[0]
        from .client import Client

        client = Client(self._url(), queue=self.queue)
        closer = loop.create_task(_close_at_loop_end(client), name="redisjobs-app-client")
        # A loop that never ends (a notebook's) leaves this task pending at exit: not an error.
        closer._log_destroy_pending = False  # type: ignore[attr-defined]
        with self._lock:  # loops of other threads may be here too
            # A loop that has closed left its client unusable (and closed): forget it.
            for old in [old for old in self._clients if old.is_closed()]:
                del self._clients[old]
            self._clients[loop] = (client, closer)
        return client

    def sync_client(self) -> SyncClient:
        """The app's :class:`redisjobs.sync.Client`, shared by every thread (made on first use)."""
        client = self._sync
        if client is None:
            with self._lock:
                if self._sync is None:
                    from .sync import Client as SyncClient

                    self._sync = SyncClient(self._url(), queue=self.queue)
                client = self._sync
        return client

    def _url(self) -> str:
        with self._lock:
            if self.url is None:
                self.url = resolve_url(None, warn_private=True)
            return self.url

    async def aclose(self) -> None:
        """Close the async client of the running loop (if it has one)."""
        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await cancel_and_wait([entry[1]])  # which closes the client

    def close(self) -> None:
        """Close the sync client (if there is one)."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()

    async def __aenter__(self) -> App:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
        await asyncio.to_thread(self.close)


async def _close_at_loop_end(client: Client) -> None:
    """Close `client` when its loop ends: ``asyncio.run`` (and pytest's loops) cancel every
    task left before closing the loop, and a client's connections must be closed while their
    loop still runs."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        await client.aclose()
        raise
    # Destroyed instead, at the exit of an interpreter whose loop never ended (a notebook's):
    # no await is possible then, and the process's end closes the sockets.


def _check_defaults(defaults: Mapping[str, Any]) -> None:
    """Refuse an invalid job default when the task is declared, not at its first enqueue."""
    JobOptions().with_overrides(defaults)
