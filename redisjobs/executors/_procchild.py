"""The loop of a child process that runs plain functions for :mod:`._procpool`.

Started as ``python -c`` by the pool (never forked from the worker, whose event loop and
threads a fork would copy half-way), it reads jobs from its stdin and writes replies to its
stdout, each a msgpack map behind a 4-byte length. What the functions print goes to stderr: the
protocol keeps the real stdout to itself, and stdin is ``/dev/null`` for the functions.

A job names its function by module and name, looked up here in the module's own namespace, one
level deep (a :class:`~redisjobs.Task` bound there stands for the function it wraps): nothing
from Redis is ever unpickled. A reader thread watches stdin while a function runs: when it
closes, because the worker closed the pool or died (even by SIGKILL: the kernel closes the pipe),
the child kills its whole process group, itself and whatever the function started.
"""

from __future__ import annotations

import importlib
import inspect
import os
import queue
import signal
import struct
import threading
import traceback
from typing import IO, Any

from ..errors import CallRefused, ExecutorError, RateLimited, Retry
from ..serialization import packb, unpackb

HEADER = struct.Struct("!I")
"""A frame's length, before its msgpack body."""
TRACEBACK_CHARS = 4000
"""The last characters of a failed function's traceback sent back with its error."""


def read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame's body, None at the end of `stream`."""
    head = _read_exactly(stream, HEADER.size)
    if head is None:
        return None
    return _read_exactly(stream, HEADER.unpack(head)[0])


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class Channel:
    """The child's end of the protocol: frames written whole, from any thread."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        """Write one message."""
        body = packb(message)
        with self._lock:
            self._out.write(HEADER.pack(len(body)) + body)
            self._out.flush()


class ChildContext:
    """The ``ctx`` a function gets in a child process: what it reports goes to the worker.

    Attributes:
        job_id: the job.
        queue: its queue.
        attempt: 1 for the first run, then one more per retry or reclaim.
        lease: the fencing token of this run.
    """

    def __init__(self, channel: Channel, info: dict[str, Any]) -> None:
        self._channel = channel
        self.job_id: str = info["job_id"]
        self.queue: str = info["queue"]
        self.attempt: int = info["attempt"]
        self.lease: int = info["lease"]
        self._seq: int = info["seq"]  # a thread the function left running may report late

    def log(self, message: str) -> None:
        """Append a line to the job's log."""
        self._channel.send({"op": "log", "seq": self._seq, "message": str(message)})

    def set_progress(self, percent: float, message: str | None = None) -> None:
        """Report progress in percent (0-100), with an optional message (the worker throttles
        the writes)."""
        report = {"op": "progress", "seq": self._seq, "percent": float(percent), "message": message}
        self._channel.send(report)

    @property
    def cancelled(self) -> bool:
        """Always False: a cancel kills the process running the job, there is nothing to poll."""
        return False


def find_target(module_name: str, name: str) -> Any:
    """The function `name` of `module_name` (imported now), or the one a task there wraps.

    Raises:
        CallRefused: there is no such function defined in that module.
    """
    ref = f"{module_name}:{name}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CallRefused(f"function {ref!r} refused: cannot import {module_name}: {exc}") from None
    obj = vars(module).get(name)
    if obj is not None and not inspect.isfunction(obj):
        obj = getattr(obj, "__wrapped__", obj)  # a Task: the function it was declared with
    if not inspect.isfunction(obj) or obj.__module__ != module_name or obj.__qualname__ != name:
        raise CallRefused(f"function {ref!r} refused: {module_name} defines no function {name}")
    return obj


def _error(exc: BaseException) -> dict[str, Any]:
    reply: dict[str, Any] = {"op": "error", "type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, Retry):
        reply.update(kind="retry", defer=exc.defer)
    elif isinstance(exc, RateLimited):
        reply.update(kind="rate_limited", retry_after=exc.retry_after, pause=exc.pause)
    elif isinstance(exc, ExecutorError):  # expected: its message says it all
        reply.update(kind="error" if exc.retryable else "fatal")
    else:
        text = "".join(traceback.format_exception(exc)).rstrip()
        reply.update(kind="bug", traceback=text[-TRACEBACK_CHARS:])
    return reply


def run_job(job: dict[str, Any], channel: Channel) -> dict[str, Any]:
    """Run one job; the reply: its packed result, or its error."""
    try:
        fn = find_target(job["module"], job["name"])
        args, kwargs, where = list(job["args"]), dict(job["kwargs"]), job["ctx"]
        if where is not None:
            ctx = ChildContext(channel, job)
            if where < 0:
                kwargs["ctx"] = ctx
            else:
                args[where] = ctx
        value = fn(*args, **kwargs)
    except BaseException as exc:  # the job's failure, even SystemExit, as in a thread
        return _error(exc)
    try:
        return {"op": "ok", "value": packb(value)}
    except Exception as exc:
        message = f"the result of {job['module']}:{job['name']} cannot be stored: {exc}"
        return {"op": "error", "kind": "fatal", "type": type(exc).__name__, "message": message}


def _read_jobs(stream: IO[bytes], jobs: queue.SimpleQueue[dict[str, Any]]) -> None:
    """Pass the jobs on; at the end of stdin, kill the process group (this process too)."""
    while (frame := read_frame(stream)) is not None:
        jobs.put(unpackb(frame))
    if os.getpgid(0) == os.getpid():  # the group is this child's own (it leads its session)
        os.killpg(0, signal.SIGKILL)
    os._exit(1)


def main() -> None:
    """Serve jobs until the worker closes stdin."""
    inp = os.fdopen(os.dup(0), "rb", buffering=0)
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # what a function prints must not get into the replies
    os.close(devnull)
    channel = Channel(out)
    jobs: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
    threading.Thread(target=_read_jobs, args=(inp, jobs), daemon=True).start()
    channel.send({"op": "ready"})
    while True:
        channel.send(run_job(jobs.get(), channel))
