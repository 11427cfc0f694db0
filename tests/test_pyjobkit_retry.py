"""The Pyjobkit face's retry policies, payload markers, router and worker settings."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import pytest

from redisjobs.pyjobkit import (
    Engine,
    ExponentialBackoff,
    FixedDelay,
    JitteredExponentialBackoff,
    RetryPolicy,
    Worker,
    parse_policy,
)
from redisjobs.pyjobkit.backends.memory import MemoryBackend
from redisjobs.pyjobkit.backends.redis import RedisBackend
from redisjobs.pyjobkit.contracts import ExecContext, Executor, WorkerContext
from redisjobs.pyjobkit.engine import SHADOW_PAYLOAD_KEY, TAGS_PAYLOAD_KEY
from redisjobs.pyjobkit.retry import DEFAULT_RETRY_POLICY, RETRY_POLICY_PAYLOAD_KEY


class Boom(Executor):
    """Fails every run, recording the payloads and attempts it saw."""

    kind = "boom"

    def __init__(self) -> None:
        self.seen: list[tuple[Any, int]] = []

    async def run(self, *, job_id: uuid.UUID, payload: Any, ctx: WorkerContext) -> Any:
        self.seen.append((payload, ctx.attempt))
        raise RuntimeError(f"boom {len(self.seen)}")


class Echo(Executor):
    """Returns what it saw: its payload and whether the run was a shadow one."""

    kind = "echo"

    def __init__(self) -> None:
        self.seen: list[tuple[Any, bool]] = []

    async def run(self, *, job_id: uuid.UUID, payload: Any, ctx: ExecContext) -> Any:
        self.seen.append((payload, ctx.is_shadow))
        return {"payload": payload}


# -- the policies ---------------------------------------------------------------------------------


def test_policies_compute_their_delays() -> None:
    assert [FixedDelay(2.5).delay(n) for n in (1, 7)] == [2.5, 2.5]
    assert [ExponentialBackoff(1, 2).delay(n) for n in (1, 2, 3, 5)] == [1, 2, 4, 16]
    assert ExponentialBackoff(1, 2, max_delay_s=10).delay(10) == 10
    assert ExponentialBackoff(1, 2).delay(100_000) == float("inf")  # capped by the worker
    seeded = [JitteredExponentialBackoff(rng=random.Random(7)).delay(3) for _ in range(2)]
    assert seeded[0] == seeded[1]  # a seeded source gives the same spread
    for attempt in range(1, 6):
        assert DEFAULT_RETRY_POLICY.delay(attempt) == 2 ** (attempt - 1)
        wait = JitteredExponentialBackoff(1, 2, None, 0.2).delay(attempt)
        assert 0.8 * 2 ** (attempt - 1) <= wait <= 1.2 * 2 ** (attempt - 1)


@pytest.mark.parametrize(
    "build",
    [
        lambda: FixedDelay(-1),
        lambda: ExponentialBackoff(1, 0.5),
        lambda: ExponentialBackoff(-1, 2),
        lambda: JitteredExponentialBackoff(1, 2, None, 1.5),
        lambda: FixedDelay(float("nan")),
    ],
)
def test_bad_policies_are_refused(build: Any) -> None:
    with pytest.raises(ValueError):
        build()


def test_specs_parse_to_policies() -> None:
    assert isinstance(parse_policy("fixed"), FixedDelay)
    assert parse_policy("fixed:0.5").delay(3) == 0.5
    assert parse_policy("exponential:1:3").delay(2) == 3
    jittered = parse_policy("exponential_jitter:1:2:10:0.1")
    assert isinstance(jittered, JitteredExponentialBackoff) and jittered.max_delay_s == 10
    capped = parse_policy("exponential:1:2:30:give_up_after_age_s=3600")
    assert isinstance(capped, ExponentialBackoff) and capped.max_delay_s == 30
    assert capped.should_give_up(3599) is False and capped.should_give_up(3600) is True
    policy = FixedDelay(1)
    assert parse_policy(policy) is policy


@pytest.mark.parametrize("spec", ["", "  ", "bogus:1", "fixed:x", "fixed:1:2:3", "fixed:a=1"])
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_policy(spec)


def test_a_custom_policy_gives_up_by_age() -> None:
    class Capped(RetryPolicy):
        give_up_after_age_s = 60

        def delay(self, attempt: int) -> float:
            return attempt

    assert Capped().should_give_up(59) is False and Capped().should_give_up(60) is True
    assert FixedDelay(1).should_give_up(10**9) is False


# -- the engine's markers -------------------------------------------------------------------------


async def test_enqueue_marks_the_payload_and_refuses_bad_markers(backend: Any) -> None:
    async with Engine(backend=backend, executors=[Echo()]) as engine:
        job_id = await engine.enqueue(
            kind="echo", payload={"x": 1}, retry_policy="fixed:0.25", tags=["b", " a ", "a", ""]
        )
        payload = (await backend.get(job_id))["payload"]
        assert payload == {
            "x": 1,
            RETRY_POLICY_PAYLOAD_KEY: "fixed:0.25",
            TAGS_PAYLOAD_KEY: ["a", "b"],
        }
        plain = await engine.enqueue(kind="echo", payload={"x": 2}, tags=[])
        assert (await backend.get(plain))["payload"] == {"x": 2}
        with pytest.raises(ValueError):
            await engine.enqueue(kind="echo", payload={}, retry_policy="bogus:1")
        with pytest.raises(TypeError):
            await engine.enqueue(kind="echo", payload={}, retry_policy=FixedDelay(1))
        with pytest.raises(TypeError):
            await engine.enqueue(kind="echo", payload=[1], shadow=True)
        assert await backend.queue_depth() == 2  # nothing written by the refused ones


async def test_a_shadow_job_runs_with_the_flag_and_its_result_is_discarded(backend: Any) -> None:
    echo = Echo()
    async with Engine(backend=backend, executors=[echo]) as engine:
        shadow = await engine.enqueue(kind="echo", payload={"x": 1}, shadow=True, tags=["t"])
        real = await engine.enqueue(kind="echo", payload={"x": 2})
        await Worker(engine, poll_interval=0.05, handle_signals=False).run(once=True)
        assert (await engine.get(shadow))["result"] == {"shadow": True, "result_discarded": True}
        assert (await engine.get(real))["result"] == {"payload": {"x": 2}}
    # the markers never reach the executor
    assert sorted(echo.seen, key=lambda s: s[0]["x"]) == [({"x": 1}, True), ({"x": 2}, False)]
    assert SHADOW_PAYLOAD_KEY not in echo.seen[0][0]


async def test_a_router_rewrites_kinds(backend: Any) -> None:
    async def by_size(kind: str, payload: Any) -> str | None:
        return "echo" if payload.get("big") else None

    async with Engine(backend=backend, executors=[Echo()]) as engine:
        engine.set_router(by_size)
        routed = await engine.enqueue(kind="small", payload={"big": True})
        kept = await engine.enqueue(kind="small", payload={"big": False})
        assert (await engine.get(routed))["kind"] == "echo"
        assert (await engine.get(kept))["kind"] == "small"
        engine.set_router(lambda kind, payload: "other")
        assert (await engine.get(await engine.enqueue(kind="x", payload={})))["kind"] == "other"
        with pytest.raises(TypeError):
            engine.set_router("not callable")  # type: ignore[arg-type]


async def test_default_max_attempts_applies_to_jobs_without_their_own(backend: Any) -> None:
    async with Engine(backend=backend, executors=[], default_max_attempts=7) as engine:
        default = await engine.enqueue(kind="x", payload={})
        own = await engine.enqueue(kind="x", payload={}, max_attempts=2)
        assert (await engine.get(default))["max_attempts"] == 7
        assert (await engine.get(own))["max_attempts"] == 2
    with pytest.raises(ValueError):
        Engine(backend=backend, default_max_attempts=0)


# -- the worker -----------------------------------------------------------------------------------


async def test_a_jobs_own_policy_sets_its_retry_delay(backend: Any) -> None:
    boom = Boom()
    async with Engine(backend=backend, executors=[boom]) as engine:
        job_id = await engine.enqueue(
            kind="boom", payload={"n": 1}, max_attempts=3, retry_policy="fixed:30"
        )
        worker = Worker(engine, retry_policy=FixedDelay(0), poll_interval=0.05)
        worker.handle_signals = False
        await worker.run(once=True)
        record = await engine.get(job_id)
        # failed once, back in the queue for 30 s (the worker's own policy would say 0)
        assert record["status"] == "queued" and record["attempts"] == 1
        assert record["error"] == "RuntimeError: boom 1"
        client = await engine.client()
        due = record["scheduled_for"]
        assert due is not None
        wait = due.timestamp() - await client.server_time()
        assert 28 < wait <= 30
    assert boom.seen == [({"n": 1}, 1)]


async def test_the_workers_policy_retries_until_attempts_run_out(backend: Any) -> None:
    boom = Boom()
    async with Engine(backend=backend, executors=[boom]) as engine:
        job_id = await engine.enqueue(kind="boom", payload={}, max_attempts=3)
        worker = Worker(engine, retry_policy="fixed:0", poll_interval=0.05, handle_signals=False)
        async with asyncio.timeout(10):
            async with worker:
                while (await engine.get(job_id))["status"] != "failed":
                    await asyncio.sleep(0.02)
        record = await engine.get(job_id)
        assert record["attempts"] == 3 and record["error"] == "RuntimeError: boom 3"
    assert [attempt for _, attempt in boom.seen] == [1, 2, 3]


@pytest.mark.parametrize(
    "settings",
    [
        {"max_concurrency": 0},
        {"batch": 0},
        {"poll_interval": 0},
        {"lease_ttl": 0},
        {"queue_capacity": 0},
        {"stop_timeout": 0},
        {"watchdog_interval_s": 0},
        {"heartbeat_interval_s": -1},
        {"retry_policy": "bogus"},
    ],
)
def test_bad_worker_settings_are_refused(settings: dict[str, Any]) -> None:
    engine = Engine(backend=MemoryBackend())
    with pytest.raises(ValueError):
        Worker(engine, **settings)


def test_worker_settings_take_pyjobkits_defaults() -> None:
    engine = Engine(backend=MemoryBackend())
    worker = Worker(engine, lease_ttl=12, retry_policy="fixed:0.5")
    assert isinstance(worker.retry_policy, FixedDelay) and worker.retry_policy.delay(1) == 0.5
    assert worker.watchdog_interval_s == 12
    assert Worker(engine, watchdog_interval_s=3).watchdog_interval_s == 3
    assert isinstance(worker.worker_id, uuid.UUID)


async def test_a_worker_runs_once_then_refuses_to_run_again(backend: Any) -> None:
    beats: list[uuid.UUID] = []

    async def on_heartbeat(worker_id: uuid.UUID) -> None:
        beats.append(worker_id)

    async with Engine(backend=backend, executors=[Echo()]) as engine:
        await engine.enqueue(kind="echo", payload={"x": 1})
        worker = Worker(
            engine,
            poll_interval=0.05,
            heartbeat_interval_s=0.05,
            on_heartbeat=on_heartbeat,
            handle_signals=False,
        )
        async with worker:
            async with asyncio.timeout(5):
                while not beats:
                    await asyncio.sleep(0.02)
        assert beats[0] == worker.worker_id
        with pytest.raises(RuntimeError):
            await worker.run(once=True)


async def test_health_reports_overflow_and_an_unreachable_backend(backend: Any) -> None:
    async with Engine(backend=backend, executors=[]) as engine:
        worker = Worker(engine, queue_capacity=2)
        assert (await worker.check_health())["status"] == "healthy"
        await engine.enqueue_many([{"kind": "x", "payload": {}}] * 2)
        health = await worker.check_health()
        assert health == {"status": "unhealthy", "queue_depth": 2, "queue_overflow": True}
    down = Engine(backend=RedisBackend("redis://127.0.0.1:1/0"))
    health = await Worker(down).check_health()
    assert health["status"] == "unhealthy" and "reason" in health
    await down.close()


class Add(Executor):
    """Adds its payload's ``n`` to the total the step before returned."""

    kind = "add"

    async def run(self, *, job_id: uuid.UUID, payload: Any, ctx: ExecContext) -> Any:
        if payload.get("n") is None:
            raise RuntimeError("no n")
        before = (payload.get("previous_result") or {}).get("total", 0)
        return {"total": before + payload["n"]}


async def test_a_chain_threads_each_result_into_the_next_step(backend: Any) -> None:
    async with Engine(backend=backend, executors=[Add()]) as engine:
        with pytest.raises(ValueError):
            await engine.chain()
        with pytest.raises(ValueError):
            await engine.chain({"payload": {}})
        head = await engine.chain(*({"kind": "add", "payload": {"n": n}} for n in (1, 10, 100)))
        broken = await engine.chain(
            {"kind": "add", "payload": {}, "max_attempts": 1}, {"kind": "add", "payload": {"n": 5}}
        )
        await Worker(engine, poll_interval=0.05, handle_signals=False).run(once=True)
        assert (await engine.get(head))["result"] == {"total": 1}
        records = await backend.all_jobs()
        totals = sorted(r["result"]["total"] for r in records if r["status"] == "success")
        assert totals == [1, 11, 111]
        assert (await engine.get(broken))["status"] == "failed"
        # the step after the failed one never ran: it ended failed, for its dependency
        [after] = [r for r in records if r["status"] == "failed" and r["id"] != broken]
        assert after["attempts"] == 0 and (after["error"] or "").startswith("dependency ")
