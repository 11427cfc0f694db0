"""The Pyjobkit face's QueueBackend calls on redisjobs' lease transitions, the engine's
contexts, executor plugins, the periodic scheduler and leader election."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from redisjobs.pyjobkit import Engine, Worker
from redisjobs.pyjobkit.backends.memory import MemoryBackend
from redisjobs.pyjobkit.backends.redis import RedisBackend
from redisjobs.pyjobkit.batch import BatchExecutor, BatchJob, dispatch_batch
from redisjobs.pyjobkit.contracts import ExecContext, Executor, OptimisticLockError, QueueBackend
from redisjobs.pyjobkit.engine import DefaultExecContext
from redisjobs.pyjobkit.events import LocalEventBus
from redisjobs.pyjobkit.executors.plugins import EXECUTOR_ENTRY_POINT_GROUP, discover_executors
from redisjobs.pyjobkit.leader import MemoryLeaderLock, leader_loop
from redisjobs.pyjobkit.logging import MemoryLogSink
from redisjobs.pyjobkit.scheduler import Scheduler, parse_interval


class Noop(Executor):
    kind = "noop"

    async def run(self, *, job_id: uuid.UUID, payload: Any, ctx: ExecContext) -> Any:
        return {"ok": True}


def make_plugin() -> Executor:
    """An executor factory, as a plugin package declares one."""
    return Noop()


def not_an_executor() -> object:
    return "nope"


async def test_claims_and_outcomes_are_fenced_by_the_version(backend: Any) -> None:
    assert issubclass(type(backend), QueueBackend)
    async with Engine(backend=backend) as engine:
        first = await engine.enqueue(kind="noop", payload={"n": 1}, priority=2)
        second = await engine.enqueue(kind="noop", payload={"n": 2}, priority=1)
        worker = uuid.uuid4()
        [row] = await backend.claim_batch(worker, limit=1)
        assert row["id"] == second and row["payload"] == {"n": 2} and row["version"] == 1
        assert row["lease_until"] is not None
        await backend.mark_running(row["id"], worker)
        await backend.extend_lease(row["id"], worker, 10, expected_version=1)
        now = await (await backend.client()).server_time()
        running = await backend.get(second)
        assert running["leased_by"] == str(worker) and running["lease_until"] is not None
        assert now + 8 < running["lease_until"].timestamp() <= now + 10.01  # the extension's TTL
        assert (await backend.get(first))["lease_until"] is None  # queued: no lease
        await backend.extend_lease(row["id"], uuid.uuid4(), 1)  # not its lease: left alone
        kept = (await backend.get(second))["lease_until"] - running["lease_until"]
        assert abs(kept.total_seconds()) < 0.5  # still the 10 s extension's deadline
        with pytest.raises(OptimisticLockError):
            await backend.extend_lease(row["id"], worker, 10, expected_version=2)  # stale
        with pytest.raises(OptimisticLockError):
            await backend.succeed(row["id"], {"r": 1}, expected_version=7)
        await backend.succeed(row["id"], {"r": 1}, expected_version=1)
        with pytest.raises(OptimisticLockError):
            await backend.succeed(row["id"], {"r": 2})  # it ended: nothing changes
        ended = await backend.get(second)
        assert ended["result"] == {"r": 1} and ended["lease_until"] is None
        [other] = await engine.claim_batch(worker, limit=5)
        await engine.fail(other["id"], {"error": "broken"})
        failed = await backend.get(first)
        assert failed["status"] == "failed" and failed["error"] == "broken"
        assert await backend.claim_batch(worker) == []


async def test_retry_timeout_and_reaping(backend: Any) -> None:
    async with Engine(backend=backend) as engine:
        job = await engine.enqueue(kind="noop", payload={}, max_attempts=3)
        worker = uuid.uuid4()
        await backend.claim_batch(worker)
        await backend.retry(job, delay=30)
        record = await backend.get(job)
        assert record["status"] == "queued" and record["attempts"] == 1
        assert await backend.claim_batch(worker) == []  # not due for 30 s
        timed = await engine.enqueue(kind="noop", payload={}, max_attempts=1)
        await backend.claim_batch(worker)
        await backend.timeout(timed)
        assert (await backend.get(timed))["status"] == "timeout"
        assert await backend.reap_expired() == 0


async def test_a_lease_that_ran_out_is_reaped(url: str, queue: str) -> None:
    backend = (
        MemoryBackend(url.removeprefix("memory://"), queue=queue, lease_ttl_s=0.2)
        if url.startswith("memory://")
        else RedisBackend(url, queue=queue, lease_ttl_s=0.2)
    )
    async with Engine(backend=backend) as engine:
        job = await engine.enqueue(kind="noop", payload={})
        [row] = await backend.claim_batch(uuid.uuid4())
        await asyncio.sleep(0.5)  # the claimer never beat: its lease ran out
        async with asyncio.timeout(10):
            while not await backend.reap_expired():
                await asyncio.sleep(0.1)
        record = await backend.get(job)
        assert record["status"] == "queued" and record["version"] > row["version"]
        [again] = await backend.claim_batch(uuid.uuid4())
        assert again["id"] == job and again["version"] > record["version"]
        with pytest.raises(OptimisticLockError):  # the first claimer's version is gone
            await backend.succeed(job, {}, expected_version=row["version"])


async def test_listing_counting_purging_and_clearing(backend: Any) -> None:
    async with Engine(backend=backend, executors=[Noop()]) as engine:
        done = await engine.enqueue(kind="noop", payload={})
        await Worker(engine, poll_interval=0.05, handle_signals=False).run(once=True)
        waiting = await engine.enqueue_many(
            [{"kind": "noop", "payload": {"n": n}} for n in range(3)]
        )
        assert await backend.count() == 4 and await backend.count("queued") == 3
        listed = await backend.all_jobs("queued", limit=2)
        assert len(listed) == 2 and {r["id"] for r in listed} <= set(waiting)
        assert [r["id"] for r in await backend.all_jobs("success")] == [done]
        assert await engine.purge_finished(older_than=timedelta(hours=1)) == 0
        assert await engine.purge_finished() == 1
        with pytest.raises(KeyError):
            await backend.get(done)
        await backend.clear()
        assert await backend.count() == 0


async def test_enqueue_many_refuses_before_writing_anything(backend: Any) -> None:
    async with Engine(backend=backend) as engine:
        with pytest.raises(ValueError, match="'kind' is required"):
            await engine.enqueue_many([{"kind": "noop", "payload": {}}, {"payload": {}}])
        twice = [{"kind": "noop", "payload": {}, "idempotency_key": "k"}] * 2
        with pytest.raises(ValueError, match="idempotency_key"):
            await engine.enqueue_many(twice)
        with pytest.raises(ValueError, match="duplicate idempotency_key"):
            await backend.enqueue_many(twice)  # the backend's own bulk call checks the same
        with pytest.raises(ValueError, match="'kind' is required"):
            await backend.enqueue_many([{"payload": {}}])
        assert await backend.count() == 0
        [first] = await engine.enqueue_many(twice[:1])
        assert await engine.enqueue(kind="noop", payload={}, idempotency_key="k") == first
        # a row without a payload has an empty one; the existing key's job comes back as it is
        again, fresh = await backend.enqueue_many(
            [{"kind": "noop", "idempotency_key": "k"}, {"kind": "noop"}]
        )
        assert again == first and (await backend.get(fresh))["payload"] == {}


async def test_a_full_queue_makes_enqueue_wait(backend: Any) -> None:
    engine = Engine(
        backend=backend, max_queue_size=2, enqueue_timeout_s=0.3, enqueue_check_interval_s=0.05
    )
    async with engine:
        await engine.enqueue_many([{"kind": "noop", "payload": {}}] * 2)
        with pytest.raises(TimeoutError, match="max_queue_size=2"):
            await engine.enqueue(kind="noop", payload={})
        assert await backend.count() == 2
        waiting = asyncio.create_task(engine.enqueue(kind="noop", payload={}))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await backend.claim_batch(uuid.uuid4())  # room for one
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(ValueError):
        Engine(backend=backend, max_queue_size=0)
    async with Engine(backend=backend, max_queue_size=1) as eager:  # no timeout: no wait
        with pytest.raises(TimeoutError, match="enqueue_timeout_s is not set"):
            await eager.enqueue(kind="noop", payload={})  # the queue still holds 2


async def test_contexts_made_by_the_engine(caplog: pytest.LogCaptureFixture) -> None:
    sink, bus, seen = MemoryLogSink(), LocalEventBus(), []

    async def on_progress(payload: dict[str, Any]) -> None:
        seen.append(payload)

    backend = MemoryBackend()
    async with Engine(backend=backend, log_sink=sink, event_bus=bus) as engine:
        job = await engine.enqueue(kind="noop", payload={})
        bus.subscribe(f"job.{job}.progress", on_progress)
        ctx = engine.make_ctx(job, is_shadow=True)
        assert isinstance(ctx, DefaultExecContext) and ctx.is_shadow
        await ctx.set_progress(50, step="half")
        assert seen == [{"value": 50, "step": "half"}]
        assert await ctx.is_cancelled() is False
        await engine.cancel(job)
        assert await ctx.is_cancelled() is True
        with caplog.at_level(logging.INFO, "pyjobkit.contracts"), pytest.raises(RuntimeError):
            async with ctx.profile_phase("load", rows=3):
                raise RuntimeError("bad input")
        [ended] = [r for r in caplog.records if getattr(r, "event", "") == "phase.ended"]
        assert ended.__dict__["error"] == "RuntimeError" and ended.__dict__["rows"] == 3
        assert "phase load took" in (await sink.get(job))[-1].message

        class Mine(DefaultExecContext):
            pass

        def factory(job_id: uuid.UUID, /, **parts: Any) -> ExecContext:
            return Mine(job_id, **parts)

        custom = Engine(backend=backend, exec_context_factory=factory)
        assert isinstance(custom.make_ctx(job), Mine)


def _entry_points(monkeypatch: pytest.MonkeyPatch, targets: dict[str, str]) -> None:
    entries = [
        importlib.metadata.EntryPoint(name, target, EXECUTOR_ENTRY_POINT_GROUP)
        for name, target in targets.items()
    ]

    def listed(*, group: str) -> list[importlib.metadata.EntryPoint]:
        return [e for e in entries if e.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", listed)


def test_plugins_load_by_entry_point_and_skip_the_broken(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    here = __name__
    _entry_points(
        monkeypatch,
        {
            "good": f"{here}:make_plugin",
            "odd": f"{here}:not_an_executor",
            "gone": "no_such_module_anywhere:factory",
        },
    )
    assert [e.kind for e in discover_executors()] == ["noop"]
    assert "did not return an Executor" in caplog.text and "failed to load" in caplog.text
    assert discover_executors(only=["odd"]) == []
    engine = Engine(backend=MemoryBackend())
    assert [e.kind for e in engine.register_plugins()] == ["noop"]
    assert engine.register_plugins() == []  # the kind is taken now: skipped
    with pytest.raises(ValueError):
        engine.register_executor(type("Bad", (Noop,), {"kind": "no spaces allowed"})())


async def test_the_scheduler_enqueues_each_slot_once(backend: Any) -> None:
    assert parse_interval("5m") == timedelta(minutes=5) and parse_interval(90).seconds == 90
    with pytest.raises(ValueError):
        parse_interval("soon")
    now = {"t": 1000.0}
    async with Engine(backend=backend) as engine:
        first, rival = (Scheduler(engine, clock=lambda: now["t"]) for _ in range(2))
        for scheduler in (first, rival):
            scheduler.every("5s", name="probe", kind="noop", payload={"p": 1})
        assert first.entries() == ["probe"]
        now["t"] = 1003.0
        assert await first.tick() == 0
        now["t"] = 1006.0
        assert await first.tick() == 1 and await rival.tick() == 1  # the same slot
        assert await backend.count("queued") == 1  # written once
        first.remove("probe")
        assert first.entries() == []


async def test_the_scheduler_runs_on_redis_clock_under_a_leader(backend: Any) -> None:
    MemoryLeaderLock.reset_state()
    async with Engine(backend=backend) as engine:
        leader, follower = Scheduler(engine), Scheduler(engine)
        for scheduler in (leader, follower):
            scheduler.every(0.2, name="beat", kind="noop", run_immediately=True)
        stop = asyncio.Event()
        lock_a, lock_b = MemoryLeaderLock("beat"), MemoryLeaderLock("beat")
        runs = [
            asyncio.create_task(s.run(stop_event=stop, leader_lock=lk, sleep_resolution_s=0.05))
            for s, lk in ((leader, lock_a), (follower, lock_b))
        ]
        await asyncio.sleep(0.7)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*runs), 5)
        assert 2 <= await backend.count() <= 5  # one scheduler's slots, not two
        assert await lock_a.try_acquire(ttl_s=1) and await lock_b.try_acquire(ttl_s=1) is False


async def test_leader_loop_runs_while_leading_and_hands_over() -> None:
    MemoryLeaderLock.reset_state()
    stop, led = asyncio.Event(), []

    async def lead() -> None:
        led.append(1)
        await asyncio.sleep(3600)

    holder = MemoryLeaderLock("job")
    loop = asyncio.create_task(
        leader_loop(holder, ttl_s=0.3, renew_every_s=0.05, on_leader=lead, stop_event=stop)
    )
    await asyncio.sleep(0.2)
    assert led == [1] and await MemoryLeaderLock("job").try_acquire(ttl_s=1) is False
    stop.set()
    await asyncio.wait_for(loop, 5)
    assert await MemoryLeaderLock("job").try_acquire(ttl_s=1)  # released on the way out
    with pytest.raises(ValueError):
        await leader_loop(holder, ttl_s=0, on_leader=lead)


class Doubler(BatchExecutor):
    """Doubles each job's ``n`` in one call; fails the whole batch on a negative one."""

    kind, max_batch_size = "double", 3

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def run_batch(self, jobs: Sequence[BatchJob]) -> list[Any]:
        self.calls.append(len(jobs))
        if any(job.payload["n"] < 0 for job in jobs):
            raise ValueError("negative")
        return [{"n": job.payload["n"] * 2} for job in jobs]


async def test_a_batch_executor_finishes_each_job_of_its_batch(backend: Any) -> None:
    doubler, worker = Doubler(), uuid.uuid4()
    async with Engine(backend=backend) as engine:
        ids = await engine.enqueue_many([{"kind": "double", "payload": {"n": n}} for n in (1, 2)])
        await dispatch_batch(
            engine, doubler, await backend.claim_batch(worker, limit=3), worker_id=worker
        )
        assert [(await backend.get(i))["result"] for i in ids] == [{"n": 2}, {"n": 4}]
        bad = await engine.enqueue(kind="double", payload={"n": -1}, max_attempts=1)
        await dispatch_batch(engine, doubler, await backend.claim_batch(worker), worker_id=worker)
        assert (await backend.get(bad))["status"] == "failed" and doubler.calls == [2, 1]
        await dispatch_batch(engine, doubler, [], worker_id=worker)
        with pytest.raises(ValueError, match="max_batch_size"):
            await dispatch_batch(engine, doubler, [{"id": uuid.uuid4()}] * 4, worker_id=worker)


async def test_jobs_no_worker_claimed_are_finished_by_hand(backend: Any) -> None:
    async with Engine(backend=backend) as engine:
        done, failed, timed, kept = [
            await engine.enqueue(kind="noop", payload={"n": n}) for n in range(4)
        ]
        with pytest.raises(OptimisticLockError):  # a version names a run: there is none
            await backend.succeed(done, {"r": 1}, expected_version=1)
        await backend.succeed(done, {"r": 1})
        await engine.fail(failed, {"error": "refused"})
        await backend.timeout(timed)
        records = [await backend.get(j) for j in (done, failed, timed, kept)]
        assert [r["status"] for r in records] == ["success", "failed", "timeout", "queued"]
        assert records[0]["result"] == {"r": 1} and records[1]["error"] == "refused"
        assert records[1]["result"] == {"error": "refused"} and records[2]["result"] == {
            "error": "timeout"
        }
        assert all(r["attempts"] == 0 for r in records)  # none of them ran
        with pytest.raises(OptimisticLockError):
            await backend.succeed(done, {"r": 2})  # ended: nothing changes
        await backend.cancel(kept)
        await engine.retry(kept, delay=0)  # a cancelled job runs again
        assert (await backend.get(kept))["status"] == "queued"
        [row] = await backend.claim_batch(uuid.uuid4(), limit=5)  # the only one left to run
        assert row["id"] == kept
        assert await engine.purge_finished() == 3
