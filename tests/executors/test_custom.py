"""A custom executor next to the built-ins: in-process and named on the worker command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from redisjobs import Client, JobFailed
from redisjobs.executors import HTTPExecutor, SubprocessExecutor
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
