"""The Pyjobkit face (seed 001 and Pyjobkit 1.0's signatures), on both backends, including
the four places where Pyjobkit's own Redis backend loses or mishandles jobs."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from redisjobs.engine import (
    Engine,
    ExecContext,
    Executor,
    LogRecord,
    MemoryBackend,
    RedisBackend,
    Worker,
)
from redisjobs.errors import ExecutorError
from redisjobs.executors import HTTPExecutor, HttpExecutor, SubprocessExecutor
from redisjobs.keys import check_job_id
from redisjobs.testing import RedisServer, unique_queue
from tests.jobs import Napper


class HelloExecutor(Executor):
    """Seed case 1's custom executor."""

    kind = "hello"

    async def run(self, *, job_id: uuid.UUID, payload: dict[str, Any], ctx: ExecContext) -> Any:
        await ctx.log(f"Hello, {payload['name']}! job {job_id.hex[:8]}")
        await ctx.set_progress(50, stage="greeting")
        if await ctx.is_cancelled():
            return {"cancelled": True}
        await ctx.log("done", stream="stderr")
        return {"greeting": f"Hello, {payload['name']}!"}


class Flaky:
    kind = "flaky"

    def __init__(self) -> None:
        self.runs = 0

    async def run(self, *, job_id: uuid.UUID, payload: Any, ctx: ExecContext) -> Any:
        self.runs += 1
        raise RuntimeError(f"failure {self.runs}")


class Sleepy:
    kind = "sleepy"

    async def run(self, *, job_id: uuid.UUID, payload: Any, ctx: ExecContext) -> Any:
        if payload.get("say"):  # an error that reads like a timeout, but is not the job's
            raise ExecutorError(payload["say"])
        await asyncio.sleep(payload["seconds"])
        return "awake"


class Sinks:
    def __init__(self) -> None:
        self.logs: list[LogRecord] = []
        self.published: list[tuple[str, dict[str, Any]]] = []

    async def write(self, record: LogRecord) -> None:
        self.logs.append(record)

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        self.published.append((topic, payload))


@pytest.fixture
async def engine(backend: MemoryBackend | RedisBackend) -> AsyncIterator[Engine]:
    async with Engine(backend=backend, executors=[HelloExecutor()]) as e:
        yield e


async def test_case_1_hello_in_memory() -> None:
    sinks = Sinks()
    engine = Engine(
        backend=MemoryBackend(), executors=[HelloExecutor()], log_sink=sinks, event_bus=sinks
    )
    worker = Worker(engine, max_concurrency=2, handle_signals=False)
    job_id = await engine.enqueue(kind="hello", payload={"name": "World"})
    assert isinstance(job_id, uuid.UUID)
    await worker.run(once=True)
    record = await engine.get(job_id)
    assert record["status"] == "success"
    assert record["result"] == {"greeting": "Hello, World!"}
    assert [(r.job_id, r.stream) for r in sinks.logs] == [(job_id, "stdout"), (job_id, "stderr")]
    assert sinks.logs[0].message == f"Hello, World! job {job_id.hex[:8]}"
    assert sinks.published == [(f"job.{job_id}.progress", {"value": 50, "stage": "greeting"})]
    client = await engine.client()
    assert await client.logs(job_id.hex) == [sinks.logs[0].message, "[stderr] done"]
    await engine.close()


async def test_record_fields_and_unknown_ids(engine: Engine) -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    job_id = await engine.enqueue(
        kind="hello",
        payload={"name": "x"},
        priority=5,
        scheduled_for=when,
        max_attempts=4,
        timeout_s=30,
    )
    record = await engine.get(job_id)
    assert record["id"] == job_id and record["kind"] == "hello"
    assert record["status"] == "queued" and record["payload"] == {"name": "x"}
    assert record["priority"] == 5 and record["attempts"] == 0 and record["max_attempts"] == 4
    assert record["timeout_s"] == 30 and record["result"] is None
    assert record["scheduled_for"] is not None
    assert abs((record["scheduled_for"] - when).total_seconds()) < 0.01
    assert record["created_at"] is not None and record["started_at"] is None
    assert record["finished_at"] is None
    assert (await engine.get(str(job_id)))["id"] == job_id
    with pytest.raises(KeyError):
        await engine.get(uuid.uuid4())
    with pytest.raises(ValueError, match="kind must contain only"):
        await engine.enqueue(kind="bad kind!", payload={})
    assert await engine.cancel(job_id) is True
    assert (await engine.get(job_id))["status"] == "cancelled"


async def test_enqueue_at_in_and_many(engine: Engine) -> None:
    soon = await engine.enqueue_in(0.2, kind="hello", payload={"name": "later"})
    at = await engine.enqueue_at(datetime.now(UTC), kind="hello", payload={"name": "now"})
    many = await engine.enqueue_many(
        [{"kind": "hello", "payload": {"name": str(n)}} for n in range(3)]
    )
    assert (await engine.get(soon))["status"] == "queued"
    async with Worker(engine, poll_interval=0.05, handle_signals=False):
        for job_id in [soon, at, *many]:
            async with asyncio.timeout(5):
                while (await engine.get(job_id))["status"] != "success":
                    await asyncio.sleep(0.02)


async def test_timeout_status_and_cancel_while_running(backend: Any) -> None:
    async with Engine(backend=backend, executors=[Sleepy()]) as engine:
        slow = await engine.enqueue(
            kind="sleepy", payload={"seconds": 5}, timeout_s=0.2, max_attempts=1
        )
        long = await engine.enqueue(kind="sleepy", payload={"seconds": 30})
        says = await engine.enqueue(
            kind="sleepy", payload={"say": "timed out after 0.2 s"}, max_attempts=1
        )
        async with Worker(engine, poll_interval=0.05, handle_signals=False):
            async with asyncio.timeout(5):
                while (await engine.get(slow))["status"] != "timeout":
                    await asyncio.sleep(0.02)
                while (record := await engine.get(says))["status"] in ("queued", "running"):
                    await asyncio.sleep(0.02)
                while (await engine.get(long))["status"] != "running":
                    await asyncio.sleep(0.02)
            assert record["status"] == "failed", record
            assert record["error"] == "timed out after 0.2 s"
            assert await engine.cancel(long)
            async with asyncio.timeout(5):
                while (await engine.get(long))["status"] != "cancelled":
                    await asyncio.sleep(0.02)


async def test_worker_stop_health_and_context_manager(engine: Engine) -> None:
    worker = Worker(
        engine, max_concurrency=2, batch_size=1, poll_interval=0.05, handle_signals=False
    )
    assert worker.batch == 1
    run = asyncio.create_task(worker.run())
    health = await worker.check_health()
    assert health["status"] == "healthy" and isinstance(health["queue_depth"], int)
    worker.request_stop()
    await asyncio.wait_for(worker.wait_stopped(), 10)
    await run


@pytest.mark.redis_only
async def test_health_reports_an_unreachable_redis() -> None:
    engine = Engine(backend=RedisBackend("redis://127.0.0.1:1/0"), executors=[])
    health = await Worker(engine, handle_signals=False).check_health()
    assert health["status"] == "unhealthy" and "127.0.0.1:1" in health["reason"]


async def test_executors_by_pyjobkit_names(engine: Engine) -> None:
    assert HttpExecutor is HTTPExecutor
    engine.register_executor(SubprocessExecutor())
    with pytest.raises(ValueError, match="duplicate executor kind"):
        engine.register_executor(SubprocessExecutor())
    listed = await engine.enqueue(kind="subprocess", payload={"cmd": ["echo", "Hello from argv"]})
    shell = await engine.enqueue(kind="subprocess", payload={"cmd": "echo 'Hello' && sleep 0"})
    await Worker(engine, handle_signals=False, poll_interval=0.05).run(once=True)
    assert (await engine.get(listed))["result"]["stdout"] == "Hello from argv\n"
    refused = await engine.get(shell)
    assert refused["status"] == "failed" and "allow_shell" in str(refused["error"])


# -- where Pyjobkit's Redis backend falls short ----------------------------------------------------


async def test_attempts_survive_claims_so_max_attempts_holds(backend: Any) -> None:
    flaky = Flaky()
    async with Engine(backend=backend, executors=[flaky]) as engine:
        job_id = await engine.enqueue(kind="flaky", payload={}, max_attempts=2)
        async with Worker(engine, poll_interval=0.05, handle_signals=False):
            async with asyncio.timeout(10):
                while (await engine.get(job_id))["status"] != "failed":
                    await asyncio.sleep(0.05)
        record = await engine.get(job_id)
        assert record["attempts"] == 2 and flaky.runs == 2
        assert "failure 2" in str(record["error"])


async def test_future_jobs_never_hold_up_ready_ones(engine: Engine) -> None:
    later = [
        await engine.enqueue_in(3600, kind="hello", payload={"name": f"later {n}"})
        for n in range(20)
    ]
    now = await engine.enqueue(kind="hello", payload={"name": "now"})
    await Worker(engine, max_concurrency=1, batch=1, poll_interval=0.05, handle_signals=False).run(
        once=True
    )
    assert (await engine.get(now))["status"] == "success"
    assert {(await engine.get(j))["status"] for j in later} == {"queued"}


async def test_priority_orders_jobs(engine: Engine) -> None:
    """Pyjobkit's convention: lower runs sooner, 100 by default, FIFO within a priority."""
    plain = await engine.enqueue(kind="hello", payload={"name": "plain"})
    low = await engine.enqueue(kind="hello", payload={"name": "low"}, priority=500)
    [urgent] = await engine.enqueue_many(
        [{"kind": "hello", "payload": {"name": "urgent"}, "priority": 1}]
    )
    worker = Worker(engine, max_concurrency=1, batch=1, poll_interval=0.05, handle_signals=False)
    await worker.run(once=True)
    records = [await engine.get(j) for j in (urgent, plain, low)]
    assert [(r["status"], r["priority"]) for r in records] == [
        ("success", 1),
        ("success", 100),
        ("success", 500),
    ]
    started = [r["started_at"] for r in records]
    assert None not in started
    assert started == sorted(s for s in started if s is not None)


async def test_idempotency_keys_are_atomic(engine: Engine) -> None:
    ids = await asyncio.gather(
        *(
            engine.enqueue(kind="hello", payload={"name": "once"}, idempotency_key="order-42")
            for _ in range(50)
        )
    )
    assert len(set(ids)) == 1
    page = await (await engine.client()).list_jobs()
    assert [job.id for job in page.jobs] == [ids[0].hex]


async def test_idempotency_keys_of_any_text_make_valid_ids(engine: Engine) -> None:
    job_id = await engine.enqueue(kind="hello", payload={}, idempotency_key="victim:log")
    assert check_job_id(job_id.hex) == job_id.hex  # a UUID of the key: never the key itself
    for call in (engine.get, engine.cancel):
        with pytest.raises(ValueError):
            await call("victim:log")


@pytest.mark.slow
async def test_an_expired_lease_hands_the_job_over_instead_of_failing_it(
    redis_server: RedisServer,
) -> None:
    backend = RedisBackend(redis_server.url, queue=unique_queue())
    first = subprocess.Popen(
        [
            *(sys.executable, "-m", "redisjobs", "--log-level", "WARNING", "worker"),
            *("--url", backend.url, "--queue", backend.queue, "-x", "tests.jobs:Napper"),
            *("--lease-ttl", "1", "--reclaim-interval", "0.3"),
        ]
    )
    try:
        async with Engine(backend=backend, executors=[Napper()]) as engine:
            job_id = await engine.enqueue(kind="nap", payload={"first": 60})
            async with asyncio.timeout(15):
                while (await engine.get(job_id))["status"] != "running":
                    await asyncio.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait)
            worker = Worker(engine, lease_ttl=1, poll_interval=0.05, handle_signals=False)
            async with worker:
                async with asyncio.timeout(10):
                    while (await engine.get(job_id))["status"] != "success":
                        await asyncio.sleep(0.05)
            record = await engine.get(job_id)
            assert record["attempts"] == 2 and record["result"]["attempt"] == 2
            assert record["result"]["job_id"] == str(job_id)  # a UUID, as Pyjobkit hands it
    finally:
        first.kill()
        first.wait()


async def _until(engine: Engine, job_id: uuid.UUID, status: str) -> None:
    async with asyncio.timeout(10):
        while (await engine.get(job_id))["status"] != status:
            await asyncio.sleep(0.02)


@pytest.mark.timeout(40)
async def test_async_with_and_a_run_task_as_pyjobkit_documents(engine: Engine) -> None:
    async def idiom() -> asyncio.Task[None]:
        async with Worker(engine, poll_interval=0.05, handle_signals=False) as worker:
            task = asyncio.create_task(worker.run())
            await _until(
                engine, await engine.enqueue(kind="hello", payload={"name": "a"}), "success"
            )
        return task

    block = asyncio.create_task(idiom())
    done, _ = await asyncio.wait([block], timeout=20)
    assert done, "leaving the async with block did not stop the worker"
    task = block.result()
    ended, _ = await asyncio.wait([task], timeout=10)  # it ended with the block
    assert ended and not task.cancelled() and task.exception() is None


@pytest.mark.timeout(40)
async def test_cancelling_run_propagates_and_hands_jobs_back(backend: Any) -> None:
    async with Engine(backend=backend, executors=[Sleepy()]) as engine:
        job_id = await engine.enqueue(kind="sleepy", payload={"seconds": 3600})
        worker = Worker(engine, poll_interval=0.05, handle_signals=False)
        task = asyncio.create_task(worker.run())
        await _until(engine, job_id, "running")
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=15)
        assert done and task.cancelled()
        assert (await engine.get(job_id))["status"] == "queued"  # handed back, not left leased
        await asyncio.wait_for(worker.wait_stopped(), 5)


@pytest.mark.timeout(40)
async def test_cancelling_the_run_task_of_an_async_with_block(backend: Any) -> None:
    async with Engine(backend=backend, executors=[Sleepy()]) as engine:
        job_id = await engine.enqueue(kind="sleepy", payload={"seconds": 3600})
        async with asyncio.timeout(30):
            async with Worker(engine, poll_interval=0.05, handle_signals=False) as worker:
                task = asyncio.create_task(worker.run())
                await _until(engine, job_id, "running")
                task.cancel()
                done, _ = await asyncio.wait([task], timeout=15)
                assert done and task.cancelled()
            assert (await engine.get(job_id))["status"] == "queued"


@pytest.mark.timeout(40)
async def test_cancelling_a_task_inside_the_async_with_block(backend: Any) -> None:
    async with Engine(backend=backend, executors=[Sleepy()]) as engine:
        job_id = await engine.enqueue(kind="sleepy", payload={"seconds": 3600})

        async def serve() -> None:
            async with Worker(engine, poll_interval=0.05, handle_signals=False):
                await asyncio.sleep(3600)

        task = asyncio.create_task(serve())
        await _until(engine, job_id, "running")
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=15)  # not after stop_timeout (60 s)
        assert done and task.cancelled()
        assert (await engine.get(job_id))["status"] == "queued"
