"""The outcome writer (redisjobs/outcomes.py): results go in batches, and outcomes and log
lines that Redis refuses for good hold up no other job.

The refusal tests plant, with plain Redis commands, a key of the wrong type or a field no script
can use (nothing in the API can create them any more), then check that the jobs it does not
concern are recorded within a bound, that the job it concerns is failed or let go, and that the
worker goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from redisjobs import Client, ExecContext, JobStatus
from tests.conftest import WorkerFactory, log_events

pytestmark = pytest.mark.redis_only

BOUND = 15.0
"""Seconds within which an outcome is recorded: wide, for a loaded machine."""


class Gate:
    """Jobs that wait until the test opens the gate: they finish (or raise) together."""

    def __init__(self) -> None:
        self.open = asyncio.Event()

    async def hold(self, ctx: ExecContext, n: int = 0) -> int:
        await ctx.log(f"line of job {n}")
        await self.open.wait()
        return n

    async def hold_then_fail(self, ctx: ExecContext) -> None:
        await self.open.wait()
        raise RuntimeError("boom")


async def until(predicate: Callable[[], Awaitable[bool]], what: str, bound: float = BOUND) -> None:
    try:
        async with asyncio.timeout(bound):
            while not await predicate():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {bound} s: {what}") from None


async def all_running(client: Client, ids: list[str]) -> None:
    async def running() -> bool:
        jobs = [await client.get(i) for i in ids]
        return all(j is not None and j.status is JobStatus.RUNNING for j in jobs)

    await until(running, "every job started")


async def results(client: Client, ids: list[str]) -> list[Any]:
    return [await client.wait(i, timeout=BOUND) for i in ids]


async def test_a_log_key_of_another_type_drops_its_lines_not_any_outcome(
    client: Client, worker: WorkerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    gate = Gate()
    keys = client.keys()
    # What an id like "victim:log" used to write: a hash where job "victim" keeps its log list.
    await client.redis.hset(keys.job_log("victim"), "planted", "by a colliding id")
    await worker(functions={"hold": gate.hold}, concurrency=20)
    victim = await client.enqueue("call", {"fn": "hold", "args": {"n": 0}}, job_id="victim")
    others = await client.enqueue_many(
        [("call", {"fn": "hold", "args": {"n": n}}) for n in range(1, 6)]
    )
    ids = [victim.id, *(j.id for j in others)]
    with caplog.at_level(logging.WARNING, logger="redisjobs.worker"):
        await all_running(client, ids)
        gate.open.set()
        assert await results(client, ids) == list(range(6))
        later = await client.enqueue("call", {"fn": "hold", "args": {"n": 6}})
        assert await client.wait(later.id, timeout=BOUND) == 6
    assert await client.redis.hgetall(keys.job_log("victim")) == {b"planted": b"by a colliding id"}
    for n, job in enumerate(others, 1):
        assert await client.logs(job.id) == [f"line of job {n}"]
    dropped = [
        r.getMessage() for r in caplog.records if "log lines of job victim" in r.getMessage()
    ]
    assert len(dropped) == 1, dropped
    assert "WRONGTYPE" in dropped[0] and keys.job_log("victim") in dropped[0]


async def test_a_result_redis_refuses_for_one_job_is_let_go_and_the_others_are_recorded(
    client: Client, worker: WorkerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A field no script can use (a stream id that is not one) fails every write of one job:
    complete, then fail. The others of its batch are recorded; it is let go, and once the field
    is repaired, the lease mechanism gives it to a new run, whose result is recorded."""
    gate = Gate()
    keys = client.keys()
    w = await worker(functions={"hold": gate.hold}, concurrency=20, lease_ttl=3)
    jobs = await client.enqueue_many([("call", {"fn": "hold", "args": {"n": n}}) for n in range(8)])
    ids = [j.id for j in jobs]
    victim = ids[3]
    await all_running(client, ids)
    msg: Any = await client.redis.hget(keys.job(victim), "msg")
    with caplog.at_level(logging.INFO, logger="redisjobs.worker"):
        await client.redis.hset(keys.job(victim), "msg", "not-a-stream-id")
        gate.open.set()
        others = [i for i in ids if i != victim]
        assert await results(client, others) == [n for n in range(8) if n != 3]

        async def let_go() -> bool:
            return w._session is not None and victim not in w._session.runs.held

        await until(let_go, "the job whose outcome was refused is let go")
        later = await client.enqueue("call", {"fn": "hold", "args": {"n": 8}})
        assert await client.wait(later.id, timeout=BOUND) == 8
        await client.redis.hset(keys.job(victim), "msg", msg)  # repaired: it can run again
        assert await client.wait(victim, timeout=BOUND) == 3
    refused = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(
        victim in m and "could not record the result" in m and "let go" in m for m in refused
    ), refused
    assert "reclaimed" in [e.type for e in await log_events(client, victim)]


async def test_a_failure_redis_refuses_for_one_job_is_let_go(
    client: Client, worker: WorkerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    gate = Gate()
    keys = client.keys()
    w = await worker(functions={"hold_then_fail": gate.hold_then_fail}, lease_ttl=20)
    job = await client.enqueue("call", {"fn": "hold_then_fail"})
    await all_running(client, [job.id])
    with caplog.at_level(logging.INFO, logger="redisjobs.worker"):
        await client.redis.hset(keys.job(job.id), "msg", "not-a-stream-id")
        gate.open.set()

        async def let_go() -> bool:
            return w._session is not None and job.id not in w._session.runs.held

        # Well within lease_ttl: at once, not when it stops heartbeating and loses its lease.
        await until(let_go, "the job whose failure was refused is let go", bound=8)
    refused = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(
        job.id in m and "could not record the failure (RuntimeError: boom)" in m for m in refused
    ), refused


async def test_results_that_finish_together_are_written_in_few_calls(
    client: Client, worker: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of successes costs a few `complete` calls, not one each, and each job's log lines
    are written before its result."""
    gate = Gate()
    n = 40
    w = await worker(functions={"hold": gate.hold}, concurrency=n)
    assert w._session is not None
    scripts = w._session.scripts
    real = scripts.complete
    calls: list[int] = []

    async def complete(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)  # counted, then run for real
        return await real(*args, **kwargs)

    monkeypatch.setattr(scripts, "complete", complete)
    jobs = await client.enqueue_many([("call", {"fn": "hold", "args": {"n": k}}) for k in range(n)])
    ids = [j.id for j in jobs]
    await all_running(client, ids)
    gate.open.set()
    assert await results(client, ids) == list(range(n))
    assert 1 <= len(calls) <= n // 4, f"{len(calls)} complete calls for {n} results"
    assert [await client.logs(i) for i in ids] == [[f"line of job {k}"] for k in range(n)]
