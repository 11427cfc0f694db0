"""Job functions the tests run, in-process and in worker subprocesses (`-m tests.jobs`)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from shutil import copyfile  # an imported function: `tests.jobs:copyfile` must be refused
from typing import Any

import redis.asyncio as aioredis

from redisjobs import App, ExecContext, RateLimited, Retry

_ledger: aioredis.Redis | None = None


async def add(a: int, b: int) -> int:
    return a + b


def add_sync(a: int, b: int) -> int:
    return a + b


async def echo(value: Any) -> Any:
    return value


def types_of(*values: Any) -> list[str]:
    return [type(v).__name__ for v in values]


async def fail(message: str = "boom") -> None:
    raise RuntimeError(message)


async def retry_later(defer: float) -> None:
    raise Retry(defer=defer)


async def retry_after_error(defer: float) -> None:
    try:
        raise KeyError("missing")
    except KeyError as exc:
        raise Retry(defer=defer) from exc


async def sleep(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


def sleep_sync(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


def exits(code: int) -> None:
    sys.exit(code)


async def unencodable() -> object:
    return object()


async def progress(ctx: ExecContext, steps: int = 5, pause: float = 0.01) -> int:
    for i in range(steps):
        await ctx.log(f"step {i + 1}")
        await ctx.set_progress((i + 1) * 100 / steps, f"step {i + 1}")
        await asyncio.sleep(pause)
    return ctx.lease


async def until_cancelled(ctx: ExecContext) -> str:
    await ctx.log("waiting to be cancelled")
    await asyncio.sleep(3600)
    return "never"


async def ledger(ctx: ExecContext, seconds: float = 0.0) -> int:
    """Record start and end of each run in a ledger list, to count executions across processes."""
    await _ledger_run(ctx, seconds)
    return os.getpid()


class Greeter:
    """A custom executor: a class with `kind` and `async run(*, job_id, payload, ctx)`."""

    kind = "greet"

    def __init__(self, greeting: str = "Hello") -> None:
        self.greeting = greeting

    async def run(self, *, job_id: str, payload: Any, ctx: ExecContext) -> str:
        await ctx.log(f"greeting {payload['name']}")
        await ctx.set_progress(100)
        return f"{self.greeting}, {payload['name']}! ({os.getpid()})"


class Napper:
    """A custom executor whose first attempt naps for a long time and later ones return."""

    kind = "nap"

    async def run(self, *, job_id: Any, payload: Any, ctx: ExecContext) -> dict[str, Any]:
        if ctx.attempt == 1:
            await asyncio.sleep(payload.get("first", 30))
        return {"attempt": ctx.attempt, "pid": os.getpid(), "job_id": str(job_id)}


async def _ledger_line(ctx: ExecContext, what: str) -> None:
    global _ledger
    if _ledger is None:
        _ledger = aioredis.Redis.from_url(os.environ["LEDGER_URL"])
    line = f"{what} {ctx.job_id} {os.getpid()} {ctx.attempt} {ctx.lease}"
    await _ledger.rpush(os.environ["LEDGER_KEY"], line)


async def _ledger_run(ctx: ExecContext, seconds: float) -> None:
    """A run of `seconds`, its start and end recorded in the ledger."""
    await _ledger_line(ctx, "start")
    await asyncio.sleep(seconds)
    await _ledger_line(ctx, "end")


async def ledger_add(
    ctx: ExecContext, x: int, seconds: float = 0.0, previous_result: int | None = None
) -> int:
    """A flow's step, its run recorded in the ledger: `x` plus the previous step's result."""
    await _ledger_run(ctx, seconds)
    return x + (previous_result or 0)


async def ledger_total(ctx: ExecContext, seconds: float = 0.0) -> int:
    """A chord's callback, its run recorded in the ledger: the sum of its children's results."""
    await _ledger_run(ctx, seconds)
    return sum((await ctx.children_results()).values())


async def ledger_until_open(ctx: ExecContext, gate: str, previous_result: int = 0) -> int:
    """A flow's step that fails while key `gate` is missing from the ledger's Redis (its start
    recorded), and adds one to the previous step's result once it is there."""
    await _ledger_line(ctx, "start")
    assert _ledger is not None
    if not await _ledger.exists(gate):
        raise RuntimeError(f"gate {gate} closed")
    return previous_result + 1


async def kills_worker(ctx: ExecContext) -> None:
    """A poison job: records its start in the ledger, then SIGKILLs its own worker process."""
    await _ledger_line(ctx, "start")
    os.kill(os.getpid(), signal.SIGKILL)


async def ledger_fail(ctx: ExecContext, message: str = "boom") -> None:
    """Records its start in the ledger, then raises (every attempt)."""
    await _ledger_line(ctx, "start")
    raise RuntimeError(message)


async def ledger_gated(ctx: ExecContext, gate: str, seconds: float = 0.0) -> int:
    """Like `ledger`, but waits for key `gate` to exist in the ledger's Redis before sleeping
    `seconds`: a test opens the gate to line the rest of the runs up with a fault."""
    await _ledger_line(ctx, "start")
    assert _ledger is not None
    while not await _ledger.exists(gate):
        await asyncio.sleep(0.02)
    await asyncio.sleep(seconds)
    await _ledger_line(ctx, "end")
    return os.getpid()


async def fails_after(seconds: float, message: str = "boom") -> None:
    """Sleeps, then raises (its traceback goes to the job's log)."""
    await asyncio.sleep(seconds)
    raise RuntimeError(message)


def copy(source: str, target: str) -> str:
    """Copies a file (with a function this module imports)."""
    return copyfile(source, target)


async def resize(ctx: ExecContext, path: str, width: int) -> dict[str, Any]:
    """The README's job: `ctx` first, then the caller's arguments."""
    await ctx.set_progress(100)
    return {"path": path, "width": width}


def placed(a: int, ctx: ExecContext, b: int = 2, *rest: int, job_id: str = "") -> list[Any]:
    """`ctx` between the caller's positional arguments, `job_id` keyword-only."""
    return [a, b, list(rest), ctx.job_id == job_id, job_id]


def tagged(job_id: str, label: str) -> str:
    """`job_id` first: the caller's positional arguments skip it."""
    return f"{label}:{job_id}"


class Maths:
    """Static and class methods are callable as ``tests.jobs:Maths.<name>``; the rest is not."""

    factor = 3

    @staticmethod
    def double(x: int) -> int:
        return 2 * x

    @classmethod
    def triple(cls, x: int) -> int:
        return cls.factor * x

    def instance_only(self, x: int) -> int:
        return x


# -- run in child processes (isolation="process") ------------------------------------------


def c_sleep(ctx: Any, seconds: int) -> str:
    """Logs its pid, then sleeps in C (libc's sleep: no Python code runs until it returns)."""
    import ctypes

    ctx.log(f"pid {os.getpid()}")
    ctypes.CDLL(None).sleep(seconds)
    return "woke"


def pid_of(job_id: str) -> list[Any]:
    """The process it runs in, and the job id it was given."""
    return [os.getpid(), job_id]


def retry_sync(defer: float) -> None:
    raise Retry(defer=defer)


def rate_limited_once(marker: str, retry_after: float = 0.2, pause: bool = False) -> str:
    """Raises RateLimited on its first run, which leaves file `marker`; "done" on the next."""
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        raise RateLimited(retry_after, pause=pause)
    return "done"


def refuse_sync(message: str) -> None:
    from redisjobs import ExecutorError

    raise ExecutorError(message, retryable=False)


def fail_sync(message: str) -> None:
    raise ValueError(message)


def exit_hard(code: int) -> None:
    os._exit(code)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def report(ctx: Any, steps: int) -> str:
    """Logs and sets progress from a child process."""
    for i in range(steps):
        ctx.log(f"step {i + 1}")
        ctx.set_progress((i + 1) * 100 / steps, f"step {i + 1}")
    return ctx.job_id  # type: ignore[no-any-return]


def unencodable_sync() -> object:
    return object()


def spawn_sleeper(seconds: int) -> None:
    """Starts a grandchild that sleeps, logs nothing, then sleeps itself."""
    import subprocess

    subprocess.Popen(["sleep", str(seconds)])
    time.sleep(seconds)


process_app = App(queue="process-tasks")


@process_app.task(isolation="process")
def task_in_child(seconds: int) -> int:
    """A task run in a child process: found there through the Task bound to its name."""
    import ctypes

    ctypes.CDLL(None).sleep(seconds)
    return os.getpid()


def leaves_a_logger(ctx: Any) -> None:
    """Returns at once, leaving a thread that logs a line 0.3 s later."""
    import threading

    def late() -> None:
        time.sleep(0.3)
        ctx.log("late")

    threading.Thread(target=late, daemon=True).start()
