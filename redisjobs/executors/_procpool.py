"""A pool of long-lived child processes running plain functions, each killable on its own.

A thread cannot be stopped; a process can. A function registered with ``isolation="process"``
runs in one of at most `max_processes` children (:mod:`._procchild`), started lazily and reused.
When its job is stopped (the worker cancels the job's task on a timeout or a cancel), the
child's process group gets SIGTERM, then SIGKILL after :data:`KILL_GRACE` seconds, and the slot
is free at once; a new child replaces it when one is needed. A child that dies under a job (a
segfault, ``os._exit``, the OOM killer) fails that job, retryably, with its exit status.

Children are started with ``python -c`` in a session of their own, not forked: the worker has
an event loop and threads a fork would copy half-way, and unlike ``multiprocessing``'s spawn and
forkserver this never re-imports the worker's ``__main__``. Starting one costs an interpreter
start and the imports (mostly redisjobs' own, a fraction of a second), paid once per child; a
job's round trip is two pipe messages, cheaper than starting a thread.
Arguments and results cross as msgpack (:mod:`redisjobs.serialization`), the function as its
module and name, looked up by the child in that module.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import os
import signal
import sys
from typing import Any

from ..errors import CallRefused, ExecutorError, RateLimited, Retry
from ..serialization import packb, unpackb
from . import ExecContext
from ._procchild import HEADER

log = logging.getLogger("redisjobs.worker")

KILL_GRACE = 2.0
"""Seconds a stopped job's process group has between SIGTERM and SIGKILL."""
_BOOT = (
    "import json, os, sys; sys.path[:] = json.loads(os.environ.pop('REDISJOBS_SYS_PATH')); "
    "from redisjobs.executors._procchild import main; main()"
)


class ProcessJobError(ExecutorError):
    """A function raised in its child process (the traceback went to the job's log).

    Attributes:
        type_name: the class name of the exception it raised.
        detail: that exception's message.
        child_traceback: the end of its traceback, as the child formatted it.
    """

    def __init__(self, type_name: str, detail: str, child_traceback: str) -> None:
        super().__init__(f"{type_name}: {detail}", retryable=True)
        self.type_name, self.detail, self.child_traceback = type_name, detail, child_traceback


def unwrap(fn: Any) -> Any:
    """`fn`, or the function it wraps as ``__wrapped__`` when it is no function (a task)."""
    return fn if inspect.isfunction(fn) else getattr(fn, "__wrapped__", fn)


def check_process_target(fn: Any) -> None:
    """Refuse a function a child process could not find by its module and name.

    Args:
        fn: the function (or an object wrapping it as ``__wrapped__``, such as a task).

    Raises:
        CallRefused: (a ValueError) `fn` is not a plain ``def`` function defined at the top
            level of an importable module (``__main__``, a nested function, a lambda, a method,
            a coroutine function are refused).
    """
    fn = unwrap(fn)
    what = getattr(fn, "__qualname__", repr(fn))
    if not inspect.isfunction(fn) or inspect.iscoroutinefunction(fn):
        raise CallRefused(f"{what}: isolation='process' is for plain (def) functions")
    if fn.__module__ == "__main__":
        raise CallRefused(
            f"{what}: a function of __main__ cannot run in a child process, which imports it "
            "by module: move it into a module"
        )
    if not fn.__qualname__.isidentifier():
        raise CallRefused(
            f"{fn.__module__}:{what}: only a function defined at a module's top level can run "
            "in a child process, which looks it up by name"
        )


class ChildDied(ExecutorError):
    """The child process running a job died under it."""


class _Child:
    """One child process and its pipes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self._in, self._out = proc.stdin, proc.stdout

    @classmethod
    async def start(cls) -> _Child:
        """A new child, once it is ready for a job."""
        env = {**os.environ, "REDISJOBS_SYS_PATH": json.dumps(sys.path)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _BOOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own group: a kill reaches what the function started
        )
        child = cls(proc)
        try:
            ready = await child.receive()
        except BaseException:
            child.kill()
            raise
        if ready.get("op") != "ready":
            child.kill()
            raise ChildDied(f"a child process started with {ready!r}")
        return child

    async def send(self, message: dict[str, Any]) -> None:
        """Write one message to the child."""
        body = packb(message)
        try:
            self._in.write(HEADER.pack(len(body)) + body)
            await self._in.drain()
        except ConnectionError:
            raise ChildDied(await self._death()) from None

    async def receive(self) -> dict[str, Any]:
        """The child's next message.

        Raises:
            ChildDied: it died first.
        """
        try:
            head = await self._out.readexactly(HEADER.size)
            message = unpackb(await self._out.readexactly(HEADER.unpack(head)[0]))
        except (asyncio.IncompleteReadError, ConnectionError):
            raise ChildDied(await self._death()) from None
        if not isinstance(message, dict):
            raise ChildDied(f"the child process {self.proc.pid} sent {type(message).__name__}")
        return message

    async def _death(self) -> str:
        code = await self.proc.wait()
        self._kill_group(signal.SIGKILL)  # what it started goes with it
        if code < 0:
            with contextlib.suppress(ValueError):
                return (
                    f"the child process {self.proc.pid} was killed by {signal.Signals(-code).name}"
                )
        return f"the child process {self.proc.pid} exited with code {code}"

    def _kill_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> asyncio.Task[None]:
        """SIGTERM its process group now, SIGKILL after :data:`KILL_GRACE`; the task reaps it."""
        self._kill_group(signal.SIGTERM)
        return asyncio.ensure_future(self._reap())

    async def _reap(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), KILL_GRACE)
        self._kill_group(signal.SIGKILL)
        await self.proc.wait()

    async def close(self) -> None:
        """Close its stdin: the child kills its group and exits."""
        self._in.close()
        with contextlib.suppress(ConnectionError):
            await self._in.wait_closed()
        await self._reap()


def _job(
    fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], ctx: ExecContext, seq: int
) -> dict[str, Any]:
    """The message asking a child to run `fn`; ``ctx`` travels as its place in the arguments."""
    listed, named = list(args), dict(kwargs)
    where: int | None = None
    if named.get("ctx") is ctx:
        del named["ctx"]
        where = -1
    for i, value in enumerate(listed):
        if value is ctx:
            listed[i], where = None, i
    info = {
        "seq": seq,
        "job_id": ctx.job_id,
        "queue": ctx.queue,
        "attempt": ctx.attempt,
        "lease": ctx.lease,
    }
    return {
        "module": fn.__module__,
        "name": fn.__qualname__,
        "args": listed,
        "kwargs": named,
        "ctx": where,
        **info,
    }


async def _outcome(reply: dict[str, Any], ctx: ExecContext) -> Any:
    """The result a child's final reply holds, or the error it stands for, raised."""
    if reply["op"] == "ok":
        return unpackb(reply["value"])
    kind, message = reply.get("kind"), str(reply.get("message"))
    if kind == "retry":
        raise Retry(defer=reply.get("defer"))
    if kind == "rate_limited":
        raise RateLimited(float(reply.get("retry_after", 0)), pause=bool(reply.get("pause")))
    if kind in ("error", "fatal"):
        raise ExecutorError(message, retryable=kind == "error")
    text = str(reply.get("traceback", ""))
    await ctx.log(f"in the child process:\n{text}")
    raise ProcessJobError(str(reply.get("type")), message, text)


class ProcessPool:
    """At most `max_processes` child processes running plain functions, one job each at once.

    Args:
        max_processes: children at most (default: the CPU count); more jobs wait for one.
    """

    def __init__(self, max_processes: int | None = None) -> None:
        self.max_processes = max_processes or os.cpu_count() or 1
        if self.max_processes < 1:
            raise ValueError("max_processes must be >= 1")
        self._slots = asyncio.Semaphore(self.max_processes)
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._reaping: set[asyncio.Task[None]] = set()
        self._seq = itertools.count()

    @property
    def pids(self) -> list[int]:
        """The process ids of the live children (idle or running a job)."""
        return [c.proc.pid for c in [*self._idle, *self._busy] if c.proc.returncode is None]

    async def run(
        self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], ctx: ExecContext
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` in a child; `ctx`, where it stands in the arguments, is
        the child's :class:`~._procchild.ChildContext`, which reports to `ctx`.

        Raises:
            ChildDied: the child died under the job (retryable).
            ProcessJobError: the function raised (retryable).
            Retry, RateLimited: the function raised it.
            ExecutorError: the function raised it, or its result cannot be encoded (fatal).
        """
        job = _job(fn, args, kwargs, ctx, next(self._seq))
        async with self._slots:
            child = self._idle.pop() if self._idle else None
            if child is None or child.proc.returncode is not None:
                child = await _Child.start()
            self._busy.add(child)
            try:
                reply = await self._exchange(child, job, ctx)
            except BaseException:
                if child.proc.returncode is None:  # stopped (or lost track of): not reusable
                    self._stop(child, ctx.job_id)
                raise
            finally:
                self._busy.discard(child)
            self._idle.append(child)
        return await _outcome(reply, ctx)

    async def _exchange(self, child: _Child, job: dict[str, Any], ctx: ExecContext) -> Any:
        """Send the job; forward what the child reports until its final reply."""
        await child.send(job)
        while True:
            message = await child.receive()
            op = message.get("op")
            if op in ("log", "progress") and message.get("seq") != job["seq"]:
                continue  # from a thread an earlier job left running in this child
            if op == "log":
                await ctx.log(str(message.get("message")))
            elif op == "progress":
                await ctx.set_progress(float(message["percent"]), message.get("message"))
            else:
                return message

    def _stop(self, child: _Child, job_id: str) -> None:
        log.info("job %s was stopped: killing its child process %d", job_id, child.proc.pid)
        task = child.kill()
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    async def aclose(self) -> None:
        """Stop every child (a running job's too) and wait until they are gone."""
        idle, self._idle = self._idle, []
        for child in self._busy:
            self._stop(child, "(closing)")
        await asyncio.gather(*(c.close() for c in idle), *self._reaping, return_exceptions=True)
