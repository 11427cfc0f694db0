"""A worker over several queues: one shared concurrency, strict order or weights."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from redisjobs import App, Client, ExecContext, Worker
from redisjobs.arbiter import Arbiter, queue_order
from redisjobs.testing import unique_queue


class Ledger:
    """What ran: (queue, start, end) per run, on this process's monotonic clock."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, float, float]] = []
        self.starts: list[str] = []

    async def run(self, ctx: ExecContext, seconds: float = 0.0) -> None:
        self.starts.append(ctx.queue)
        start = time.monotonic()
        await asyncio.sleep(seconds)
        self.runs.append((ctx.queue, start, time.monotonic()))


async def _drained(client: Client, jobs: list[Any]) -> None:
    for job in jobs:
        await client.wait(job.id, timeout=30, queue=job.queue)


def _worker(url: str, ledger: Ledger, **kwargs: Any) -> Worker:
    kwargs.setdefault("handle_signals", False)
    kwargs.setdefault("poll_interval", 0.05)
    return Worker(url, functions={"run": ledger.run}, **kwargs)


@pytest.mark.parametrize("weighted", [False, True])
async def test_concurrency_one_over_two_queues_runs_one_job_at_a_time(
    url: str, weighted: bool
) -> None:
    first, second = unique_queue(), unique_queue()
    ledger = Ledger()
    queues: Any = {first: 2, second: 1} if weighted else [first, second]
    async with Client(url) as client, _worker(url, ledger, queues=queues, concurrency=1):
        jobs = []
        for _ in range(8):  # both queues keep getting work while the worker runs
            for q in (first, second):
                jobs.append(await client.enqueue("call", {"fn": "run", "args": [0.01]}, queue=q))
        await _drained(client, jobs)
    runs = sorted(ledger.runs, key=lambda r: r[1])
    assert len(runs) == 16 and {q for q, _, _ in runs} == {first, second}
    for (_, _, end), (_, start, _) in itertools.pairwise(runs):
        assert end <= start  # never two at once


async def test_strict_order_drains_the_first_queue_before_the_second(url: str) -> None:
    first, second = unique_queue(), unique_queue()
    ledger = Ledger()
    async with Client(url) as client:
        later = await client.enqueue_many([("call", {"fn": "run"})] * 20, queue=second)
        earlier = await client.enqueue_many([("call", {"fn": "run"})] * 20, queue=first)
        async with _worker(url, ledger, queues=[first, second], concurrency=3):
            await _drained(client, earlier + later)
    assert ledger.starts == [first] * 20 + [second] * 20


async def test_strict_order_serves_a_later_queue_only_while_the_first_is_empty(url: str) -> None:
    first, second = unique_queue(), unique_queue()
    ledger = Ledger()
    async with Client(url) as client, _worker(url, ledger, queues=[first, second], concurrency=2):
        slow = await client.enqueue_many([("call", {"fn": "run", "args": [0.2]})] * 4, queue=second)
        await asyncio.sleep(0.1)  # two of them run, two wait for a slot
        urgent = await client.enqueue_many([("call", {"fn": "run"})] * 3, queue=first)
        await _drained(client, slow + urgent)
    # The slots the first two of `second` free go to `first` while it has jobs ready.
    assert ledger.starts == [second, second, first, first, first, second, second]


async def test_weights_share_the_slots_in_their_ratio_over_saturated_queues(url: str) -> None:
    heavy, light = unique_queue(), unique_queue()
    ledger = Ledger()
    # The embedded backend runs each script about ten times slower than a redis-server: 10,000
    # leases took 60 s there on a slow machine. The ratio shows as well in 2,000.
    counted = 2_000 if url.startswith("memory://") else 10_000
    async with Client(url) as client:
        for q in (heavy, light):  # a backlog on each that outlasts the leases counted
            for _ in range(counted // 1000):
                await client.enqueue_many([("call", {"fn": "run"})] * 1000, queue=q)
        worker = _worker(url, ledger, queues={heavy: 5, light: 1}, concurrency=4)
        async with worker:
            async with asyncio.timeout(240):
                while len(ledger.starts) < counted:
                    await asyncio.sleep(0.05)
            worker.stop(now=True)
    share = ledger.starts[:counted].count(heavy) / counted
    assert abs(share - 5 / 6) <= 0.1 * 5 / 6


async def test_an_app_serves_its_queues_with_equal_weights_in_one_concurrency(url: str) -> None:
    first, second = unique_queue(), unique_queue()
    app = App(url, queue=first)
    app.task(name="a")(asyncio.sleep)
    app.task(name="b", queue=second)(asyncio.sleep)
    async with Worker(url, app=app, concurrency=3, handle_signals=False) as worker:
        assert worker.queues == [first, second]
        assert {lane.queue: lane.weight for lane in worker.slots._arbiter.lanes} == {  # type: ignore[attr-defined]
            first: 1,
            second: 1,
        }
    await app.aclose()


def test_queue_order_takes_names_weights_or_the_app_s_queues() -> None:
    assert queue_order("q", None, None) == ["q"]
    assert queue_order(None, ("a", "b"), None) == ["a", "b"]
    assert queue_order(None, {"a": 5, "b": 1}, None) == {"a": 5, "b": 1}
    assert queue_order(None, None, None) == ["default"]
    cases: list[tuple[Any, str]] = [
        ({"a": 0}, "weight must be an integer >= 1, not 0"),
        ({"a": 1.5}, "weight must be an integer >= 1"),
        ({"a": True}, "weight must be an integer >= 1"),
        (["a", "a"], "a queue named twice"),
        ([], "names no queue"),
        ("ab", "not a str"),
    ]
    for bad, why in cases:
        with pytest.raises(ValueError, match=why):
            queue_order(None, bad, None)
    with pytest.raises(ValueError, match="not both"):
        queue_order("a", ["b"], None)


def test_smooth_weighted_round_robin_interleaves_by_weight() -> None:
    arbiter = Arbiter(6, 1, {"heavy": 5, "light": 1})
    heavy, light = arbiter.lanes
    heavy.wanting = light.wanting = True
    picks = ""
    for _ in range(12):  # one slot at a time, as jobs end one by one
        arbiter.running = arbiter.concurrency - 1
        heavy.granted = light.granted = 0
        arbiter.allocate()
        picks += "h" if heavy.granted else "l"
    assert picks == "hhhlhh" * 2  # deterministic: 5 of every 6, the light one not starved
