"""Rate limits, per-key max_running and fair share between limit keys, with real workers on
both backends (a real redis-server and the embedded one)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.exceptions import ResponseError

from redisjobs import Client
from redisjobs.keys import QueueKeys
from redisjobs.limits import Limit, parse_rate
from redisjobs.metrics import queue_families
from redisjobs.scripts import Scripts
from redisjobs.wire import EnqueueRow

from .conftest import WorkerFactory
from .faults.audit import audit

STARTS: dict[str, list[tuple[str, float, float]]] = {}
"""Per test queue: (tag, start, end) of each run, on this process's monotonic clock."""


async def ledger(run: str, tag: str, seconds: float = 0.0) -> str:
    """Note when job `tag` of test run `run` started and ended, taking `seconds`."""
    began = time.monotonic()
    await asyncio.sleep(seconds)
    STARTS.setdefault(run, []).append((tag, began, time.monotonic()))
    return tag


def _job(run: str, tag: str, key: str | None, seconds: float = 0.0) -> dict[str, Any]:
    job: dict[str, Any] = {"kind": "call", "payload": {"fn": "ledger", "args": [run, tag, seconds]}}
    return {**job, "limit_key": key} if key else job


async def _until(check: Any, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


async def _done(queue: str, n: int, timeout: float = 15.0) -> list[tuple[str, float, float]]:
    async def enough() -> bool:
        return len(STARTS.get(queue, ())) >= n

    await _until(enough, timeout)
    return sorted(STARTS[queue], key=lambda r: r[1])


def _most_at_once(runs: list[tuple[str, float, float]]) -> int:
    edges = sorted([(s, 1) for _, s, _ in runs] + [(e, -1) for _, _, e in runs])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


@pytest.mark.parametrize(
    ("text", "rate", "per"),
    [("100/s", 100, 1), ("5/m", 5, 60), ("1000/h", 1000, 3600), ("10/2s", 10, 2)],
)
def test_rate_strings(text: str, rate: float, per: float) -> None:
    assert parse_rate(text) == (rate, per)


@pytest.mark.parametrize("text", ["", "100", "0/s", "10/0s", "x/s", "10/w", "-1/s"])
def test_bad_rate_strings_are_a_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match="a rate is"):
        parse_rate(text)


@pytest.mark.parametrize("key", ["", "-a", ".a", "*", "*a", "a b", "a" * 201, "é"])
async def test_bad_limit_keys_are_refused_in_python(client: Client, key: str) -> None:
    with pytest.raises(ValueError, match="limit_key must be"):
        await client.enqueue("k", limit_key=key)


@pytest.mark.parametrize("key", ["*x", "-x", "a b", "k" * 201])
async def test_bad_limit_keys_are_refused_in_lua(
    scripts: Scripts, keys: QueueKeys, key: str
) -> None:
    row = EnqueueRow("j1", "k", b"\xc0", 0, 0, 1.0, 0.0, 0, 1000, rules=(("limit_key", key),))
    with pytest.raises(ResponseError, match="invalid limit key"):
        await scripts.enqueue(keys, [row])


async def test_set_limit_reads_back_and_clears(client: Client) -> None:
    await client.set_limit(rate=50, per=2.0, burst=5)
    await client.set_limit(key="*", max_running=3)
    await client.set_limit(key="tenant-a", rate=10)
    await client.set_limit(max_pending=1000)
    assert await client.limits() == [
        Limit(None, 50.0, 2.0, 5, None, 1000),
        Limit("*", None, 1.0, None, 3, 1000),
        Limit("tenant-a", 10.0, 1.0, None, None, 1000),
    ]
    assert await client.clear_limit(key="tenant-a")
    assert not await client.clear_limit(key="tenant-a")
    assert await client.clear_limit()
    assert await client.limits() == [Limit("*", None, 1.0, None, 3, None)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_pending": 5, "key": "a"},
        {"max_running": 2},
        {"rate": 0},
        {"rate": 5, "per": 0},
        {"key": "a", "burst": 3, "max_running": 1},
        {"key": "a b", "rate": 1},
        {"key": "a", "max_running": 0},
    ],
)
async def test_bad_limits_are_refused(client: Client, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        await client.set_limit(**kwargs)
    assert await client.limits() == []


async def test_max_running_per_key_is_never_exceeded(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    await client.set_limit(key="a", max_running=2)
    await client.enqueue_many(
        [_job(queue, f"a{i}", "a", 0.05) for i in range(20)]
        + [_job(queue, f"b{i}", "b", 0.05) for i in range(10)]
    )
    await worker(functions=[ledger], concurrency=10)
    runs = await _done(queue, 30)
    assert _most_at_once([r for r in runs if r[0].startswith("a")]) == 2
    assert _most_at_once([r for r in runs if r[0].startswith("b")]) > 2  # unlimited key flows
    assert all(s.running == 0 and s.backlog == 0 for s in await client.limit_keys())
    assert not await audit(client.redis, queue)


async def _p99_wait(client: Client, ids: list[str], since: float) -> float:
    """The 99th percentile of `since` (epoch s, Redis's clock) -> started of these jobs."""
    jobs = [j for j in await client.get_many(ids) if j and j.started_at]
    assert len(jobs) == len(ids)
    waits = sorted(j.started_at.timestamp() - since for j in jobs if j.started_at)
    return waits[min(len(waits) - 1, int(len(waits) * 0.99))]


async def _released(client: Client, jobs: list[dict[str, Any]]) -> tuple[list[str], float]:
    """Enqueue `jobs` on the paused queue, then resume it: their ids, and when (Redis s)."""
    ids = []
    for i in range(0, len(jobs), 2000):
        ids += [j.id for j in await client.enqueue_many(jobs[i : i + 2000])]
    secs, micros = await client.redis.time()
    await client.resume()
    return ids, secs + micros / 1e6


async def test_a_small_key_is_not_starved_by_a_big_backlog(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    await worker(functions=[ledger], concurrency=1)
    await client.pause()
    alone, at = await _released(client, [_job(f"{queue}-alone", f"b{i}", "b") for i in range(100)])
    await _done(f"{queue}-alone", 100)
    p99_alone = await _p99_wait(client, alone, at)
    await client.pause()
    jobs = [_job(queue, f"a{i}", "a") for i in range(20_000)]
    ids, at = await _released(client, jobs + [_job(queue, f"b{i}", "b") for i in range(100)])
    runs = await _done(queue, 300, timeout=60)
    order = [tag for tag, _, _ in runs]
    # Round-robin: B's k-th job starts within the first 2k + 1 jobs started after it was
    # enqueued (one of A's before each of B's), so all 100 within the first 201.
    assert {f"b{i}" for i in range(100)} <= set(order[:201])
    p99 = await _p99_wait(client, ids[-100:], at)
    print(f"p99 wait of 100 jobs of key B, concurrency 1: alone {p99_alone * 1000:.0f} ms, "
          f"behind 20,000 of key A {p99 * 1000:.0f} ms")  # fmt: skip


async def test_drain_takes_keyed_jobs_out_of_their_key(
    client: Client, keys: QueueKeys, queue: str
) -> None:
    await client.enqueue_many([_job(queue, f"d{i}", "d") for i in range(5)])
    assert await client.drain() == 5
    assert await client.redis.zcard(keys.key_jobs("d")) == 0
    assert not await audit(client.redis, queue)


async def test_keyed_and_plain_jobs_share_the_workers(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    await client.enqueue_many([_job(queue, f"a{i}", "a") for i in range(200)])
    await client.enqueue_many([_job(queue, f"p{i}", None) for i in range(10)])
    await worker(functions=[ledger], concurrency=1)
    order = [tag for tag, _, _ in await _done(queue, 40)]
    assert {f"p{i}" for i in range(10)} <= set(order[:25])


async def test_rate_limit_per_key_and_an_unlimited_key(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    await client.set_limit(key="*", rate=10, burst=1)
    await client.set_limit(key="free", rate=10_000)
    await client.enqueue_many(
        [_job(queue, f"{k}{i}", k) for k in ("x", "y") for i in range(40)]
        + [_job(queue, f"free{i}", "free") for i in range(40)]
    )
    await worker(functions=[ledger], concurrency=4)
    await asyncio.sleep(2.0)
    runs = STARTS[queue]
    per_key = {k: sorted(b for t, b, _ in runs if t.startswith(k)) for k in ("x", "y", "free")}
    # each limited key starts at its rate from its first start on, however late the worker
    # got going on a loaded machine: at most 10 a second, and not far below it
    for key in ("x", "y"):
        starts = per_key[key]
        assert len(starts) >= 10, (key, len(starts))
        rate = (len(starts) - 1) / (starts[-1] - starts[0])
        assert 6 <= rate <= 11, (key, rate)
    assert len(per_key["free"]) == 40
    stats = await client.stats()
    assert stats["throttled"] > 0
    families = {f.name: f for f in await queue_families(client)}
    (sample,) = [s for s in families["redisjobs_throttled"].samples if s.labels["queue"] == queue]
    # the worker still runs (x and y are held back): the counter read between two stats reads
    after = (await client.stats())["throttled"]
    assert sample.name == "redisjobs_throttled_total"
    assert stats["throttled"] <= sample.value <= after


async def test_queue_rate_changes_at_run_time_and_clear_restores_full_speed(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    await client.set_limit(rate=20, burst=1)
    await client.enqueue_many([_job(queue, f"p{i}", None) for i in range(200)])
    await worker(functions=[ledger], concurrency=2)
    await asyncio.sleep(1.0)
    first = len(STARTS.get(queue, ()))
    assert 15 <= first <= 25
    await client.set_limit(rate=5, burst=1)
    await asyncio.sleep(1.0)
    second = len(STARTS[queue]) - first
    assert 3 <= second <= 8
    assert await client.clear_limit()
    await _done(queue, 200, timeout=5.0)


async def test_a_hold_stops_a_key_until_it_expires(
    client: Client, worker: WorkerFactory, queue: str, keys: QueueKeys
) -> None:
    # Measured from before the SET, not from o0's start: a slow worker start delays o0 but
    # never moves the hold's expiry, which Redis counts from the SET. The hold is long enough
    # that o0 still starts inside it on a loaded machine.
    held_from = time.monotonic()
    await client.redis.set(keys.key_hold("h"), "x", px=1200)
    await client.enqueue_many([_job(queue, "h0", "h"), _job(queue, "o0", "o")])
    await worker(functions=[ledger], concurrency=2)
    runs = await _done(queue, 2, timeout=5.0)
    assert [t for t, _, _ in runs] == ["o0", "h0"]
    assert runs[1][1] - held_from >= 1.19


async def test_cancel_of_a_waiting_keyed_job_leaves_its_key(
    client: Client, keys: QueueKeys, queue: str
) -> None:
    job = await client.enqueue("call", _job(queue, "c", None)["payload"], limit_key="c")
    assert await client.redis.zcard(keys.key_jobs("c")) == 1
    assert await client.cancel(job.id)
    assert await client.redis.zcard(keys.key_jobs("c")) == 0


async def test_a_key_held_long_does_not_delay_a_new_job_of_another_key(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    if client.backend.embedded:
        pytest.skip("the embedded backend cannot block: a throttled worker polls")
    await client.set_limit(key="slow", rate=1, per=60)  # its second job waits a minute
    await client.enqueue_many([_job(queue, f"s{i}", "slow") for i in range(2)])
    await worker(functions=[ledger], concurrency=2)
    await _done(queue, 1)

    async def throttled_again() -> bool:
        return (await client.stats())["throttled"] > seen

    seen = (await client.stats())["throttled"]
    await _until(throttled_again)  # the worker just heard "wait" (up to 2 s at a time)
    sent = time.monotonic()
    await client.enqueue("call", _job(queue, "f0", "fast")["payload"], limit_key="fast")
    runs = await _done(queue, 2, timeout=5.0)
    assert runs[1][0] == "f0"
    # the new entry ends the wait: well under the up to 2 s it would otherwise sleep on
    assert runs[1][1] - sent < 1.0, runs[1][1] - sent
