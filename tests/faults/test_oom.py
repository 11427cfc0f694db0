"""Scenario 9: Redis at ``maxmemory``.

With ``noeviction`` (the only policy that cannot lose jobs), a full Redis refuses new jobs: an
enqueue raises :class:`~redisjobs.RedisOutOfMemory` and leaves nothing behind, while the jobs
already running still record their outcomes (the outcome scripts are ``allow-oom``). Once memory
is raised, every job that was accepted completes. A worker started against an evicting policy
(``allkeys-lru``) warns loudly at startup.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError

from redisjobs import Client, Event, RedisOutOfMemory, Worker
from redisjobs.job import FINAL_STATUSES
from tests.faults.conftest import MakeClient, MakeRedis, MakeScenario
from tests.faults.harness import (
    Figures,
    Ledger,
    Spawner,
    WorkerProcess,
    check,
    enqueue_ledger_jobs,
    redis_time_ms,
    statuses,
    until,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]


NOEVICTION = ["--maxmemory-policy", "noeviction"]
SLOTS = 4  # per worker; two workers


async def _fill(redis: Redis) -> int:
    """Fill Redis to its maxmemory; returns the bytes written.

    Big values first, then smaller ones, until even a 10-byte SET is refused. The limit is then
    set 1 MB below what Redis uses: memory that client buffers free meanwhile cannot end the
    out-of-memory state in the middle of the checks. (Each connection that loaded a script,
    about 30 KB of Lua, keeps a query buffer of up to 100 KB that Redis shrinks a while later:
    a few workers' connections free several hundred KB.)
    """
    used = int((await redis.info("memory"))["used_memory"])
    await redis.config_set("maxmemory", used + 2_000_000)
    written = n = 0
    for size in (100_000, 10_000, 1_000, 100, 10):
        try:
            while True:
                await redis.set(f"filler:{n}", b"x" * size)
                written += size
                n += 1
        except OutOfMemoryError:
            pass
    used = int((await redis.info("memory"))["used_memory"])
    await redis.config_set("maxmemory", used - 1_000_000)
    return written


async def _out_of_memory(redis: Redis) -> bool:
    try:
        await redis.set("filler:probe", "x")
    except OutOfMemoryError:
        return True
    return False


async def _traces(client: Client, job_id: str) -> list[str]:
    """Every trace of `job_id` in the queue's keys and its event log (none for a refused
    enqueue); plain reads, which a full Redis still serves."""
    keys = client.keys()
    found = []
    if await client.redis.exists(keys.job(job_id)):
        found.append("job hash")
    for status in (*FINAL_STATUSES, "pending", "scheduled", "running"):
        if await client.redis.zscore(keys.status(status), job_id) is not None:
            found.append(f"status:{status}")
    if await client.redis.zscore(keys.delayed, job_id) is not None:
        found.append("delayed")
    entries: Any = await client.redis.xrange(keys.ready)
    if any(fields.get(b"id") == job_id.encode() for _, fields in entries):
        found.append("stream entry")
    if any(e.job_id == job_id for e in await _log(client)):
        found.append("events")
    return found


async def _log(client: Client) -> list[Event]:
    """The queue's event log, read with XRANGE (the tail's MULTI is refused while Redis is full)."""
    entries: Any = await client.redis.xrange(client.keys().log)
    return [Event.decode(fields[b"e"], eid.decode(), client.queue) for eid, fields in entries]


async def test_full_redis_refuses_enqueues_and_still_records_outcomes(
    scenario: MakeScenario,
    workers: Spawner,
    ledger: Ledger,
    make_client: MakeClient,
    queue: str,
) -> None:
    server, client, tail = await scenario("plain", args=NOEVICTION)
    pool = await workers.start(server.url, 2, client.redis, concurrency=SLOTS, lease_ttl=2)

    # Every slot busy for a few seconds (half of them logging and reporting progress as they
    # go), and jobs waiting behind them: all of these were accepted before Redis filled up.
    running = [
        (
            await client.enqueue(
                "call", {"fn": "tests.jobs:progress", "args": {"steps": 8, "pause": 0.5}}
            )
        ).id
        for _ in range(SLOTS)
    ]
    running += await enqueue_ledger_jobs(client, SLOTS - 1, seconds=4)
    late_failure = {"fn": "tests.jobs:fails_after", "args": {"seconds": 4, "message": "late"}}
    failing = (await client.enqueue("call", late_failure)).id
    running.append(failing)
    waiting = await enqueue_ledger_jobs(client, 10, seconds=0.05)
    await until(lambda: _all(client, running, "running"), 20, "every slot to be busy")

    filled = await _fill(client.redis)
    full_at = await redis_time_ms(client.redis)
    assert await _out_of_memory(client.redis)
    enqueued_before = (await client.stats())["enqueued"]

    refused: dict[str, RedisOutOfMemory] = {}
    with pytest.raises(RedisOutOfMemory) as caught:
        await client.enqueue("call", {"fn": "tests.jobs:add", "args": [1, 2]}, job_id="refused")
    refused["refused"] = caught.value
    with pytest.raises(RedisOutOfMemory) as caught:
        await client.enqueue("call", {"fn": "tests.jobs:add"}, job_id="refused-later", delay=60)
    refused["refused-later"] = caught.value
    many = [
        {"kind": "call", "payload": {"fn": "tests.jobs:add"}, "job_id": f"refused-{i}"}
        for i in range(3)
    ]
    with pytest.raises(RedisOutOfMemory) as caught:
        await client.enqueue_many(many)
    refused.update({f"refused-{i}": caught.value for i in range(3)})
    fresh = await make_client(server.url)  # its first enqueue also registers the queue
    with pytest.raises(RedisOutOfMemory) as caught:
        await fresh.enqueue("call", {"fn": "tests.jobs:add"}, job_id="refused-fresh")
    refused["refused-fresh"] = caught.value
    for job_id in refused:
        assert await _traces(client, job_id) == [], job_id
    for error in refused.values():
        text = str(error)
        assert re.search(r"^Redis at redis://127\.0\.0\.1:\d+/0 is out of memory", text), text
        assert "nothing was enqueued" in text, text
    assert (await client.stats())["enqueued"] == enqueued_before

    # the running jobs finish and their outcomes are recorded while Redis is still full (one
    # of them fails: its traceback cannot go to its log, its failure is recorded all the same)
    await until(lambda: _final(client, running), 30, "the running jobs to finish")
    assert await _out_of_memory(client.redis)
    raised_at = await redis_time_ms(client.redis)
    done_full = [e for e in await _log(client) if e.type in FINAL_STATUSES and e.job_id in running]
    assert len(done_full) == len(running) and all(full_at < e.ts <= raised_at for e in done_full)
    assert {e.type for e in done_full if e.job_id != failing} == {"completed"}
    [failed] = [e for e in done_full if e.job_id == failing]
    assert failed.type == "failed" and failed.data["error"] == "RuntimeError: late"

    await client.redis.config_set("maxmemory", 0)
    t0 = time.monotonic()
    after = await client.enqueue("call", {"fn": "tests.jobs:add", "args": [2, 3]})
    assert await client.wait(after.id, timeout=30) == 5
    await until(lambda: _final(client, [*running, *waiting]), 30, "every accepted job")
    recovered = time.monotonic() - t0

    for job_id in refused:  # and not later either
        assert await _traces(client, job_id) == [], job_id
    figures = await check(
        "9 Redis out of memory",
        client.redis,
        queue,
        [*running, *waiting, after.id],
        tail=tail,
        ledger=ledger,
        budget=10,
        recovery_s=recovered,
        extra={
            "filled_bytes": filled,
            "refused_enqueues": len(refused),
            "outcomes_recorded_while_full": len(done_full),
            "accepted_jobs_finished": len(running) + len(waiting),
        },
    )
    assert figures.statuses == {"completed": len(running) + len(waiting), "failed": 1}
    for w in pool:
        assert w.alive
        w.terminate()
    for w in pool:
        assert w.wait(15) == 0
        _assert_calm(w)
    print(
        f"    full: {len(refused)} enqueues refused ({str(refused['refused'])[:90]}…), "
        f"nothing written; {len(done_full)} running jobs recorded their outcome while full; "
        f"{len(waiting)} waiting + 1 new completed {recovered:.2f} s after maxmemory was raised"
    )


def _assert_calm(worker: WorkerProcess) -> None:
    log = worker.log()
    assert "Traceback" not in log, log
    assert "leases as lost" not in log, log  # out of memory is not a lost connection


async def test_a_worker_against_allkeys_lru_warns_loudly(
    make_redis: MakeRedis, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="redisjobs")
    for policy in ("allkeys-lru", "noeviction"):
        server = make_redis("plain", args=["--maxmemory", "64mb", "--maxmemory-policy", policy])
        async with Worker(server.url, queue=queue, handle_signals=False) as worker:
            await worker.wait_ready()
    records = [r for r in caplog.records if "maxmemory-policy" in r.getMessage()]
    assert len(records) == 1, [r.getMessage() for r in records]  # none for noeviction
    [record] = records
    text = record.getMessage()
    assert record.levelno >= logging.WARNING and record.name == "redisjobs.worker"
    assert "allkeys-lru" in text and "lose jobs" in text and "noeviction" in text, text
    Figures(
        "9 allkeys-lru warning",
        jobs=0,
        lost=0,
        duplicate_executions=0,
        duplicate_outcomes=0,
        extra={"level": record.levelname, "logger": record.name, "message": text},
    ).emit()


async def _all(client: Client, job_ids: list[str], status: str) -> bool:
    found = await statuses(client.redis, client.queue, job_ids)
    return all(s == status for s in found.values())


async def _final(client: Client, job_ids: list[str]) -> bool:
    found = await statuses(client.redis, client.queue, job_ids)
    return all(s in FINAL_STATUSES for s in found.values())
