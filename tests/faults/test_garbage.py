"""Scenario 8: garbage in Redis fails the one job it touches; the worker serves on, no traceback.

Everything here is written straight into the queue's keys, past the client's checks, as a bug,
a migration or someone with redis-cli would: a stream entry without a job hash, a payload that
is not msgpack, an unknown kind, numbers that are not numbers (before the job is leased, and
while it runs), and a 10 MB payload. A real ``redisjobs worker`` process serves the queue
meanwhile, with 100 good jobs before and after the garbage.
"""

from __future__ import annotations

import re
import time
from typing import Any

import msgpack
import pytest

from redisjobs import Client, JobStatus
from redisjobs.job import FINAL_STATUSES
from redisjobs.keys import GROUP
from tests.faults.conftest import MakeScenario
from tests.faults.harness import (
    Ledger,
    Spawner,
    check,
    statuses,
    until,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]


GOOD = {"fn": "tests.jobs:ledger", "args": {"seconds": 0.01}}

# job id suffix -> (field, garbage): numbers the scripts compute with, written before leasing
WRONG_TYPES = {
    "attempt": ("attempt", "abc"),
    "timeout": ("timeout", "x"),
    "lease": ("lease", "1.5"),
    "max-retries": ("max_retries", "-1"),
    "retry-backoff": ("retry_backoff", "fast"),
    "result-ttl": ("result_ttl", "forever"),
    "crashes": ("crashes", "many"),
    "binary": ("retry_delay", "\udcff\udcfe"),  # bytes that are not text either
}


def _raw(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


async def _enqueue(client: Client, job_id: str, payload: Any = None, **options: Any) -> str:
    job = await client.enqueue("call", payload or GOOD, job_id=job_id, **options)
    return job.id


async def _plant_garbage(client: Client) -> dict[str, str]:
    """Write the garbage; returns job id -> the error its failure must read (a regex)."""
    keys = client.keys()
    expect: dict[str, str] = {}

    jid = await _enqueue(client, "garbage-payload")
    await client.redis.hset(keys.job(jid), "payload", b"\xc1\xc1 not msgpack")
    expect[jid] = r"^SerializationError: cannot decode msgpack \(\d+ bytes\)"

    jid = await _enqueue(client, "garbage-kind")
    await client.redis.hset(keys.job(jid), "kind", "no-such-kind")
    expect[jid] = r"^UnknownExecutor: no executor for kind 'no-such-kind' on this worker$"

    jid = await _enqueue(client, "garbage-kind-bytes")
    await client.redis.hset(keys.job(jid), "kind", b"\xff\xfe\x00")
    kind = repr(b"\xff\xfe\x00".decode("utf-8", "replace"))
    expect[jid] = "^" + re.escape(f"UnknownExecutor: no executor for kind {kind} on this worker")

    for name, (field, value) in WRONG_TYPES.items():
        jid = await _enqueue(client, f"garbage-{name}", max_retries=2)
        await client.redis.hset(keys.job(jid), field, _raw(value))
        shown = re.escape(value if value.isprintable() else "??")
        expect[jid] = rf"^corrupt job hash: field {field} is '{shown}', not a number$"

    big = msgpack.packb({"fn": "tests.jobs:echo", "args": ["x" * (10 * 1024 * 1024)]})
    jid = await _enqueue(client, "garbage-10mb", max_retries=3)
    await client.redis.hset(keys.job(jid), "payload", big)
    expect[jid] = (
        rf"^PayloadTooLarge: payload is {len(big)} bytes, over this worker's cap of 1048576 "
        r"bytes \(max_payload_bytes\)$"
    )
    return expect


async def _plant_entries_without_hash(client: Client) -> list[str]:
    """Stream entries that name no job hash (or no job at all); returns their entry ids."""
    keys = client.keys()
    ids: list[Any] = [
        await client.redis.xadd(keys.ready, {"id": "ghost-job"}),
        await client.redis.xadd(keys.ready, {"junk": "no id field"}),
        await client.redis.xadd(keys.ready, {"id": b"\xff\xfe not text"}),
    ]
    return [i.decode() for i in ids]


async def test_garbage_fails_one_job_each_and_the_worker_serves_on(
    scenario: MakeScenario,
    workers: Spawner,
    ledger: Ledger,
    queue: str,
) -> None:
    server, client, tail = await scenario()
    keys = client.keys()
    t0 = time.monotonic()

    good = [j.id for j in await client.enqueue_many([("call", GOOD)] * 50)]
    expect = await _plant_garbage(client)
    # a setting missing from the hash is its default (a job of default settings has none): it runs
    unwritten = await _enqueue(client, "no-attempt-runs", max_retries=2)
    await client.redis.hdel(keys.job(unwritten), "attempt", "max_retries", "retry_delay")
    good.append(unwritten)
    ghosts = await _plant_entries_without_hash(client)
    await client.redis.zadd(keys.delayed, {"ghost-delayed": 0})  # a due member without a hash
    [worker] = await workers.start(
        server.url, 1, client.redis, concurrency=4, lease_ttl=2, reclaim_interval=0.5
    )

    # garbage written into a job's numbers *while it runs*: its outcome is still recorded, and
    # the results recorded with it in one batch are not held up
    running = await _enqueue(
        client, "garbage-while-running", {"fn": "tests.jobs:sleep", "args": [1]}
    )
    await until(lambda: _status(client, running, "running"), 20, "the job to run")
    await client.redis.hset(keys.job(running), mapping={"result_ttl": "soon", "attempt": "zz"})
    # and a job whose hash is deleted while it runs: its stream entry is swept from the PEL
    vanished = await _enqueue(
        client, "vanishes-while-running", {"fn": "tests.jobs:sleep", "args": [1]}
    )
    await until(lambda: _status(client, vanished, "running"), 20, "the job to run")
    await client.redis.delete(keys.job(vanished))
    good += [j.id for j in await client.enqueue_many([("call", GOOD)] * 50)]

    await until(lambda: _all_final(client, [*good, *expect, running]), 60, "every job final")
    elapsed = time.monotonic() - t0
    await tail.drain()
    failed = tail.terminal_events()
    readable: dict[str, str] = {}
    for jid, pattern in expect.items():
        job = await client.get(jid)  # reading a garbage job must not raise either
        assert job is not None and job.status is JobStatus.FAILED, jid
        assert job.error is not None and re.search(pattern, job.error), (jid, job.error)
        assert failed[jid].type == "failed" and failed[jid].data["error"] == job.error
        assert job.attempt <= 1, (jid, job.attempt)  # failed at once, never retried
        readable[jid] = job.error
    page = await client.list_jobs("failed", limit=100)  # a listing survives the garbage too
    assert {j.id for j in page.jobs} == set(expect)
    assert await client.wait(running, timeout=1) == "slept"
    assert await client.redis.pttl(keys.job(running)) > 0

    swept = await until(lambda: _pel_empty(client), 20, "the vanished job's entry to be swept")

    # The audit reads every field as UTF-8 text: make the two binary ones text before it runs
    # (they are read and checked above; the audit's invariants do not involve them).
    await client.redis.hset(keys.job("garbage-kind-bytes"), "kind", "was-binary")
    await client.redis.hset(keys.job("garbage-binary"), "retry_delay", "was-binary")
    figures = await check(
        "8 garbage in Redis",
        client.redis,
        queue,
        [*good, *expect, running],
        tail=tail,
        ledger=ledger,
        budget=10,
        extra={
            "garbage_jobs": len(expect) + 1,
            "entries_without_hash": len(ghosts),
            "delayed_without_hash": 1,
            "hash_deleted_while_running": 1,
            "swept_after_s": round(swept, 2),
        },
    )
    assert figures.statuses == {"completed": len(good) + 1, "failed": len(expect)}
    for jid in good:
        job = await client.get(jid)
        assert job is not None and job.status is JobStatus.COMPLETED, jid
    assert sorted((await ledger.starts()).values()) == [1] * len(good)  # each good job ran once

    for entry in ghosts:  # swept: acknowledged and deleted, never run
        assert await client.redis.xrange(keys.ready, entry, entry) == []
    assert await client.redis.zscore(keys.delayed, "ghost-delayed") is None
    assert (await client.redis.xpending(keys.ready, GROUP))["pending"] == 0

    assert worker.alive, worker.log()
    log = worker.log()
    assert "Traceback" not in log, log
    assert "Redis unavailable" not in log, log  # no script error dressed up as an outage
    worker.terminate()
    assert worker.wait(15) == 0
    assert "Traceback" not in worker.log()
    print(
        f"\n[8 garbage] {len(good)} good jobs completed (each ran once), {len(expect)} garbage "
        f"jobs failed readably, 1 corrupted while running completed, {len(ghosts)} entries "
        f"without a hash, 1 delayed member without a hash and the entry of 1 job whose hash was "
        f"deleted while it ran swept; worker alive, no traceback; {elapsed:.1f} s"
    )
    for jid, error in readable.items():
        print(f"    {jid}: {error[:110]}")


async def _all_final(client: Client, job_ids: list[str]) -> bool:
    found = await statuses(client.redis, client.queue, job_ids)
    return all(s in FINAL_STATUSES for s in found.values())


async def _pel_empty(client: Client) -> bool:
    pending: Any = await client.redis.xpending(client.keys().ready, GROUP)
    return int(pending["pending"]) == 0


async def _status(client: Client, job_id: str, status: str) -> bool:
    value: Any = await client.redis.hget(client.keys().job(job_id), "status")
    return bool(value == status.encode())
