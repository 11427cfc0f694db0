"""Retention per outcome (keep_completed, keep_failed: an age, a count or both), the
idempotency marker that outlives a job's hash, and what a job using none of them costs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redisjobs import Client, ExecContext, Keep
from redisjobs.jobrules import MAX_KEEP_COUNT
from tests.conftest import WorkerFactory
from tests.faults.audit import audit
from tests.jobs import echo, fail, progress


async def _ended(client: Client, ids: list[str]) -> None:
    async with asyncio.timeout(10):
        for job_id in ids:
            while True:
                job = await client.get(job_id)
                if job is None or job.status.is_final:
                    break
                await asyncio.sleep(0.02)


async def _ttl_s(client: Client, job_id: str) -> float:
    return float(await client.redis.pttl(client.keys().job(job_id))) / 1000


async def test_an_age_per_outcome_replaces_result_ttl(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=[echo, fail])
    rules: dict[str, Any] = {"keep_completed": 30, "keep_failed": Keep(age=3000)}
    ok = await client.enqueue("call", {"fn": "echo", "args": [1]}, result_ttl=600, **rules)
    bad = await client.enqueue("call", {"fn": "fail"}, result_ttl=600, **rules)
    plain = await client.enqueue("call", {"fn": "echo", "args": [2]}, result_ttl=600)
    await _ended(client, [ok.id, bad.id, plain.id])
    assert 25 < await _ttl_s(client, ok.id) <= 30
    assert 2990 < await _ttl_s(client, bad.id) <= 3000
    assert 590 < await _ttl_s(client, plain.id) <= 600
    log_ttl = await client.redis.pttl(client.keys().job_log(bad.id))
    assert log_ttl == -2 or 2_990_000 < log_ttl <= 3_000_000  # the log (if any) goes with it
    expires: Any = await client.redis.zscore(client.keys().dead, bad.id)
    now_ms = (await client.redis.time())[0] * 1000
    assert 2_990_000 < expires - now_ms <= 3_001_000  # dead is scored by the same expiry
    assert await audit(client.redis, client.queue) == []


async def test_a_count_keeps_the_most_recent_jobs_of_an_outcome(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=[echo], concurrency=1)
    keep: dict[str, Any] = {"keep_completed": {"count": 3}}
    ids = []
    for n in range(10):  # one by one, so that their order is their end's
        job = await client.enqueue("call", {"fn": "echo", "args": [n]}, **keep)
        assert await client.wait(job.id, timeout=10) == n
        ids.append(job.id)
        # A whole job can take under a millisecond: jobs that end in the same millisecond tie
        # on their expiry and keep in id order, so each ends in a millisecond of its own.
        await asyncio.sleep(0.002)
    index: Any = await client.redis.zrange(client.keys().status("completed"), 0, -1)
    assert [i.decode() for i in index] == ids[-3:]
    for gone in ids[:-3]:  # hash and log deleted, not left to expire
        assert not await client.redis.exists(client.keys().job(gone), client.keys().job_log(gone))
    assert await audit(client.redis, client.queue) == []


async def test_count_trimming_is_bounded_per_job(client: Client, worker: WorkerFactory) -> None:
    """A queue far over a count shrinks by two jobs per job that sets it, not all at once."""
    await worker(functions=[fail])
    many = await client.enqueue_many([("call", {"fn": "fail"}) for _ in range(40)])
    await _ended(client, [j.id for j in many])
    bounded = await client.enqueue("call", {"fn": "fail"}, keep_failed=Keep(count=1))
    await _ended(client, [bounded.id])
    failed = client.keys().status("failed")
    assert await client.redis.zcard(failed) == 39  # 41 failed, 2 deleted
    assert await client.redis.zcard(client.keys().dead) == 39
    assert (await client.stats())["dead"] == 39
    assert await client.get(bounded.id) is not None  # it expires last: kept
    assert await audit(client.redis, client.queue) == []


async def test_a_count_of_one_outcome_leaves_the_other_alone(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=[echo, fail])
    failed = await client.enqueue_many([("call", {"fn": "fail"}) for _ in range(5)])
    await _ended(client, [j.id for j in failed])
    done = await client.enqueue("call", {"fn": "echo", "args": [0]}, keep_completed={"count": 1})
    await _ended(client, [done.id])
    assert await client.redis.zcard(client.keys().status("failed")) == 5


async def test_idempotency_outlives_the_job(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=[echo])
    opts: dict[str, Any] = {"job_id": "charge-7", "result_ttl": 0.2, "idempotency_ttl": 60}
    first = await client.enqueue("call", {"fn": "echo", "args": [7]}, **opts)
    assert await client.wait(first.id, timeout=10) == 7
    await asyncio.sleep(0.3)
    assert await client.get(first.id) is None  # its retention is over
    again = await client.enqueue("call", {"fn": "echo", "args": [7]}, **opts)
    assert again.duplicate and again.id == "charge-7" and again.status == "completed"
    assert await client.get("charge-7") is None  # nothing was written
    marker = client.keys().idem("charge-7")
    assert await client.redis.get(marker) == b"completed"
    assert 59_000 < await client.redis.pttl(marker) <= 60_000
    assert await audit(client.redis, client.queue) == []
    # without idempotency_ttl the marker is not looked at: the id is free once the hash is gone
    fresh = await client.enqueue("call", {"n": 7}, job_id="charge-7", delay=60)
    assert not fresh.duplicate


async def test_a_cancelled_job_leaves_its_marker(client: Client) -> None:
    job = await client.enqueue("call", {"n": 1}, delay=60, idempotency_ttl=5, result_ttl=0.1)
    assert await client.cancel(job.id)
    await asyncio.sleep(0.2)
    again = await client.enqueue("call", {"n": 1}, job_id=job.id, idempotency_ttl=5)
    assert again.duplicate and again.status == "cancelled"


async def test_rules_are_stored_only_when_set(client: Client) -> None:
    plain = await client.enqueue("call", {"n": 1})
    ruled = await client.enqueue(
        "call",
        {"n": 1},
        keep_completed=Keep(age=10, count=5),
        keep_failed=20,
        idempotency_ttl=30,
    )
    raw: Any = await client.redis.hgetall(client.keys().job(plain.id))
    names = {b"completed_ttl", b"completed_keep", b"failed_ttl", b"failed_keep", b"unique"}
    assert not names.intersection(raw) and b"idempotency_ttl" not in raw
    raw = await client.redis.hgetall(client.keys().job(ruled.id))
    assert (raw[b"completed_ttl"], raw[b"completed_keep"]) == (b"10000", b"5")
    assert (raw[b"failed_ttl"], raw.get(b"failed_keep")) == (b"20000", None)
    assert raw[b"idempotency_ttl"] == b"30000"


@pytest.mark.parametrize(
    "opts",
    [
        {"keep_completed": -1},
        {"keep_completed": 0},
        {"keep_completed": "3600"},
        {"keep_completed": True},
        {"keep_completed": float("nan")},
        {"keep_completed": 1e12},
        {"keep_completed": {}},
        {"keep_completed": {"age": 10, "forever": True}},
        {"keep_failed": {"count": 0}},
        {"keep_failed": {"count": -5}},
        {"keep_failed": {"count": 2.5}},
        {"keep_failed": Keep(count=MAX_KEEP_COUNT + 1)},
        {"keep_failed": Keep()},
        {"idempotency_ttl": -1},
        {"idempotency_ttl": "a day"},
    ],
)
async def test_hostile_retention_values_write_nothing(client: Client, opts: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        await client.enqueue("call", {"n": 1}, **opts)
    assert await client.redis.keys(f"{client.keys().prefix}*") == []


async def test_a_huge_count_is_taken(client: Client) -> None:
    job = await client.enqueue("call", {"n": 1}, keep_completed=Keep(count=MAX_KEEP_COUNT))
    assert await client.redis.hget(client.keys().job(job.id), "completed_keep") == b"1000000000"


@pytest.mark.redis_only
async def test_a_plain_job_costs_the_commands_it_cost(
    client: Client, worker: WorkerFactory
) -> None:
    """Enqueue, run and complete: one EXISTS (the id's dedup), one HGETALL (start) and one
    HMGET (complete) a job, and no GET, SET or DEL: the rules are read in the reads that ran
    anyway. (`start` adds one EXISTS per call, not per job, for priorities and pausing: each
    call reads the stream or follows a blocking read of it, so there are no more of them than
    XREADGROUPs.)"""
    await client.redis.config_resetstat()
    jobs = await client.enqueue_many([("call", {"fn": "echo", "args": [n]}) for n in range(200)])
    await worker(functions=[echo])
    async with asyncio.timeout(10):  # (not by reading the jobs: those reads would count)
        while await client.redis.zcard(client.keys().status("completed")) < len(jobs):
            await asyncio.sleep(0.02)
    stats: Any = await client.redis.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): s["calls"] for name, s in stats.items()}
    assert 200 < calls["exists"] <= 200 + calls["xreadgroup"]
    # (and the worker's note of the queue's history as it starts: one HGETALL a minute)
    assert 200 <= calls["hgetall"] <= 202 and calls["hmget"] == 200
    assert not {"get", "set", "del"}.intersection(calls)
    # one per job, its hash's (and a few of the worker's registry entry): a first run that
    # logged nothing has no log whose expiry to set (it was two per job)
    assert 200 <= calls["pexpire"] < 250


async def logs_first(ctx: ExecContext) -> str:
    """Logs and fails on its first attempt, succeeds silently on the next."""
    if ctx.attempt == 1:
        await ctx.log("first try")
        raise RuntimeError("again")
    return "done"


async def test_a_log_expires_with_its_job_whichever_run_wrote_it(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=[progress, logs_first, echo])
    logged = await client.enqueue("call", {"fn": "progress", "args": [2, 0]}, result_ttl=600)
    earlier = await client.enqueue(
        "call", {"fn": "logs_first"}, result_ttl=600, max_retries=1, retry_delay=0
    )
    silent = await client.enqueue("call", {"fn": "echo", "args": [1]}, result_ttl=600)
    await _ended(client, [logged.id, earlier.id, silent.id])
    for job in (logged, earlier):  # this run's lines, or an earlier run's: the job's 600 s
        assert await client.logs(job.id)
        ttl = await client.redis.pttl(client.keys().job_log(job.id))
        assert 590_000 < ttl <= 600_000, (job.id == earlier.id, ttl)
    assert not await client.redis.exists(client.keys().job_log(silent.id))
