"""Client: enqueue, idempotency, get, wait, cancel, list, stats, events, bad input."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from redisjobs import (
    Client,
    ConnectionFailed,
    JobCancelled,
    JobFailed,
    JobManager,
    JobNotFound,
    JobStatus,
    PayloadTooLarge,
    SerializationError,
    WaitTimeout,
    connection,
)
from redisjobs.testing import RedisServer, closed_port, unique_queue
from tests import jobs
from tests.conftest import WorkerFactory

FUNCS = [jobs.add, jobs.fail, jobs.sleep, jobs.echo, jobs.until_cancelled]


async def keys_of(client: Client) -> list[bytes]:
    keys: list[bytes] = await client.redis.keys(f"rj:{{{client.queue}}}:*")  # type: ignore[assignment]
    return sorted(keys)


async def test_enqueue_creates_pending_job(client: Client) -> None:
    job = await client.enqueue("call", {"fn": "add", "args": {"a": 1, "b": 2}})
    assert job.status is JobStatus.PENDING
    got = await client.get(job.id)
    assert got is not None
    assert got.status is JobStatus.PENDING
    assert got.kind == "call"
    assert got.payload == {"fn": "add", "args": {"a": 1, "b": 2}}
    assert got.attempt == 0
    assert got.created_at.tzinfo is UTC


async def test_job_id_is_idempotency_key(client: Client) -> None:
    first = await client.enqueue("call", {"fn": "add"}, job_id="order-42")
    before = await keys_of(client)
    stats = await client.stats()
    again = await client.enqueue("call", {"fn": "other"}, job_id="order-42")
    assert again.id == first.id == "order-42"
    assert again.payload == {"fn": "add"}  # the existing job, untouched
    assert await keys_of(client) == before
    assert (await client.stats())["enqueued"] == stats["enqueued"] == 1


async def test_unencodable_payload_fails_at_enqueue_with_nothing_written(client: Client) -> None:
    with pytest.raises(SerializationError, match="msgpack"):
        await client.enqueue("call", {"fn": "add", "args": {"x": object()}})
    with pytest.raises(SerializationError):
        await client.enqueue_many([("call", {"ok": 1}), ("call", {"bad": {1, 2j}})])
    assert await keys_of(client) == []


async def test_payload_over_cap_fails_at_enqueue(url: str, queue: str) -> None:
    async with Client(url, queue=queue, max_payload_bytes=1000) as client:
        with pytest.raises(PayloadTooLarge, match="over the 1000"):
            await client.enqueue("call", {"blob": "x" * 2000})
        assert await keys_of(client) == []


async def test_bad_options_rejected(client: Client) -> None:
    with pytest.raises(ValueError):
        await client.enqueue("", {})
    with pytest.raises(ValueError):
        await client.enqueue("call", {}, delay=-1)
    with pytest.raises(ValueError):
        Client(queue="bad}name")
    assert await keys_of(client) == []


async def test_priority_is_recorded_only_when_given(client: Client) -> None:
    plain = await client.enqueue("call", {"fn": "add"})
    urgent = await client.enqueue("call", {"fn": "add"}, priority=3, delay=60)
    lowest = await client.enqueue("call", {"fn": "add"}, priority=2**21)
    top = await client.enqueue("call", {"fn": "add"}, priority=0)
    default = await client.enqueue("call", {"fn": "add"}, priority=100)
    [bulk, bulk_plain] = await client.enqueue_many(
        [{"kind": "call", "payload": {"fn": "add"}, "priority": 9}, ("call", {"fn": "add"})]
    )
    assert (urgent.priority, bulk.priority, plain.priority, top.priority) == (3, 9, 100, 0)
    expected = ((plain, 100), (urgent, 3), (lowest, 2**21), (bulk, 9), (bulk_plain, 100))
    for job, priority in (*expected, (top, 0), (default, 100)):
        got = await client.get(job.id)
        assert got is not None and got.priority == priority
    # a job at the default priority costs nothing: no field at all, a plain stream entry
    for job in (plain, bulk_plain, default):
        assert not await client.redis.hexists(client.keys().job(job.id), "priority")
        assert await client.redis.hexists(client.keys().job(job.id), "msg")
    assert await client.redis.hget(client.keys().job(urgent.id), "priority") == b"3"
    assert await client.redis.hget(client.keys().job(top.id), "priority") == b"0"
    # a runnable job at another priority waits in `prio`, without an entry of its own
    assert not await client.redis.hexists(client.keys().job(top.id), "msg")
    members = await client.redis.zrange(client.keys().prio, 0, -1)
    assert members == [top.id.encode(), bulk.id.encode(), lowest.id.encode()]


async def test_jobs_with_a_priority_run_as_any_other(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=[jobs.add])
    now = await client.enqueue("call", {"fn": "add", "args": [1, 2]}, priority=7)
    later = await client.enqueue("call", {"fn": "add", "args": [2, 3]}, priority=1, delay=0.2)
    [bulk] = await client.enqueue_many(
        [{"kind": "call", "payload": {"fn": "add", "args": [3, 4]}, "priority": 2**21}]
    )
    assert [await client.wait(j.id, timeout=10) for j in (now, later, bulk)] == [3, 5, 7]


async def test_a_bad_priority_is_refused_with_nothing_written(client: Client) -> None:
    for bad in (-1, 2**21 + 1):
        with pytest.raises(ValueError, match=r"priority must be 0\.\.2097152"):
            await client.enqueue("call", {"fn": "add"}, priority=bad)
    for wrong in (1.5, "1", True):
        with pytest.raises(TypeError, match="priority must be an int"):
            await client.enqueue("call", {"fn": "add"}, priority=wrong)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="priority"):
        await client.enqueue_many([("call", {}), {"kind": "call", "priority": -5}])
    assert await keys_of(client) == []


async def test_missing_redis_fails_fast_naming_url() -> None:
    with closed_port() as port, pytest.raises(ConnectionFailed) as info:
        client = Client(f"redis://app:s3cret@127.0.0.1:{port}/0")
        t0 = time.monotonic()
        await client.enqueue("call", {})
    assert time.monotonic() - t0 <= 2.0
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "s3cret" not in str(info.value)
    assert "***" in str(info.value)


async def test_wait_returns_result(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=FUNCS)
    job = await client.enqueue("call", {"fn": "add", "args": {"a": 2, "b": 3}})
    assert await client.wait(job.id, timeout=5) == 5
    done = await client.get(job.id)
    assert done is not None and done.status is JobStatus.COMPLETED
    assert done.result == 5 and done.progress == 100
    assert done.started_at is not None and done.completed_at is not None


async def test_wait_on_finished_job_returns_at_once(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=FUNCS)
    job = await client.enqueue("call", {"fn": "echo", "args": {"value": [1, "a"]}})
    assert await client.wait(job.id, timeout=5) == [1, "a"]
    assert await client.wait(job.id, timeout=0.5) == [1, "a"]


async def test_wait_timeout_is_timeout_error(client: Client) -> None:
    job = await client.enqueue("call", {"fn": "add"})
    with pytest.raises(TimeoutError):
        await client.wait(job.id, timeout=0.1)
    with pytest.raises(WaitTimeout):
        await client.wait(job.id, timeout=0.05)


async def test_wait_raises_job_failed_with_error(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=FUNCS)
    job = await client.enqueue("call", {"fn": "fail", "args": {"message": "disk full"}})
    with pytest.raises(JobFailed, match="RuntimeError: disk full") as info:
        await client.wait(job.id, timeout=5)
    assert info.value.error == "RuntimeError: disk full"


async def test_wait_unknown_job(client: Client) -> None:
    with pytest.raises(JobNotFound):
        await client.wait("nope", timeout=1)
    assert await client.get("nope") is None


async def test_many_concurrent_waits_miss_nothing(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=FUNCS, concurrency=50)
    jobs_ = await client.enqueue_many(
        [("call", {"fn": "add", "args": {"a": i, "b": 1}}) for i in range(200)]
    )
    results = await asyncio.gather(*(client.wait(j.id, timeout=20) for j in jobs_))
    assert results == [i + 1 for i in range(200)]


async def test_cancel_pending(client: Client) -> None:
    job = await client.enqueue("call", {"fn": "add"})
    assert await client.cancel(job.id) is True
    got = await client.get(job.id)
    assert got is not None and got.status is JobStatus.CANCELLED and got.failure == "cancel"
    assert await client.redis.xlen(client.keys().ready) == 0
    with pytest.raises(JobCancelled):
        await client.wait(job.id, timeout=1)
    assert await client.cancel(job.id) is False


async def test_cancel_scheduled(client: Client, worker: WorkerFactory) -> None:
    job = await client.enqueue("call", {"fn": "add", "args": {"a": 1, "b": 1}}, delay=0.5)
    assert job.status is JobStatus.SCHEDULED
    await worker(functions=FUNCS)
    assert await client.cancel(job.id) is True
    assert await client.redis.zcard(client.keys().delayed) == 0
    await asyncio.sleep(0.8)
    got = await client.get(job.id)
    assert got is not None and got.status is JobStatus.CANCELLED


async def test_cancel_running_interrupts_it(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=FUNCS)
    job = await client.enqueue("call", {"fn": "until_cancelled"})
    async with asyncio.timeout(5):
        while (j := await client.get(job.id)) is None or j.status is not JobStatus.RUNNING:
            await asyncio.sleep(0.02)
    t0 = time.monotonic()
    assert await client.cancel(job.id) is True
    with pytest.raises(JobCancelled):
        await client.wait(job.id, timeout=5)
    assert time.monotonic() - t0 < 2
    got = await client.get(job.id)
    assert got is not None and got.status is JobStatus.CANCELLED
    pel = await client.redis.xpending(client.keys().ready, "workers")
    assert pel["pending"] == 0


async def test_cancel_unknown_or_finished(client: Client, worker: WorkerFactory) -> None:
    assert await client.cancel("missing") is False
    await worker(functions=FUNCS)
    job = await client.enqueue("call", {"fn": "add", "args": {"a": 1, "b": 1}})
    await client.wait(job.id, timeout=5)
    assert await client.cancel(job.id) is False


async def test_delay_and_at(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=FUNCS)
    t0 = time.monotonic()
    job = await client.enqueue("call", {"fn": "add", "args": {"a": 1, "b": 2}}, delay=0.4)
    assert await client.wait(job.id, timeout=5) == 3
    assert time.monotonic() - t0 >= 0.35
    at = datetime.now(UTC) + timedelta(seconds=0.3)
    job2 = await client.enqueue("call", {"fn": "add", "args": {"a": 1, "b": 1}}, at=at)
    assert (await client.get(job2.id)).status is JobStatus.SCHEDULED  # type: ignore[union-attr]
    assert await client.wait(job2.id, timeout=5) == 2


async def test_list_jobs_pages_by_status(client: Client) -> None:
    made = await client.enqueue_many([("call", {"i": i}) for i in range(25)])
    await client.enqueue("call", {}, delay=60)
    page = await client.list_jobs(JobStatus.PENDING, limit=10)
    assert len(page.jobs) == 10 and page.cursor == 10
    seen = [j.id for j in page.jobs]
    while page.cursor is not None:
        page = await client.list_jobs("pending", limit=10, cursor=page.cursor)
        seen += [j.id for j in page.jobs]
    assert sorted(seen) == sorted(j.id for j in made)
    everything = await client.list_jobs(limit=100)
    assert len(everything.jobs) == 26 and everything.cursor is None
    assert [j.status for j in (await client.list_jobs("scheduled")).jobs] == [JobStatus.SCHEDULED]


async def test_stats(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=FUNCS)
    ok = await client.enqueue("call", {"fn": "add", "args": {"a": 1, "b": 1}})
    bad = await client.enqueue("call", {"fn": "fail"})
    await client.wait(ok.id, timeout=5)
    with pytest.raises(JobFailed):
        await client.wait(bad.id, timeout=5)
    stats = await client.stats()
    assert stats["enqueued"] == 2 and stats["completed"] == 1 and stats["failed"] == 1
    assert stats["dead"] == 1 and stats["pending"] == 0 and stats["running"] == 0


async def test_events_of_a_job_live_and_replayed(client: Client, worker: WorkerFactory) -> None:
    got: list[str] = []

    async def follow(job_id: str) -> None:
        async for ev in client.events(job_id):
            got.append(ev.type)
            if ev.type == "completed":
                assert ev.data["result"] == 1  # the fencing token of the first run
                return

    await worker(functions=[*FUNCS, jobs.progress])
    job = await client.enqueue("call", {"fn": "progress", "args": {"steps": 3}}, job_id="ev-1")
    await asyncio.wait_for(follow(job.id), 5)
    assert got[0] in ("started", "progress") and got[-1] == "completed"

    replay: list[str] = []
    async for ev in client.events(job.id, since="0"):
        assert ev.id is not None and ev.job_id == job.id and ev.queue == client.queue
        replay.append(ev.type)
        if ev.type == "completed":
            break
    assert replay[0] == "enqueued" and replay[1] == "started" and "progress" in replay


async def test_queue_events(client: Client, worker: WorkerFactory) -> None:
    seen: list[tuple[str, str]] = []
    stream = client.events()
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.05)
    await worker(functions=FUNCS)
    job = await client.enqueue("call", {"fn": "add", "args": {"a": 1, "b": 2}})
    ev = await asyncio.wait_for(first, 5)
    while True:
        seen.append((ev.type, ev.job_id))
        if ev.type == "completed":
            break
        ev = await asyncio.wait_for(anext(stream), 5)
    assert seen == [("enqueued", job.id), ("started", job.id), ("completed", job.id)]
    await stream.aclose()


async def test_every_key_carries_the_queue_hash_tag(
    client: Client, worker: WorkerFactory, redis_url: str
) -> None:
    await worker(functions=[*FUNCS, jobs.progress])
    a = await client.enqueue("call", {"fn": "progress"}, max_retries=1)
    b = await client.enqueue("call", {"fn": "fail"}, max_retries=1, retry_delay=0.01)
    c = await client.enqueue("call", {}, delay=60)
    await client.wait(a.id, timeout=5)
    with pytest.raises(JobFailed):
        await client.wait(b.id, timeout=5)
    await client.cancel(c.id)
    raw_keys: Any = await client.redis.keys("*")
    all_keys = [k.decode() for k in raw_keys]
    mine = [k for k in all_keys if client.queue in k]
    assert len(mine) >= 8
    for key in mine:
        assert key.startswith(f"rj:{{{client.queue}}}:"), key


async def test_acl_user_in_url_and_redis_url_env(monkeypatch: pytest.MonkeyPatch) -> None:
    acl = ["--user", "default", "off", "--user", "app", "on", ">s3cret", "~*", "&*", "+@all"]
    with RedisServer(args=acl) as server:
        url = f"redis://app:s3cret@127.0.0.1:{server.port}/0"
        monkeypatch.setenv("REDIS_URL", url)
        async with Client(queue=unique_queue()) as client:  # no URL: $REDIS_URL
            assert client.backend.url == url
            job = await client.enqueue("call", {"x": 1})
            assert (await client.get(job.id)) is not None
        bad = Client(f"redis://app:wrong@127.0.0.1:{server.port}/0")
        with pytest.raises(ConnectionFailed) as info:
            await bad.connect()
        assert "wrong" not in str(info.value) and "app:***@" in str(info.value)


PRIVATE_STORE = "REDIS_URL is not set: using memory://, an in-memory store private to this process"


def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """A private-store warning that has not fired in this process yet (restored afterwards)."""
    warn = functools.cache(connection._warn_private_store.__wrapped__)
    monkeypatch.setattr(connection, "_warn_private_store", warn)


async def test_no_url_anywhere_warns_once_per_process_of_the_private_store(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    fresh_warning(monkeypatch)
    caplog.set_level(logging.WARNING, logger="redisjobs")
    first, second = Client(queue=unique_queue()), Client(queue=unique_queue())
    assert first.backend.url == second.backend.url == "memory://"
    warned = [r for r in caplog.records if PRIVATE_STORE in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING
    # a private store asked for by name, and JobManager's own one, are no surprise
    fresh_warning(monkeypatch)
    caplog.clear()
    async with Client("memory://", queue=unique_queue()) as client:
        await client.enqueue("greet", {"name": "x"})
    async with JobManager() as manager:
        job = await manager.submit(jobs.add, args={"a": 1, "b": 2})
        assert await manager.wait(job.id, timeout=10) == 3
    assert not [r for r in caplog.records if PRIVATE_STORE in r.getMessage()]
