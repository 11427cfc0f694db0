"""The Pyjobkit face's per-kind rate limits: the token bucket, its specs, and a worker that
throttles one kind and defers what would wait too long."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from redisjobs.pyjobkit import Engine, Worker
from redisjobs.pyjobkit.contracts import ExecContext, Executor
from redisjobs.pyjobkit.ratelimit import TokenBucket, parse_rate_limits


class Stamp(Executor):
    """Records when each run of its kind started."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.starts: list[float] = []

    async def run(self, *, job_id: uuid.UUID, payload: Any, ctx: ExecContext) -> Any:
        self.starts.append(time.monotonic())
        return None


def test_specs_in_every_shape() -> None:
    assert parse_rate_limits({"http": {"max_per_second": 5, "burst": 10}, "email": 2}) == {
        "http": (5.0, 10.0),
        "email": (2.0, 2.0),
    }
    assert parse_rate_limits({"sms": (3, 4), "x": [5, 10]}) == {"sms": (3.0, 4.0), "x": (5.0, 10.0)}
    assert parse_rate_limits("http:5:10, email:2") == {"http": (5.0, 10.0), "email": (2.0, 2.0)}
    assert parse_rate_limits(None) == {} == parse_rate_limits({})


@pytest.mark.parametrize(
    "spec",
    [{"http": {"burst": 10}}, {"http": 0}, {"http": (1, -1)}, {"http": "fast"}, "http", "h:1:2:3"],
)
def test_bad_specs_are_refused(spec: Any) -> None:
    with pytest.raises(ValueError):
        parse_rate_limits(spec)


async def test_the_bucket_lets_a_burst_through_then_the_rate() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)
    with pytest.raises(ValueError):
        TokenBucket(1, burst=0)
    bucket = TokenBucket(10, burst=2)
    with pytest.raises(ValueError):
        await bucket.acquire(3)
    await bucket.acquire(0)
    start = time.monotonic()
    for _ in range(3):
        await bucket.acquire()
    assert 0.08 <= time.monotonic() - start <= 1.0  # the third waited ~100 ms
    assert bucket.reserve() > 0  # none left now


async def test_a_worker_throttles_its_limited_kind_only(backend: Any) -> None:
    slow, fast = Stamp("slow"), Stamp("fast")
    async with Engine(backend=backend, executors=[slow, fast]) as engine:
        await engine.enqueue_many(
            [{"kind": "slow", "payload": {}}] * 4 + [{"kind": "fast", "payload": {}}] * 4
        )
        worker = Worker(
            engine,
            rate_limits={"slow": {"max_per_second": 4, "burst": 1}},
            poll_interval=0.05,
            handle_signals=False,
        )
        async with asyncio.timeout(20):
            async with worker:
                while len(slow.starts) < 4 or len(fast.starts) < 4:
                    await asyncio.sleep(0.02)
    gaps = [b - a for a, b in zip(slow.starts, slow.starts[1:], strict=False)]
    assert all(gap >= 0.2 for gap in gaps), gaps  # 4 a second, one at a time
    assert max(fast.starts) - min(fast.starts) < 0.5  # the other kind never waited


async def test_a_long_wait_goes_back_to_the_queue_without_an_attempt(backend: Any) -> None:
    limited = Stamp("slow")
    async with Engine(backend=backend, executors=[limited]) as engine:
        first = await engine.enqueue(kind="slow", payload={}, priority=1)
        second = await engine.enqueue(kind="slow", payload={}, priority=2)
        worker = Worker(
            engine,
            rate_limits={"slow": (0.5, 1)},  # a token every 2 s
            poll_interval=0.05,
            handle_signals=False,
        )
        async with worker:
            async with asyncio.timeout(10):
                while (await engine.get(first))["status"] != "success":
                    await asyncio.sleep(0.02)
                while (record := await engine.get(second))["scheduled_for"] is None:
                    await asyncio.sleep(0.02)
            # deferred ~2 s, its attempt given back
            assert record["status"] == "queued" and record["attempts"] == 0
            async with asyncio.timeout(10):
                while (await engine.get(second))["status"] != "success":
                    await asyncio.sleep(0.05)
    assert limited.starts[1] - limited.starts[0] >= 1.5
