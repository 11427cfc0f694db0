"""A custom executor next to the built-ins: in-process and named on the worker command line; the
executor base's defaults, and an executor without the base that brings its own."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from redisjobs import Client, ExecContext, JobFailed, Worker, executors
from redisjobs.executors import ExecutorBase, Executors, HTTPExecutor, SubprocessExecutor
from redisjobs.testing import RedisServer, unique_queue
from tests.conftest import WorkerFactory, log_events
from tests.jobs import Greeter


async def test_custom_executor_beside_the_built_ins(client: Client, worker: WorkerFactory) -> None:
    await worker(executors=[Greeter("Hi"), SubprocessExecutor(), HTTPExecutor()])
    job = await client.enqueue("greet", {"name": "Ada"})
    assert str(await client.wait(job.id, timeout=5)).startswith("Hi, Ada!")
    assert await client.logs(job.id) == ["greeting Ada"]
    assert [e.data["progress"] for e in await log_events(client, job.id) if e.type == "progress"]
    echo = await client.enqueue("subprocess", {"argv": ["echo", "built-in"]})
    assert (await client.wait(echo.id, timeout=5))["stdout"] == "built-in\n"
    unknown = await client.enqueue("nope", {}, max_retries=5)
    with pytest.raises(JobFailed, match="no executor for kind 'nope' on this worker"):
        await client.wait(unknown.id, timeout=5)


async def test_two_executors_for_one_kind_are_refused(worker: WorkerFactory) -> None:
    with pytest.raises(ValueError, match="two executors for kind 'greet'"):
        await worker(executors=[Greeter(), Greeter()])


@pytest.mark.slow
async def test_custom_executor_named_on_the_command_line(redis_server: RedisServer) -> None:
    queue = unique_queue()
    cmd = [sys.executable, "-m", "redisjobs", "--log-level", "WARNING", "worker"]
    cmd += ["--url", redis_server.url, "--queue", queue, "-x", "tests.jobs:Greeter", "-x", "http"]
    proc = subprocess.Popen(cmd)
    try:
        async with Client(redis_server.url, queue=queue) as client:
            job = await client.enqueue("greet", {"name": "Grace"})
            result = await client.wait(job.id, timeout=20)
            assert result == f"Hello, Grace! ({proc.pid})"  # ran in the worker process
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


class Based(ExecutorBase):
    """An executor on the base: only `kind` and `run` of its own."""

    kind = "based"

    async def run(self, *, job_id: str, payload: Any, ctx: ExecContext) -> Any:
        return payload


class Bare:
    """An executor of the protocol's shape only, that holds a resource and counts threads."""

    kind = "bare"

    def __init__(self) -> None:
        self.closed = 0
        self.stuck = 0

    async def run(self, *, job_id: str, payload: Any, ctx: ExecContext) -> Any:
        self.stuck += 1  # as if the job left a thread behind
        return payload

    @property
    def hung_threads(self) -> int:
        return self.stuck

    async def aclose(self) -> None:
        self.closed += 1


async def test_the_base_gives_defaults() -> None:
    based = Based()
    await based.aclose()
    assert based.hung_threads == 0
    for name in ("CallExecutor", "HTTPExecutor", "SubprocessExecutor", "SSHExecutor"):
        assert issubclass(getattr(executors, name), ExecutorBase), name


async def test_executors_with_and_without_the_base(url: str, queue: str, client: Client) -> None:
    bare = Bare()
    w = Worker(url, queue=queue, executors=[Based(), bare, Greeter()], handle_signals=False)
    async with w:
        assert w.hung_threads == 0
        for kind in ("based", "bare"):
            job = await client.enqueue(kind, {"echo": kind})
            assert await client.wait(job.id, timeout=5) == {"echo": kind}
        greet = await client.enqueue("greet", {"name": "Ada"})  # no aclose, no hung_threads
        assert str(await client.wait(greet.id, timeout=5)).startswith("Hello, Ada!")
        assert w.hung_threads == 1  # the bare executor's own gauge, read through its wrapper
    assert bare.closed == 1  # its own aclose, once, when the worker stopped


def test_something_that_is_no_executor_is_refused() -> None:
    with pytest.raises(ValueError, match="has no `kind` string"):
        Executors([object()])  # type: ignore[list-item]

    class NoRun:
        kind = "norun"

    with pytest.raises(ValueError, match="has no `run` method"):
        Executors([NoRun()])  # type: ignore[list-item]
