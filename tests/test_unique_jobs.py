"""Unique jobs: each mode's lock, held and released at the documented transitions, its TTL,
derived and given keys, on tasks and in batches; each step checked against the keyspace
invariants (the audit knows the locks)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redisjobs import App, Client, Job, JobStatus, UniqueMode
from redisjobs.jobrules import derived_key
from redisjobs.serialization import pack_payload
from tests.conftest import WorkerFactory
from tests.faults.audit import audit
from tests.jobs import echo, fail, sleep, until_cancelled

SLEEP = {"fn": "sleep", "args": [30]}


async def _status(client: Client, job_id: str, *wanted: str) -> Job:
    async with asyncio.timeout(10):
        while True:
            job = await client.get(job_id)
            if job is not None and job.status in wanted:
                return job
            await asyncio.sleep(0.02)


async def _clean(client: Client) -> None:
    assert await audit(client.redis, client.queue) == []


async def test_a_duplicate_while_queued_returns_the_job_and_writes_nothing(client: Client) -> None:
    for mode in ("until_start", "until_done", "while_queued"):
        payload = {"fn": "echo", "args": [mode]}
        first = await client.enqueue("call", payload, unique=mode)
        again = await client.enqueue("call", payload, unique=mode, delay=60)
        assert not first.duplicate and again.duplicate
        assert again.id == first.id and again.status == JobStatus.PENDING  # the stored job
    assert (await client.stats())["enqueued"] == 3
    await _clean(client)


@pytest.mark.parametrize(
    ("mode", "held"), [("until_start", False), ("while_queued", False), ("until_done", True)]
)
async def test_a_running_job_holds_the_lock_until_done_only(
    client: Client, worker: WorkerFactory, mode: UniqueMode, held: bool
) -> None:
    first = await client.enqueue("call", SLEEP, unique=mode)
    await worker(functions=[sleep])
    await _status(client, first.id, "running")
    # (each copy is for later: a worker picking it up while the audit reads would be a race)
    during = await client.enqueue("call", SLEEP, unique=mode, delay=60)
    assert during.duplicate == held and (during.id == first.id) == held
    await _clean(client)
    if held:  # until_done lets go at the end: here a cancel of the running job
        assert await client.cancel(first.id)
        await _status(client, first.id, "cancelled")
        after = await client.enqueue("call", SLEEP, unique=mode, delay=60)
        assert not after.duplicate and after.id != first.id
        await _clean(client)


async def test_a_completed_job_releases_every_mode(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=[echo])
    for mode in ("until_start", "until_done", "while_queued"):
        payload = {"fn": "echo", "args": [mode]}
        first = await client.enqueue("call", payload, unique=mode)
        assert await client.wait(first.id, timeout=10) == mode
        again = await client.enqueue("call", payload, unique=mode, delay=60)
        assert not again.duplicate and again.id != first.id
    await _clean(client)


async def test_a_cancelled_waiting_job_releases_its_lock(client: Client) -> None:
    for mode in ("until_start", "until_done", "while_queued"):
        payload = {"fn": "echo", "args": [mode]}
        first = await client.enqueue("call", payload, unique=mode, delay=60)
        assert await client.cancel(first.id)
        again = await client.enqueue("call", payload, unique=mode)
        assert not again.duplicate
    await _clean(client)


async def test_a_drained_job_releases_its_lock(client: Client) -> None:
    for delay in (0, 60):  # pending, scheduled
        payload = {"fn": "echo", "args": ["drained", delay]}
        first = await client.enqueue("call", payload, unique="until_done", delay=delay)
        assert await client.drain() == 1
        again = await client.enqueue("call", payload, unique="until_done")
        assert not again.duplicate and again.id != first.id
        assert await client.drain() == 1
    await _clean(client)


async def test_a_failure_with_retries_left_keeps_or_retakes_the_lock(
    client: Client, worker: WorkerFactory
) -> None:
    """The run fails and a retry waits a minute: until_done still holds the lock, while_queued
    takes it again, until_start let it go when the run started."""
    await worker(functions=[fail])
    expect: dict[UniqueMode, bool] = {
        "until_done": True,
        "while_queued": True,
        "until_start": False,
    }
    for mode, held in expect.items():
        payload = {"fn": "fail", "args": [mode]}
        first = await client.enqueue(
            "call", payload, unique=mode, max_retries=1, retry_delay=60, retry_jitter=0
        )
        await _status(client, first.id, "scheduled")
        again = await client.enqueue("call", payload, unique=mode, delay=60)
        assert again.duplicate == held and (again.id == first.id) == held, mode
        await _clean(client)


async def test_a_failure_for_good_releases_the_lock(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=[fail])
    first = await client.enqueue("call", {"fn": "fail"}, unique="until_done")
    await _status(client, first.id, "failed")
    again = await client.enqueue("call", {"fn": "fail"}, unique="until_done", delay=60)
    assert not again.duplicate
    await _clean(client)


async def test_the_lock_expires_after_its_ttl(client: Client) -> None:
    first = await client.enqueue("call", SLEEP, unique="until_done", unique_ttl=0.2)
    assert (await client.enqueue("call", SLEEP, unique="until_done")).duplicate
    await asyncio.sleep(0.3)
    second = await client.enqueue("call", SLEEP, unique="until_done", unique_ttl=60)
    assert not second.duplicate and second.id != first.id
    # the first job's end does not release the lock the second one holds now
    assert await client.cancel(first.id)
    assert (await client.enqueue("call", SLEEP, unique="until_done")).id == second.id
    await _clean(client)


async def test_derived_and_given_keys(client: Client) -> None:
    a = await client.enqueue("call", {"fn": "echo", "args": [1]}, unique="until_done")
    b = await client.enqueue("call", {"fn": "echo", "args": [2]}, unique="until_done")
    c = await client.enqueue("greet", {"fn": "echo", "args": [1]}, unique="until_done")
    assert not (a.duplicate or b.duplicate or c.duplicate)  # other arguments, another kind
    key = derived_key("call", pack_payload({"fn": "echo", "args": [1]}, 2**20))
    assert await client.redis.get(client.keys().unique(key)) == a.id.encode()
    mine = await client.enqueue("call", {"n": 1}, unique="until_done", unique_key="user:42/sync")
    other = await client.enqueue("call", {"n": 2}, unique="until_done", unique_key="user:42/sync")
    assert other.duplicate and other.id == mine.id  # the given key, whatever the payload
    raw: Any = await client.redis.hgetall(client.keys().job(mine.id))
    assert raw[b"unique"] == b"until_done" and raw[b"unique_key"] == b"user:42/sync"
    await _clean(client)


async def test_a_batch_holds_its_own_duplicates_to_its_first(client: Client) -> None:
    jobs = await client.enqueue_many(
        [{"kind": "call", "payload": {"n": 1}, "unique": "until_done"} for _ in range(3)]
    )
    assert [j.duplicate for j in jobs] == [False, True, True]
    assert {j.id for j in jobs} == {jobs[0].id}
    assert (await client.stats())["enqueued"] == 1


async def test_a_lock_outliving_its_job_still_answers_with_that_job(client: Client) -> None:
    first = await client.enqueue("call", SLEEP, unique="until_done")
    await client.redis.delete(client.keys().job(first.id))  # gone by hand
    again = await client.enqueue("call", SLEEP, unique="until_done")
    assert again.duplicate and again.id == first.id


async def test_hostile_unique_options_write_nothing(client: Client) -> None:
    bad: list[dict[str, Any]] = [
        {"unique": "forever"},
        {"unique": True},
        {"unique": "until_done", "unique_key": "a b"},
        {"unique": "until_done", "unique_key": "x" * 201},
        {"unique": "until_done", "unique_key": "{tag}"},
        {"unique": "until_done", "unique_key": 42},
        {"unique": "until_done", "unique_ttl": 0},
        {"unique": "until_done", "unique_ttl": -1},
        {"unique": "until_done", "unique_ttl": "60"},
        {"unique": "until_done", "unique_ttl": 1e300},
        {"unique_key": "k"},
        {"unique_ttl": 5},
    ]
    for opts in bad:
        with pytest.raises((TypeError, ValueError)):
            await client.enqueue("call", {"n": 1}, **opts)
    assert await client.redis.keys(f"{client.keys().prefix}*") == []


async def test_a_task_declared_unique(url: str, queue: str) -> None:
    app = App(url, queue=queue)

    @app.task(name="wait_here", unique="until_start", unique_ttl=60)
    async def wait_here(ctx: Any, n: int) -> None:
        await asyncio.sleep(30)

    first = await wait_here.enqueue(1)
    again = await wait_here.enqueue(1)
    other = await wait_here.enqueue(2)
    assert again.id == first.id and again.job.duplicate and not other.job.duplicate
    keyed = await wait_here.options(unique="until_done", unique_key="one").enqueue(3)
    assert (
        await wait_here.options(unique="until_done", unique_key="one").enqueue(4)
    ).id == keyed.id
    with pytest.raises(ValueError):
        app.task(unique="sometimes")(until_cancelled)  # type: ignore[call-overload]
    await app.aclose()
