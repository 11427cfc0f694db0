"""Tasks: a Python function declared with ``@app.task``, enqueued by calling its methods.

A :class:`Task` wraps the function with its name (what a ``call`` payload's ``fn`` says, and
what workers register it under) and its job defaults. Its ``enqueue`` takes the function's own
arguments, checked against its signature before anything is written, and returns a
:class:`TaskJob` whose ``result()`` is typed as the function's return. The ``ctx`` parameter
(the job's :class:`~redisjobs.ExecContext`) is the worker's to pass: it is left out of the
arguments a caller gives, wherever it stands in the signature.

On the wire a task's job is an ordinary ``call`` job, ``{"fn": name, "args": [...],
"kwargs": {...}}``, so producers in other languages, the CLI and the HTTP API can enqueue it too.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar, cast

from .executors import ExecContext
from .executors._callspec import PREVIOUS, Target
from .handles import SyncTaskJob, TaskJob
from .task_enqueue import enqueue, enqueue_many, enqueue_sync, keyed

if TYPE_CHECKING:
    from .app import App
    from .limits import TaskLimit
    from .schedule_spec import ScheduleSpec

P = ParamSpec("P")
R = TypeVar("R")

Isolation = Literal["thread", "process"]
"""Where a plain (``def``) task runs on a worker: a thread of the worker process (the default;
it cannot be interrupted, so a stuck one keeps its thread), or a child process that is killed
on the job's timeout or cancel."""

log = logging.getLogger("redisjobs.task")

CALL_OPTIONS = frozenset(
    {
        "queue",
        "job_id",
        "delay",
        "at",
        "priority",
        "max_retries",
        "retry_delay",
        "retry_backoff",
        "retry_jitter",
        "timeout",
        "result_ttl",
        "keep_completed",
        "keep_failed",
        "unique",
        "unique_key",
        "unique_ttl",
        "idempotency_ttl",
        "limit_key",
        "depends_on",
        "on_parent_failure",
    }
)
"""What :meth:`Task.options` takes: :meth:`redisjobs.Client.enqueue`'s keywords."""


@dataclass(frozen=True, slots=True)
class TaskCall(Generic[R]):
    """One call of a task, not yet enqueued (:meth:`Task.call`): for :meth:`Task.enqueue_many`."""

    task: Task[Any, R]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    options: Mapping[str, Any] | None = None
    """Its enqueue options (a :class:`BoundTask`'s); None: its task's."""

    def enqueue_options(self) -> dict[str, Any]:
        """The options its job is enqueued with: its own or its task's, and the limit key
        its task derives from its arguments."""
        given = self.task.defaults if self.options is None else self.options
        return keyed(self.task, given, self.args, self.kwargs)

    def takes(self, name: str) -> bool:
        """Whether its function takes a keyword argument `name`."""
        params = inspect.signature(self.task.fn).parameters
        return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class _LocalHost:
    """Where a task called directly (not by a worker) logs: the ``redisjobs.task`` logger."""

    def write_log(self, job_id: str, line: str) -> None:
        log.info("%s: %s", job_id, line)

    async def write_progress(self, ctx: ExecContext) -> None:
        log.debug("%s: %.0f%% %s", ctx.job_id, ctx.progress, ctx.progress_message or "")

    async def read_parents(self, job_id: str) -> dict[bytes, bytes]:
        return {}  # a direct call waited for nothing


def caller_signature(
    fn: Callable[..., Any], filled: Iterable[str] = ("job_id",)
) -> inspect.Signature | None:
    """`fn`'s signature as its callers see it: without ``ctx``, and with the parameters the
    worker fills when a caller does not (`filled`) optional. None when `fn` has none to read.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without one: the worker's call will tell
        return None
    optional = frozenset(filled)
    params = []
    for p in sig.parameters.values():
        if p.name == "ctx":
            continue
        if p.name in optional and p.default is p.empty and p.kind is not p.VAR_POSITIONAL:
            p = p.replace(default=None)
        params.append(p)
    try:
        return sig.replace(parameters=params)
    except ValueError:  # a now-defaulted parameter before required ones: check without it
        return sig.replace(parameters=[p for p in params if p.name not in optional])


MAX_SHAPES = 64
"""Call shapes a task remembers as fitting (a bound: keyword names may come from anywhere)."""


def check_call(
    name: str, sig: inspect.Signature | None, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> None:
    """Raise the TypeError a call of `name` with these arguments would raise (a missing
    argument, an unknown keyword, too many positional ones)."""
    if sig is None:
        return
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{name}: {exc}") from None


class Task(Generic[P, R]):
    """A function the workers of an :class:`~redisjobs.App` run as jobs.

    Made by :meth:`App.task`, not directly. Calling the task runs the function here, now, as a
    plain function; its other methods make jobs of it.

    Attributes:
        name: the name payloads and workers know it by (``module:qualname`` by default).
        fn: the function.
        queue: the queue its jobs go to unless an enqueue says otherwise.
        isolation: where a worker runs a plain function (see :data:`Isolation`).
        schedule: its schedule, when declared with ``cron=`` or ``every=``.
        limit: its limit key and limits, when declared with ``rate_limit=``, ``limit_key=`` or
            ``max_running=``.
    """

    def __init__(
        self,
        app: App,
        fn: Callable[..., Any],
        *,
        name: str,
        queue: str,
        isolation: Isolation,
        defaults: Mapping[str, Any],
    ) -> None:
        self.app, self.fn, self.name, self.queue = app, fn, name, queue
        self.isolation = isolation
        self.__wrapped__ = fn  # what a worker's child process unwraps (and help() shows)
        self.__doc__ = fn.__doc__
        self._signature = caller_signature(fn)
        # Shapes of calls (positional count, keyword names) that fit the signature: whether a
        # call binds depends on nothing else, and binding costs more than the rest of a job.
        self._fits: set[tuple[int, tuple[str, ...]]] = set()
        self._target = Target.of(fn, name)
        self._options: dict[str, Any] = {"queue": queue, **defaults}
        self.schedule: ScheduleSpec | None = None  # set by App.task(cron=..., every=...)
        self.limit: TaskLimit | None = None  # set by App.task(rate_limit=..., limit_key=...)

    def __repr__(self) -> str:
        return f"<Task {self.name} on {self.queue!r}>"

    @property
    def defaults(self) -> Mapping[str, Any]:
        """The enqueue options its jobs get unless an enqueue or :meth:`options` says otherwise."""
        return dict(self._options)

    # -- making jobs ----------------------------------------------------------------------------

    def payload(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], *, chained: bool = False
    ) -> dict[str, Any]:
        """The ``call`` payload of a call with these arguments.

        Args:
            args, kwargs: the call's arguments.
            chained: a step that may follow another in a chain, which may leave out
                ``previous_result``: the chain passes it.

        Raises:
            TypeError: they do not fit the function's signature (a missing argument, an
                unknown keyword, too many positional ones), as a direct call would raise.
        """
        sig, given = self._signature, kwargs
        if chained and sig is not None and PREVIOUS in sig.parameters and PREVIOUS not in kwargs:
            given = {**kwargs, PREVIOUS: None}
        shape = (len(args), tuple(given))
        if shape not in self._fits:
            check_call(self.name, sig, args, given)
            if len(self._fits) < MAX_SHAPES:
                self._fits.add(shape)
        payload: dict[str, Any] = {"fn": self.name}
        if args:  # absent when empty: bytes kept per job
            payload["args"] = list(args)
        if kwargs:
            payload["kwargs"] = dict(kwargs)
        return payload

    def call(self, *args: P.args, **kwargs: P.kwargs) -> TaskCall[R]:
        """This task with these arguments, to enqueue later (:meth:`enqueue_many`, or a step
        of a flow: a chain's step may leave out ``previous_result``, which the chain passes)."""
        self.payload(args, kwargs, chained=True)  # fail here, where the mistake is
        return TaskCall(self, args, kwargs)

    def options(self, **options: Any) -> BoundTask[P, R]:
        """This task with other enqueue options: ``queue``, ``job_id``, ``delay``, ``at``,
        ``priority``, ``max_retries`` (or ``retries``), ``retry_delay``, ``retry_backoff``,
        ``retry_jitter``, ``timeout``, ``result_ttl``, ``keep_completed``, ``keep_failed``,
        ``unique``, ``unique_key``, ``unique_ttl``, ``idempotency_ttl``, ``limit_key``,
        ``depends_on``, ``on_parent_failure`` (as :meth:`redisjobs.Client.enqueue`).

        Raises:
            TypeError: an option that is none of those.
        """
        return BoundTask(self, {**self._options, **enqueue_options(options)})

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskJob[R]:
        """Enqueue a job calling the function with these arguments (checked first).

        Raises:
            TypeError: the arguments do not fit the signature; else as
                :meth:`redisjobs.Client.enqueue` (nothing is written on any error).
        """
        return await enqueue(self, self._options, args, kwargs)

    async def enqueue_many(
        self, calls: Iterable[TaskCall[R] | tuple[Any, ...]]
    ) -> list[TaskJob[R]]:
        """Enqueue many jobs in one round trip per 100 (see :meth:`redisjobs.Client.enqueue_many`).

        Args:
            calls: a tuple of positional arguments per job, or :meth:`call` results (which
                take keyword arguments too, and may be calls of other tasks).
        """
        return await enqueue_many(self, self._options, calls)

    def enqueue_sync(self, *args: P.args, **kwargs: P.kwargs) -> SyncTaskJob[R]:
        """:meth:`enqueue` from sync code (a Flask view, a Django command, a script): no event
        loop needed, thread-safe; through the app's :class:`redisjobs.sync.Client`."""
        return enqueue_sync(self, self._options, args, kwargs)

    # -- running here ---------------------------------------------------------------------------

    def _bind_here(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments of a direct call, with a context of its own for ``ctx`` (its log lines
        go to the ``redisjobs.task`` logger) and a ``local-`` id for ``job_id``."""
        self.payload(args, kwargs)
        job_id = f"local-{uuid.uuid4().hex}"
        ctx = ExecContext(
            _LocalHost(), job_id=job_id, queue=self.queue, kind="call", attempt=1, lease=0
        )
        return self._target.bind(args, dict(kwargs), {"ctx": ctx, "job_id": job_id})


class AsyncTask(Task[P, R]):
    """A task of a coroutine function (``async def``): calling it returns its coroutine."""

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here, now, as a plain call (no job, no Redis)."""
        call_args, call_kwargs = self._bind_here(args, kwargs)
        return cast(R, await self.fn(*call_args, **call_kwargs))


class SyncTask(Task[P, R]):
    """A task of a plain function (``def``): calling it runs it."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here, now, as a plain call (no job, no Redis)."""
        call_args, call_kwargs = self._bind_here(args, kwargs)
        return cast(R, self.fn(*call_args, **call_kwargs))


class BoundTask(Generic[P, R]):
    """A task with enqueue options of its own (:meth:`Task.options`)."""

    __slots__ = ("_options", "task")

    def __init__(self, task: Task[P, R], options: Mapping[str, Any]) -> None:
        self.task, self._options = task, dict(options)

    def options(self, **options: Any) -> BoundTask[P, R]:
        """These options with more (see :meth:`Task.options`)."""
        return BoundTask(self.task, {**self._options, **enqueue_options(options)})

    def call(self, *args: P.args, **kwargs: P.kwargs) -> TaskCall[R]:
        """This task with these arguments and options, to enqueue later (a step of a flow)."""
        self.task.payload(args, kwargs, chained=True)
        return TaskCall(self.task, args, kwargs, self._options)

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskJob[R]:
        """:meth:`Task.enqueue` with these options."""
        return await enqueue(self.task, self._options, args, kwargs)

    async def enqueue_many(
        self, calls: Iterable[TaskCall[R] | tuple[Any, ...]]
    ) -> list[TaskJob[R]]:
        """:meth:`Task.enqueue_many` with these options (a `job_id` among them is refused)."""
        return await enqueue_many(self.task, self._options, calls)

    def enqueue_sync(self, *args: P.args, **kwargs: P.kwargs) -> SyncTaskJob[R]:
        """:meth:`Task.enqueue_sync` with these options."""
        return enqueue_sync(self.task, self._options, args, kwargs)


def enqueue_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` as :meth:`redisjobs.Client.enqueue` takes them (``retries`` is
    ``max_retries``).

    Raises:
        TypeError: an option it does not take.
    """
    out = dict(options)
    if "retries" in out:
        out["max_retries"] = out.pop("retries")
    unknown = set(out) - CALL_OPTIONS
    if unknown:
        raise TypeError(f"unknown task option(s): {', '.join(sorted(unknown))}")
    return out
