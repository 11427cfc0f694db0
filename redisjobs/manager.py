"""The JobManager face (seed ``000``): submit Python callables, wait, follow, get called back.

A thin layer over :class:`~redisjobs.Client` and :class:`~redisjobs.Worker`: a submitted
callable becomes a ``call`` job; the manager's own worker (``max_workers`` slots) runs it, or, with
``run_workers=False``, a fleet of ``redisjobs worker`` processes elsewhere does. Completion and
failure handlers run in the process that submitted the job, driven by the queue's events.

Without a URL everything runs in this process on the embedded backend, and any callable works:
functions, closures, lambdas, bound methods (``self.generate_video``). A job function may ask for
``job_id``, ``manager`` (this manager, e.g. for :meth:`JobManager.update_progress`) or ``ctx``
(its :class:`~redisjobs.ExecContext`) by naming them as parameters: the worker's ``call``
executor passes them (``manager`` is a value this manager gives it to inject). Plain functions
run in that executor's threads, bounded by its ``max_threads`` and counted in the worker's
``hung_threads`` when their job was stopped under them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import re
from collections.abc import Callable
from typing import Any, Self, TypeVar

from .client import Client
from .errors import CallRefused, ConnectionFailed, JobFailed, JobNotFound
from .executors._callspec import find_function, valid_name
from .executors.call import CallExecutor, function_ref
from .job import Job, JobStatus
from .options import DEFAULT_PRIORITY, new_job_id
from .task import Task, caller_signature, check_call
from .worker import Worker

log = logging.getLogger("redisjobs.manager")

CANCEL_WAIT = 5.0
"""Seconds :meth:`JobManager.cancel` waits for a running job's worker to record the cancel."""

Handler = Callable[[str, Any], Any]
H = TypeVar("H", bound=Handler)


def _importable(func: Callable[..., Any]) -> bool:
    """True when a worker in another process (allowing its module) finds `func` by its
    ``module:qualname``: a public function defined where its name says."""
    ref = function_ref(func)
    try:
        return valid_name(ref) and find_function(ref) == func
    except CallRefused:
        return False


def _local_name(func: Callable[..., Any], n: int) -> str:
    """The `n`-th name only this manager's worker knows: the words of `func`'s ``module:qualname``
    (a closure's, a lambda's or a private function's name is none a payload may use)."""
    words = ".".join(re.findall(r"[A-Za-z][A-Za-z0-9_]*", function_ref(func)))
    return f"{words[:150].rstrip('.') or 'job'}_{n}"


class JobManager:
    """Background jobs with status, progress, retries, cancellation and callbacks.

    Args:
        max_workers: jobs this manager's worker runs at once.
        max_retries: attempts after the first when a job raises.
        retry_delay: seconds before the first retry.
        retry_backoff: factor by which each further retry waits longer.
        url: a Redis URL. None runs on a private embedded backend in this process.
        queue: the queue (default: a private one when the manager runs its own worker, so that
            its closures and bound methods never reach another process; ``"default"`` otherwise).
        run_workers: run the jobs in this process. False leaves them to ``redisjobs worker``
            processes serving `queue`; then only importable functions can be submitted.
        timeout: seconds a job may run before it fails (None: no limit).
        lease_ttl: seconds after which another worker takes over the job of a dead one.

    Use it as an async context manager, or call :meth:`close` at the end; it starts itself on
    first use.
    """

    def __init__(
        self,
        max_workers: int = 4,
        max_retries: int = 0,
        retry_delay: float = 1.0,
        retry_backoff: float = 2.0,
        *,
        url: str | None = None,
        queue: str | None = None,
        run_workers: bool = True,
        timeout: float | None = None,
        lease_ttl: float = 30.0,
    ) -> None:
        if not run_workers and (url is None or url.startswith("memory://")):
            raise ValueError("run_workers=False needs a Redis URL the workers share")
        self.max_workers = max_workers
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.retry_backoff = retry_backoff
        self.url = url or f"memory://manager-{os.urandom(6).hex()}"
        self.queue = queue or (f"manager-{os.urandom(6).hex()}" if run_workers else "default")
        self.run_workers = run_workers
        self.timeout = timeout
        self.lease_ttl = lease_ttl
        self._on_complete: list[Handler] = []
        self._on_failure: list[Handler] = []
        self._call = CallExecutor(inject={"manager": self})
        self._refs: dict[Any, tuple[str, inspect.Signature | None]] = {}
        self._mine: set[str] = set()  # submitted here, final event not seen yet
        self._client: Client | None = None
        self._worker: Worker | None = None
        self._follower: asyncio.Task[None] | None = None
        self._start_lock: asyncio.Lock | None = None
        self._handler_tasks: set[asyncio.Task[Any]] = set()

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> Self:
        """Connect, start the worker (if any) and the event follower; idempotent."""
        if self._client is not None:
            return self
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._client is None:
                await self._start()
        return self

    async def _start(self) -> None:
        client = await Client(self.url, queue=self.queue).connect()
        try:
            if self.run_workers:
                worker = Worker(
                    self.url,
                    queue=self.queue,
                    executors=[self._call],
                    concurrency=self.max_workers,
                    lease_ttl=self.lease_ttl,
                    poll_interval=0.05,
                    handle_signals=False,
                )
                await worker.__aenter__()
                self._worker = worker
            # Replaying the log from its current end leaves no gap before the follow begins.
            since = await client.log_cursor()
            self._follower = asyncio.create_task(self._follow(client, since))
        except BaseException:
            await client.aclose()
            raise
        self._client = client

    async def close(self) -> None:
        """Stop the worker (running jobs get its grace period), the follower and the client."""
        if self._worker is not None:
            self._worker.stop()
            await self._worker.__aexit__(None, None, None)
            self._worker = None
        if self._handler_tasks:
            await asyncio.wait(self._handler_tasks, timeout=5)
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _ready(self) -> Client:
        await self.start()
        assert self._client is not None
        return self._client

    # -- submitting -----------------------------------------------------------------------------

    async def submit(
        self,
        func: Callable[..., Any],
        args: dict[str, Any] | None = None,
        *,
        priority: int = DEFAULT_PRIORITY,
    ) -> Job:
        """Run ``func(**args)`` as a job; returns the job (status ``pending``).

        `priority` orders it among the pending jobs: 0..2**21, lower runs sooner.

        Raises:
            ValueError: `func` cannot run where the jobs run (not importable, and no worker here).
            SerializationError: `args` is not msgpack-encodable (nothing was submitted).
        """
        client = await self._ready()
        ref, sig = self._ref(func)
        check_call(ref, sig, (), args or {})  # here, not when a worker runs it
        payload = {"fn": ref, "args": dict(args or {})}
        job_id = new_job_id()
        self._mine.add(job_id)  # before the enqueue: its final event may come before the reply
        try:
            return await client.enqueue(
                "call",
                payload,
                job_id=job_id,
                priority=priority,
                max_retries=self.max_retries,
                retry_delay=self.retry_delay,
                retry_backoff=self.retry_backoff,
                timeout=self.timeout,
            )
        except BaseException:
            self._mine.discard(job_id)
            raise

    def _ref(self, func: Callable[..., Any]) -> tuple[str, inspect.Signature | None]:
        """The name `func` is submitted under (registering it with this manager's worker), and
        the signature its arguments must fit. A task of an App goes by its own name."""
        if not callable(func):
            raise TypeError(f"submit() needs a callable, got {type(func).__name__}")
        try:
            known = self._refs.get(func)
        except TypeError:  # unhashable callable object: one registration per submit
            known = None
        if known is not None:
            return known
        if isinstance(func, Task):  # a task is known to every worker of its app by its name
            ref, fn = func.name, func.fn
        else:
            ref, fn = self._name_of(func), func
        self._call.register(fn, name=ref)
        known = (ref, caller_signature(fn, filled=("job_id", "manager")))
        with contextlib.suppress(TypeError):
            self._refs[func] = known
        return known

    def _name_of(self, func: Callable[..., Any]) -> str:
        importable = _importable(func)
        if not self.run_workers and not importable:
            raise ValueError(
                f"{function_ref(func)} cannot run on workers in other processes: submit a "
                "module-level function, or let this manager run its own workers"
            )
        return function_ref(func) if importable else _local_name(func, len(self._refs))
        importable = _importable(func)
        if not self.run_workers and not importable:
            raise ValueError(
                f"{function_ref(func)} cannot run on workers in other processes: submit a "
                "module-level function, or let this manager run its own workers"
            )
        if isinstance(func, Task):
            ref, func = func.name, func.fn
        else:
            ref = function_ref(func) if importable else _local_name(func, len(self._refs))
        self._call.register(func, name=ref)
        known = (ref, caller_signature(func, filled=("job_id", "manager")))
        with contextlib.suppress(TypeError):
            self._refs[func] = known
        return known

    # -- reading and steering ---------------------------------------------------------------------

    async def wait(self, job_id: str, timeout: float | None = None) -> Any:
        """The job's result once it completes.

        Raises:
            TimeoutError: it did not end within `timeout` seconds.
            JobFailed: it failed for good (JobCancelled: it was cancelled).
            JobNotFound: no such job.
        """
        return await (await self._ready()).wait(job_id, timeout=timeout)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a pending, scheduled or running job; False when it had already ended.

        A running job is stopped by its worker; this returns once that is recorded (or after
        :data:`CANCEL_WAIT` seconds), so :meth:`get` then shows it cancelled, as the seed has it.
        """
        client = await self._ready()
        cancelled = await client.cancel(job_id)
        if cancelled:
            with contextlib.suppress(JobFailed, TimeoutError):  # JobCancelled is a JobFailed
                await client.wait(job_id, timeout=CANCEL_WAIT)
        return cancelled

    async def get(self, job_id: str) -> Job | None:
        """The job, or None when there is no such job."""
        return await (await self._ready()).get(job_id)

    async def get_progress(self, job_id: str) -> float:
        """The job's progress in percent.

        Raises:
            JobNotFound: no such job.
        """
        job = await self.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id} in queue {self.queue!r}")
        return job.progress

    async def update_progress(
        self, job_id: str, progress: float, message: str | None = None
    ) -> None:
        """Set a running job's progress (0-100); from inside the job, as the seed's example does."""
        ctx = None if self._worker is None else self._worker.context(job_id)
        if ctx is not None:
            await ctx.set_progress(progress, message)  # throttled and fenced by its lease
        else:
            await (await self._ready()).set_progress(job_id, progress, message)

    async def list_jobs(self, status: JobStatus | str | None = None) -> list[Job]:
        """The queue's jobs (newest first), all or of one status."""
        client = await self._ready()
        jobs: list[Job] = []
        cursor: int | None = 0
        while cursor is not None:
            page = await client.list_jobs(status, limit=500, cursor=cursor)
            jobs += page.jobs
            cursor = page.cursor
        return jobs

    # -- callbacks --------------------------------------------------------------------------------

    def on_complete(self, handler: H) -> H:
        """Call ``handler(job_id, result)`` when a job submitted here completes.

        Usable as a decorator or a plain call; the handler may be a coroutine function.
        """
        self._on_complete.append(handler)
        return handler

    def on_failure(self, handler: H) -> H:
        """Call ``handler(job_id, error)`` when a job submitted here fails for good.

        `error` is a :class:`~redisjobs.JobFailed` carrying the recorded error text. Cancelled
        jobs call no handler.
        """
        self._on_failure.append(handler)
        return handler

    async def _follow(self, client: Client, since: str) -> None:
        """Turn the queue's final events into handler calls, for the jobs submitted here."""
        async for ev in client.events(since=since, on_recheck=self._recheck):
            if ev.job_id in self._mine and ev.type in ("completed", "failed", "cancelled"):
                self._mine.discard(ev.job_id)
                self._dispatch(ev.type, ev.job_id, ev.data.get("result"), ev.data.get("error"))

    async def _recheck(self) -> None:
        """Events may have been missed: look at the jobs still open."""
        client = self._client
        if client is None:
            return
        for job_id in list(self._mine):
            try:
                job = await client.get(job_id)
            except ConnectionFailed:  # Redis is gone for now: the resync rechecks again
                return
            if job is not None and job.status.is_final and job_id in self._mine:
                self._mine.discard(job_id)
                self._dispatch(job.status.value, job_id, job.result, job.error)

    def _dispatch(self, status: str, job_id: str, result: Any, error: str | None) -> None:
        if status == "completed":
            for handler in self._on_complete:
                self._call_handler(handler, job_id, result)
        elif status == "failed":
            failure = JobFailed(job_id, error)
            failure.args = (error or "failed",)  # str() is the error itself: handlers print it
            for handler in self._on_failure:
                self._call_handler(handler, job_id, failure)

    def _call_handler(self, handler: Handler, job_id: str, arg: Any) -> None:
        try:
            outcome = handler(job_id, arg)
        except Exception:
            log.exception("handler %r failed for job %s", handler, job_id)
            return
        if inspect.isawaitable(outcome):
            task = asyncio.ensure_future(outcome)
            self._handler_tasks.add(task)
            task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Future[Any]) -> None:
        self._handler_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a job handler failed", exc_info=task.exception())
