"""The Pyjobkit face at Pyjobkit's module paths: what a Pyjobkit user imports, the old
``redisjobs.engine`` names, and the record's lease and cancel fields."""

from __future__ import annotations

import asyncio
import importlib
import typing
import uuid
from typing import Any

import pytest

import redisjobs.engine
from redisjobs.pyjobkit import Engine, JobRecord, JobStatus, Worker
from redisjobs.pyjobkit.backends.memory import MemoryBackend
from redisjobs.pyjobkit.backends.redis import RedisBackend
from redisjobs.pyjobkit.contracts import ExecContext, Executor
from redisjobs.pyjobkit.executors import HttpExecutor, SubprocessExecutor


class Waiter(Executor):
    """Runs until its job is cancelled, reporting the record it sees meanwhile."""

    kind = "wait"

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def run(self, *, job_id: uuid.UUID, payload: Any, ctx: ExecContext) -> Any:
        self.started.set()
        while not await ctx.is_cancelled():
            await asyncio.sleep(0.02)
        return None


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("engine", ["Engine"]),
        ("worker", ["Worker"]),
        ("contracts", ["ExecContext", "Executor", "LogRecord", "LogSink", "EventBus"]),
        ("types", ["JobRecord", "JobStatus", "LogStream"]),
        ("backends.memory", ["MemoryBackend"]),
        ("backends.redis", ["RedisBackend"]),
        ("executors", ["HttpExecutor", "SubprocessExecutor"]),
        ("executors.http", ["HttpExecutor"]),
        ("executors.subprocess", ["SubprocessExecutor"]),
    ],
)
def test_names_sit_at_pyjobkit_paths(module: str, names: list[str]) -> None:
    loaded = importlib.import_module(f"redisjobs.pyjobkit.{module}")
    for name in names:
        assert hasattr(loaded, name), f"{module}.{name}"


def test_the_old_module_offers_the_same_objects() -> None:
    assert redisjobs.engine.Engine is Engine and redisjobs.engine.Worker is Worker
    assert redisjobs.engine.MemoryBackend is MemoryBackend
    assert redisjobs.engine.RedisBackend is RedisBackend
    assert redisjobs.engine.Executor is Executor
    assert HttpExecutor.kind == "http" and SubprocessExecutor.kind == "subprocess"


def test_statuses_are_pyjobkit_literals() -> None:
    assert typing.get_args(JobStatus) == (
        "queued",
        "running",
        "success",
        "failed",
        "cancelled",
        "timeout",
    )
    assert set(redisjobs.engine.STATUS.values()) <= set(typing.get_args(JobStatus))


async def test_a_record_tells_its_lease_holder_version_and_cancel_request(backend: Any) -> None:
    waiter = Waiter()
    async with Engine(backend=backend, executors=[waiter]) as engine:
        job_id = await engine.enqueue(kind="wait", payload={})
        queued: JobRecord = await engine.get(job_id)
        assert set(queued) == set(JobRecord.__annotations__)
        assert queued["leased_by"] is None and queued["version"] == 0
        assert queued["cancel_requested"] is False
        # a short lease: heartbeats carry cancel requests to the worker too
        async with Worker(engine, poll_interval=0.05, lease_ttl=1.5, handle_signals=False):
            await asyncio.wait_for(waiter.started.wait(), 5)
            running = await engine.get(job_id)
            assert running["status"] == "running" and running["version"] == 1
            assert running["leased_by"] is not None
            assert running["cancel_requested"] is False
            assert await engine.cancel(job_id)
            async with asyncio.timeout(5):
                while (record := await engine.get(job_id))["status"] != "cancelled":
                    # asked, not yet acted on: the running job shows the request
                    assert record["cancel_requested"]
                    await asyncio.sleep(0.01)
        assert record["cancel_requested"] is True and record["leased_by"] is None


async def test_a_queued_job_cancelled_shows_the_request(backend: Any) -> None:
    async with Engine(backend=backend, executors=[Waiter()]) as engine:
        job_id = await engine.enqueue(kind="wait", payload={})
        assert await engine.cancel(job_id)
        record = await engine.get(job_id)
        assert record["status"] == "cancelled" and record["cancel_requested"] is True
