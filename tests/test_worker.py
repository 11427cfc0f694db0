"""Worker: retries and backoff, timeouts, executors, garbage, progress, logs, shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from redisjobs import Client, ExecContext, Job, JobFailed, JobStatus, Worker
from redisjobs.keys import GROUP
from redisjobs.testing import RedisServer, unique_queue
from tests import jobs
from tests.conftest import WorkerFactory, log_events, planned

FUNCS: list[Callable[..., Any]] = [
    jobs.add,
    jobs.add_sync,
    jobs.fail,
    jobs.retry_later,
    jobs.retry_after_error,
    jobs.sleep,
    jobs.sleep_sync,
    jobs.unencodable,
    jobs.progress,
    jobs.until_cancelled,
]


async def until(predicate: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(5):
        while not await predicate():
            await asyncio.sleep(0.01)


async def test_sync_function_runs_in_a_thread(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=FUNCS, concurrency=10)
    t0 = time.monotonic()
    many = await client.enqueue_many([("call", {"fn": "sleep_sync", "args": {"seconds": 0.2}})] * 5)
    assert await client.wait(many[0].id, timeout=5) == "slept"
    for j in many:
        await client.wait(j.id, timeout=5)
    assert time.monotonic() - t0 < 0.9  # five blocking sleeps ran side by side
    job = await client.enqueue("call", {"fn": "add_sync", "args": [2, 5]})
    assert await client.wait(job.id, timeout=5) == 7


async def test_retry_delays_follow_backoff_within_jitter(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=FUNCS)
    job = await client.enqueue(
        "call", {"fn": "fail"}, max_retries=3, retry_delay=0.2, retry_backoff=2, retry_jitter=0.1
    )
    with pytest.raises(JobFailed):
        await client.wait(job.id, timeout=10)
    evs = await log_events(client, job.id)
    retrying = [e for e in evs if e.type == "retrying"]
    starts = [e for e in evs if e.type == "started"]
    assert [e.attempt for e in starts] == [1, 2, 3, 4]
    assert [e.type for e in evs][-1] == "failed"
    for n, (r, nxt) in enumerate(zip(retrying, starts[1:], strict=True), start=1):
        delay = 200 * 2 ** (n - 1)
        gap = r.data["due"] - r.ts
        assert min(planned(client, int(delay * 0.9) - 1)) <= gap <= delay * 1.1 + 1
        # the scheduler wakes on time: the next start follows the due time closely
        assert 0 <= nxt.ts - r.data["due"] < 150
    got = await client.get(job.id)
    assert got is not None and got.attempt == 4 and got.status is JobStatus.FAILED


async def test_retry_exception_defers(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=FUNCS)
    job = await client.enqueue("call", {"fn": "retry_later", "args": {"defer": 0.3}}, max_retries=1)
    with pytest.raises(JobFailed, match="retry requested"):
        await client.wait(job.id, timeout=5)
    evs = await log_events(client, job.id)
    [r] = [e for e in evs if e.type == "retrying"]
    assert r.data["due"] - r.ts in planned(client, 300)


async def test_a_retry_raised_from_an_error_keeps_that_error(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=FUNCS)
    job = await client.enqueue(
        "call", {"fn": "retry_after_error", "args": {"defer": 0}}, max_retries=1
    )
    with pytest.raises(JobFailed, match="KeyError: 'missing'"):
        await client.wait(job.id, timeout=5)


async def test_timeout_fails_the_run(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=FUNCS)
    job = await client.enqueue("call", {"fn": "sleep", "args": {"seconds": 5}}, timeout=0.2)
    with pytest.raises(JobFailed, match=r"timed out after 0\.2 s"):
        await client.wait(job.id, timeout=5)


async def _ended(client: Client, job_id: str) -> Job:
    async with asyncio.timeout(10):
        while (job := await client.get(job_id)) is None or not job.status.is_final:
            await asyncio.sleep(0.02)
    return job


async def test_a_failed_run_records_why(client: Client, worker: WorkerFactory) -> None:
    """Each way a run ends without a result is told apart by `failure`, not by the error's text,
    in the job hash and in the events that carry the error."""
    await worker(functions=FUNCS)
    retry: dict[str, Any] = {"max_retries": 1, "retry_delay": 0.05}
    timed_out = await client.enqueue("call", {"fn": "sleep", "args": [5]}, timeout=0.2, **retry)
    # an ordinary exception whose text reads like a timeout is still an error
    raised = await client.enqueue("call", {"fn": "fail", "args": ["timed out after 1 s"]}, **retry)
    fatal = await client.enqueue("call", {"fn": "os:system", "args": ["true"]}, max_retries=5)
    running = await client.enqueue("call", {"fn": "until_cancelled"})
    async with asyncio.timeout(5):
        while (j := await client.get(running.id)) is None or j.status is not JobStatus.RUNNING:
            await asyncio.sleep(0.02)
    assert await client.cancel(running.id) is True
    expected = {timed_out.id: "timeout", raised.id: "error", fatal.id: "fatal"}
    expected[running.id] = "cancel"
    for job_id, why in expected.items():
        job = await _ended(client, job_id)
        assert job.failure == why, (job.error, job.failure)
        evs = await log_events(client, job_id)
        ends = [e for e in evs if e.type in ("retrying", "failed", "cancelled")]
        assert ends and all(e.data["failure"] == why for e in ends), ends
    got = await client.get(raised.id)
    assert got is not None and got.error is not None and "timed out after 1 s" in got.error
    for retried in (timed_out.id, raised.id):  # retried once, then failed for good
        assert [e.type for e in await log_events(client, retried)].count("retrying") == 1
    got = await client.get(fatal.id)
    assert got is not None and got.attempt == 1  # not retried, though retries were left


async def test_unknown_kind_fails_without_retrying(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=FUNCS)
    job = await client.enqueue("nope", {}, max_retries=5)
    with pytest.raises(JobFailed, match="no executor for kind 'nope' on this worker"):
        await client.wait(job.id, timeout=5)
    got = await client.get(job.id)
    assert got is not None and got.attempt == 1 and got.failure == "fatal"


async def test_a_job_calling_sys_exit_fails_and_the_worker_goes_on(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=[jobs.exits, jobs.add])
    job = await client.enqueue("call", {"fn": "exits", "args": [3]})
    with pytest.raises(JobFailed, match="SystemExit: 3"):
        await client.wait(job.id, timeout=5)
    after = await client.enqueue("call", {"fn": "add", "args": [1, 2]})
    assert await client.wait(after.id, timeout=5) == 3


async def test_function_not_allowed(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=FUNCS)
    job = await client.enqueue("call", {"fn": "os:system", "args": ["true"]}, max_retries=3)
    with pytest.raises(JobFailed, match="not allowed on this worker"):
        await client.wait(job.id, timeout=5)


async def test_allowed_module(client: Client, worker: WorkerFactory) -> None:
    await worker(modules=["tests.jobs"])
    job = await client.enqueue("call", {"fn": "tests.jobs:add", "args": {"a": 4, "b": 4}})
    assert await client.wait(job.id, timeout=5) == 8


async def test_unencodable_result_fails_clearly(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=FUNCS)
    job = await client.enqueue("call", {"fn": "unencodable"}, max_retries=2)
    with pytest.raises(JobFailed, match="SerializationError: cannot encode object"):
        await client.wait(job.id, timeout=5)


async def test_garbage_fails_one_job_and_worker_keeps_serving(
    client: Client, worker: WorkerFactory
) -> None:
    keys = client.keys()
    w = await worker(functions=FUNCS)
    bad = await client.enqueue("call", {"fn": "add"}, job_id="garbage-payload", delay=0.2)
    await client.redis.hset(keys.job(bad.id), "payload", b"\xc1\xc1 not msgpack")
    await client.redis.xadd(keys.ready, {"junk": "no id field"})
    await client.redis.xadd(keys.ready, {"id": "no-such-job"})
    with pytest.raises(JobFailed, match="cannot decode msgpack"):
        await client.wait(bad.id, timeout=5)
    good = await client.enqueue("call", {"fn": "add", "args": {"a": 1, "b": 1}})
    assert await client.wait(good.id, timeout=5) == 2
    assert w._run_task is not None and not w._run_task.done()
    assert (await client.redis.xpending(keys.ready, GROUP))["pending"] == 0


async def test_progress_and_log_lines(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=FUNCS)
    job = await client.enqueue("call", {"fn": "progress", "args": {"steps": 5, "pause": 0.1}})
    await client.wait(job.id, timeout=5)
    evs = [e for e in await log_events(client, job.id) if e.type == "progress"]
    assert 2 <= len(evs) <= 5
    assert evs[-1].data["progress"] == 100.0 and evs[-1].data["message"] == "step 5"
    lines = await client.redis.lrange(client.keys().job_log(job.id), 0, -1)
    assert lines == [f"step {i}".encode() for i in range(1, 6)]
    assert 0 < await client.redis.pttl(client.keys().job_log(job.id)) <= 86_400_000


async def test_progress_is_throttled(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=FUNCS)
    job = await client.enqueue("call", {"fn": "progress", "args": {"steps": 200, "pause": 0}})
    await client.wait(job.id, timeout=5)
    evs = [e for e in await log_events(client, job.id) if e.type == "progress"]
    assert len(evs) <= 3 and evs[-1].data["progress"] == 100.0


async def test_concurrency_limit(client: Client, worker: WorkerFactory) -> None:
    running = 0
    peak = 0

    async def tracked(ctx: ExecContext) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1

    await worker(functions={"tracked": tracked}, concurrency=3)
    many = await client.enqueue_many([("call", {"fn": "tracked"})] * 12)
    for j in many:
        await client.wait(j.id, timeout=5)
    assert peak == 3


async def test_graceful_stop_finishes_running_jobs(url: str, queue: str, client: Client) -> None:
    w = Worker(url, queue=queue, functions=FUNCS, handle_signals=False, poll_interval=0.05)
    async with w:
        job = await client.enqueue("call", {"fn": "sleep", "args": {"seconds": 0.3}})
        await until(lambda: _is(client, job.id, JobStatus.RUNNING))
        w.stop()
    assert await client.wait(job.id, timeout=1) == "slept"
    assert (await client.redis.xpending(client.keys().ready, GROUP))["pending"] == 0
    assert w.id not in [x.id for x in await client.workers()]  # it left the live ones
    (gone,) = [x for x in await client.workers(gone=True) if x.id == w.id]
    assert gone.state == "offline" and gone.stopped_at is not None and gone.held == 0


async def test_jobs_outliving_grace_are_handed_back(url: str, queue: str, client: Client) -> None:
    first = Worker(url, queue=queue, functions=FUNCS, handle_signals=False, grace_period=0.2)
    async with first:
        job = await client.enqueue("call", {"fn": "sleep", "args": {"seconds": 0.5}})
        await until(lambda: _is(client, job.id, JobStatus.RUNNING))
        first.stop()
    got = await client.get(job.id)
    assert got is not None and got.status is JobStatus.PENDING and got.attempt == 0
    second = Worker(url, queue=queue, functions=FUNCS, handle_signals=False, poll_interval=0.05)
    async with second:
        assert await client.wait(job.id, timeout=3) == "slept"
    got = await client.get(job.id)
    assert got is not None and got.attempt == 1 and got.worker == second.id


async def test_stop_now_hands_back_at_once(url: str, queue: str, client: Client) -> None:
    w = Worker(url, queue=queue, functions=FUNCS, handle_signals=False, grace_period=30)
    t0 = time.monotonic()
    async with w:
        job = await client.enqueue("call", {"fn": "until_cancelled"})
        await until(lambda: _is(client, job.id, JobStatus.RUNNING))
        w.stop(now=True)
    assert time.monotonic() - t0 < 3
    got = await client.get(job.id)
    assert got is not None and got.status is JobStatus.PENDING


async def _is(client: Client, job_id: str, status: JobStatus) -> bool:
    job = await client.get(job_id)
    return job is not None and job.status is status


async def test_stop_while_redis_is_gone_does_not_hang() -> None:
    server = RedisServer().start()
    try:
        queue = unique_queue()
        w = Worker(server.url, queue=queue, handle_signals=False, lease_ttl=1, grace_period=0.5)
        await w.__aenter__()
        server.kill()
        await asyncio.sleep(0.3)  # every loop is now retrying against a dead Redis
        w.stop()
        assert w._run_task is not None
        await asyncio.wait_for(w._run_task, 10)
    finally:
        server.stop()


async def test_batch_size_caps_a_fetch_not_concurrency(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=FUNCS, concurrency=4, batch_size=1)
    many = await client.enqueue_many([("call", {"fn": "sleep", "args": [0.3]})] * 4)
    for job in many:
        await client.wait(job.id, timeout=5)
    events = [e for j in many for e in await log_events(client, j.id)]
    last_start = max(e.ts for e in events if e.type == "started")
    first_end = min(e.ts for e in events if e.type == "completed")
    assert last_start < first_end  # all four ran at once, leased one per fetch


# -- burst mode -------------------------------------------------------------------------------


async def test_a_burst_worker_runs_what_is_ready_then_stops(
    url: str, queue: str, client: Client
) -> None:
    ready = await client.enqueue_many([("call", {"fn": "sleep", "args": [0.3]})] * 3)
    due = await client.enqueue("call", {"fn": "add", "args": [1, 1]}, delay=0.2)
    later = await client.enqueue("call", {"fn": "add", "args": [2, 2]}, delay=3600)
    retried = await client.enqueue("call", {"fn": "fail"}, max_retries=1, retry_delay=3600)
    await asyncio.sleep(0.3)  # `due` is due now, `later` is not
    w = Worker(
        url, queue=queue, functions=FUNCS, burst=True, handle_signals=False, poll_interval=0.05
    )
    t0 = time.monotonic()
    await asyncio.wait_for(w.run(), 10)
    assert time.monotonic() - t0 < 5
    for job in ready:
        assert await client.wait(job.id, timeout=0.1) == "slept"  # finished before it stopped
    assert await client.wait(due.id, timeout=0.1) == 2
    # Scheduled for later, a retry waiting out its backoff included: not waited for.
    assert await _is(client, later.id, JobStatus.SCHEDULED)
    assert await _is(client, retried.id, JobStatus.SCHEDULED)
    (gone,) = [x for x in await client.workers(gone=True) if x.id == w.id]
    assert gone.state == "offline"  # it left as on SIGTERM


async def test_a_burst_worker_on_an_empty_queue_stops_at_once(url: str, queue: str) -> None:
    w = Worker(url, queue=queue, burst=True, handle_signals=False, poll_interval=0.05)
    await asyncio.wait_for(w.run(), 5)
    assert w.unhealthy() == "stopped"


async def test_without_burst_an_empty_queue_keeps_the_worker(
    url: str, queue: str, worker: WorkerFactory
) -> None:
    w = await worker(functions=FUNCS)
    await asyncio.sleep(0.3)
    assert w.ready and w._run_task is not None and not w._run_task.done()


async def test_context_of_a_running_job(client: Client, worker: WorkerFactory) -> None:
    w = await worker(functions=FUNCS)
    assert w.context("no-such-job") is None
    job = await client.enqueue("call", {"fn": "until_cancelled"})
    await until(lambda: _is(client, job.id, JobStatus.RUNNING))

    async def launched() -> bool:  # `start` marks it running before its reply reaches the worker
        return w.context(job.id) is not None

    await until(launched)
    ctx = w.context(job.id)
    assert ctx is not None and ctx.job_id == job.id and ctx.attempt == 1
    await client.cancel(job.id)
    await until(lambda: _is(client, job.id, JobStatus.CANCELLED))
    assert w.context(job.id) is None
