"""Network faults between workers and Redis, through a fault proxy per worker (scenarios 5, 6).

Every worker talks to the queue's Redis through a :class:`~tests.faults.proxy.FaultProxy` of its
own, so one worker can be cut off while the other is not; producers, the event tail, the checker
and the ledger talk to their Redis directly. Time is scaled down: lease_ttl 2 s.
"""

from __future__ import annotations

import asyncio
import collections
import math
import random
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from redisjobs import Client
from redisjobs.connection import Backend
from tests.faults.conftest import MakeProxy
from tests.faults.harness import (
    EventTail,
    FaultRedis,
    Ledger,
    Spawner,
    WorkerProcess,
    check,
    enqueue_ledger_jobs,
    statuses,
    until,
)
from tests.faults.proxy import FaultProxy

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

LEASE_TTL = 2.0
RECLAIM = 0.5


# -- reading worker logs ----------------------------------------------------------------------

_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) (\S+)\[(\d+)\]: (.*)$")


@dataclass(frozen=True, slots=True)
class LogLine:
    """One record of a worker's log: wall-clock time, level, logger, message."""

    at: float
    level: str
    name: str
    message: str


def log_lines(worker: WorkerProcess) -> list[LogLine]:
    """The records of a worker's log (continuation lines, e.g. tracebacks, are skipped)."""
    out = []
    for line in worker.log().splitlines():
        m = _LINE.match(line)
        if m:
            stamp = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            out.append(LogLine(stamp, m[2], m[3], m[5]))
    return out


def problems_in_log(worker: WorkerProcess) -> list[str]:
    """ERROR/CRITICAL records and tracebacks in a worker's log."""
    text = worker.log()
    bad = [repr(r) for r in log_lines(worker) if r.level in ("ERROR", "CRITICAL")]
    return bad + (["a traceback"] if "Traceback" in text else [])


def _pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def _serving(redis: Any, *procs: WorkerProcess) -> None:
    for w in procs:
        await w.wait_registered(redis, timeout=30)


async def _stop(*procs: WorkerProcess) -> None:
    for w in procs:
        w.terminate()
    for w in procs:
        assert await asyncio.to_thread(w.wait, 30) == 0, w.log()[-3000:]


# -- a reset between two commands ---------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_connection_reset_while_idle_is_retried(make_proxy: MakeProxy, loop: str) -> None:
    """The next command on a pooled connection that was reset while idle reconnects and works.

    uvloop answers a write to a reset transport with RuntimeError, not ConnectionResetError;
    redisjobs's connections report it as a ConnectionError, which redis-py retries.
    """
    proxy = make_proxy()

    async def scenario() -> None:
        redis = Backend(proxy.url).client()
        try:
            assert await redis.ping()
            for _ in range(3):
                assert proxy.reset_all() == 1
                await asyncio.sleep(0.1)  # let the loop see the RST before the next write
                assert await redis.set("k", "v")
        finally:
            await redis.aclose()

    if loop == "uvloop":
        pytest.importorskip("uvloop").run(scenario())
    else:
        asyncio.run(scenario())
    assert proxy.stats()["accepted"] == 4


# -- 5a: a half-open partition of one worker --------------------------------------------------


@pytest.mark.parametrize("heal", ["deliver", "reset"])
async def test_half_open_partition_of_one_worker(
    heal: str,
    redis_under_test: FaultRedis,
    make_proxy: MakeProxy,
    workers: Spawner,
    ledger: Ledger,
    make_client: Any,
    make_tail: Any,
    queue: str,
) -> None:
    """Worker A is blackholed for 3 x lease_ttl while it runs jobs, then the partition heals.

    A must treat its leases as lost within lease_ttl (and before B may take them), B re-runs
    them and serves the queue meanwhile, A's late outcomes are rejected after the heal
    (delivered late, or re-sent after the heal reset its connections), and A serves again.
    """
    url = redis_under_test.url
    client: Client = await make_client(url)
    tail: EventTail = await make_tail(url)
    pa, pb = make_proxy(seed=1), make_proxy(seed=2)
    options: dict[str, Any] = {"lease_ttl": LEASE_TTL, "reclaim_interval": RECLAIM}
    a = workers.spawn(pa.url, name="a", concurrency=6, **options)
    await _serving(client.redis, a)
    # A takes 3 short jobs and 3 long ones, which all wait at a gate opened with the cut: the
    # short ones then finish in the cut (their outcomes are late), the long ones are still
    # running when A must give them up.
    gate = f"gate:{queue}"

    async def gated(n: int, seconds: float) -> list[str]:
        spec = {"fn": "tests.jobs:ledger_gated", "args": {"gate": gate, "seconds": seconds}}
        return [j.id for j in await client.enqueue_many([("call", spec)] * n)]

    short, long = await gated(3, 0.5), await gated(3, 3.0)
    held = short + long

    async def a_started_all() -> bool:
        return {e.job_id for e in await ledger.entries() if e.pid == a.pid} >= set(held)

    await until(a_started_all, 30, "A to start its 6 jobs")
    b = workers.spawn(pb.url, name="b", concurrency=10, **options)
    await _serving(client.redis, b)

    cut_at, cut_wall = time.monotonic(), time.time()
    pa.blackhole()
    mark = len(await ledger.entries())  # ledger lines from here on were written in the cut
    await ledger.redis.set(gate, 1)
    during = await enqueue_ledger_jobs(client, 20, seconds=0.1)  # B serves these meanwhile

    def fence_line() -> LogLine | None:
        return next((r for r in log_lines(a) if "leases as lost" in r.message), None)

    await until(fence_line, 3 * LEASE_TTL, "A to treat its leases as lost")
    fence = fence_line()
    assert fence is not None
    fence_s = fence.at - cut_wall
    m = re.search(r"treating (\d+) leases", fence.message)
    assert m is not None and int(m[1]) == len(held), fence

    async def b_finished_a_jobs() -> bool:
        got = await statuses(client.redis, queue, held + during)
        return all(s == "completed" for s in got.values())

    await until(b_finished_a_jobs, 4 * LEASE_TTL + 10, "B to finish A's jobs")
    recovered_s = time.monotonic() - cut_at  # from the cut until every job A held is done
    took_over = [r for r in log_lines(b) if r.message.startswith("took over job")]
    assert {r.message.split()[3] for r in took_over} >= set(held)
    # self-fencing: A gave its jobs up before B could take the first one
    assert fence.at <= min(r.at for r in took_over), (fence, took_over[0])

    # the cut lasts 3 x lease_ttl in all
    await asyncio.sleep(max(0.0, cut_at + 3 * LEASE_TTL - time.monotonic()))
    pa.heal(reset=heal == "reset")
    cut_s = time.monotonic() - cut_at

    def rejected() -> set[str]:
        return {
            r.message.split()[3]
            for r in log_lines(a)
            if r.message.startswith(("result of job", "outcome of job")) and "rejected" in r.message
        }

    entries = await ledger.entries()
    cut_lines = entries[mark:]
    a_ended_in_cut = {e.job_id for e in cut_lines if e.pid == a.pid and e.what == "end"}
    assert set(short) <= a_ended_in_cut  # finished in the cut: their outcomes are late
    assert not a_ended_in_cut & set(long)  # stopped by the self-fence, never ended by A
    reject_s = await until(
        lambda: rejected() >= a_ended_in_cut, 20, "A's late outcomes to be rejected"
    )
    for job_id in held:
        job = await client.get(job_id)
        assert job is not None and job.result == b.pid, (job_id, job)
    starts_b = {e.job_id for e in entries if e.pid == b.pid and e.what == "start"}
    assert set(held) <= starts_b  # re-run by B

    # A serves again once healed: with B gone, A alone finishes new jobs
    await _stop(b)
    after = await enqueue_ledger_jobs(client, 5, seconds=0.05)
    for job_id in after:
        assert await client.wait(job_id, timeout=30) == a.pid
    ids = held + during + after
    figures = await check(
        f"5a half-open partition, heal={heal}",
        client.redis,
        queue,
        ids,
        tail=tail,
        ledger=ledger,
        recovery_s=recovered_s,
        # only A's jobs may run twice: it was cut off while running them
        max_duplicate_executions=len(held),
        extra={
            "lease_ttl": LEASE_TTL,
            "cut_s": round(cut_s, 3),
            "fence_after_cut_s": round(fence_s, 3),
            "held_by_cut_worker": len(held),
            "late_outcomes_rejected": len(rejected()),
            "rejected_after_heal_s": round(reject_s, 3),
            "heal": heal,
        },
    )
    assert figures.duplicate_executions <= len(held)
    assert fence_s <= LEASE_TTL, f"A fenced {fence_s:.3f} s after the cut"
    assert not problems_in_log(a) and not problems_in_log(b)
    await _stop(a)


# -- 5b: connection resets every 1-3 s for 20 s ------------------------------------------------


def _reconnects(proxy: FaultProxy) -> list[float]:
    """Per reset: seconds until a connection made after it got its first reply from Redis."""
    resets = proxy.reset_times()
    conns = proxy.connections()
    out = []
    for i, at in enumerate(resets):
        until_next = resets[i + 1] if i + 1 < len(resets) else math.inf
        firsts = [
            c.first_reply_at
            for c in conns
            if c.accepted_at >= at
            and c.first_reply_at is not None
            and c.first_reply_at < until_next
        ]
        out.append(min(firsts) - at if firsts else math.inf)
    return out


def _next_outcomes(
    tail: EventTail, procs: list[WorkerProcess], walls: list[list[float]]
) -> list[float]:
    """Per reset: seconds until that worker's next outcome was recorded in Redis (end to end;
    a ``tests.jobs:ledger`` job's result is the pid of the worker that ran it)."""
    out = []
    for proc, resets in zip(procs, walls, strict=True):
        done = [e.ts / 1000 for e in tail.of_type("completed") if e.data["result"] == proc.pid]
        out += [min((t for t in done if t > at), default=math.inf) - at for at in resets]
    return out


def _warnings_per_outage(proc: WorkerProcess, resets: list[float]) -> list[int]:
    """WARNING records of the worker from each reset (wall clock) to the next one."""
    counts = [0] * len(resets)
    for rec in log_lines(proc):
        if rec.level == "WARNING" and rec.at >= resets[0]:
            counts[max(i for i, at in enumerate(resets) if at <= rec.at)] += 1
    return counts


async def test_connection_resets_every_1_to_3_s(
    redis_under_test: FaultRedis,
    make_proxy: MakeProxy,
    workers: Spawner,
    ledger: Ledger,
    make_client: Any,
    make_tail: Any,
    queue: str,
) -> None:
    """Both workers' connections are reset at random (seeded) every 1-3 s for 20 s while jobs
    flow: nothing is lost, each worker is back within a second, and it warns at most once per
    outage."""
    window, seed = 20.0, 5
    url = redis_under_test.url
    client: Client = await make_client(url)
    tail: EventTail = await make_tail(url)
    proxies = [make_proxy(seed=1), make_proxy(seed=2)]
    procs = [
        workers.spawn(p.url, name=f"w{i}", lease_ttl=LEASE_TTL, reclaim_interval=RECLAIM)
        for i, p in enumerate(proxies)
    ]
    await _serving(client.redis, *procs)
    ids: list[str] = []
    stop_enqueue = asyncio.Event()

    async def produce() -> None:
        while not stop_enqueue.is_set():
            ids.extend(await enqueue_ledger_jobs(client, 10, seconds=0.05))
            await asyncio.sleep(0.2)

    async def reset_schedule(proxy: FaultProxy, rng: random.Random, walls: list[float]) -> None:
        end = time.monotonic() + window
        while (at := time.monotonic() + rng.uniform(1.0, 3.0)) < end:
            await asyncio.sleep(at - time.monotonic())
            walls.append(time.time())
            await asyncio.to_thread(proxy.reset_all)

    walls: list[list[float]] = [[], []]
    producer = asyncio.create_task(produce())
    await asyncio.gather(
        *(reset_schedule(p, random.Random(seed + i), walls[i]) for i, p in enumerate(proxies))
    )
    for proc in procs:
        assert proc.alive, proc.log()[-3000:]
    # jobs keep flowing until each worker is back from its last outage
    await until(
        lambda: (
            max(_reconnects(p)[-1] for p in proxies) < math.inf
            and max(_next_outcomes(tail, procs, walls)) < math.inf
        ),
        15,
        "the workers to serve again after their last reset",
    )
    stop_enqueue.set()
    await producer
    await tail.drain()
    reconnects = [r for p in proxies for r in _reconnects(p)]
    resumes = _next_outcomes(tail, procs, walls)
    warnings = {w.name: _warnings_per_outage(w, r) for w, r in zip(procs, walls, strict=True)}
    stats = [p.stats() for p in proxies]
    figures = await check(
        "5b connection resets every 1-3 s for 20 s",
        client.redis,
        queue,
        ids,
        tail=tail,
        ledger=ledger,
        budget=60,
        recovery_s=max(reconnects),
        extra={
            "resets": [len(w) for w in walls],
            "connections_reset": sum(s["resets"] for s in stats),
            "reconnect_p50_s": round(_pct(reconnects, 0.5), 3),
            "reconnect_p99_s": round(_pct(reconnects, 0.99), 3),
            "reconnect_max_s": round(max(reconnects), 3),
            "next_outcome_p50_s": round(_pct(resumes, 0.5), 3),
            "next_outcome_p99_s": round(_pct(resumes, 0.99), 3),
            "max_warnings_per_outage": max(max(v) for v in warnings.values()),
            "warnings": sum(sum(v) for v in warnings.values()),
            "reclaimed": len(tail.of_type("reclaimed")),
            "window_s": window,
        },
    )
    assert figures.lost == 0
    assert _pct(reconnects, 0.99) < 1.0, reconnects
    assert _pct(resumes, 0.99) < 1.0, str([round(r, 3) for r in resumes])
    for name, per_outage in warnings.items():
        assert max(per_outage) <= 1, (name, per_outage, [log_lines(p) for p in procs])
    for proc in procs:
        assert not problems_in_log(proc), proc.log()[-3000:]
    await _stop(*procs)


# -- 6: latency ---------------------------------------------------------------------------------


async def test_latency_50_to_200_ms_each_way(
    redis_under_test: FaultRedis,
    make_proxy: MakeProxy,
    workers: Spawner,
    ledger: Ledger,
    make_client: Any,
    make_tail: Any,
    queue: str,
) -> None:
    """1,000 jobs through 50-200 ms of latency each way: no error, nothing run or recorded twice."""
    n = 1000
    url = redis_under_test.url
    client: Client = await make_client(url)
    tail: EventTail = await make_tail(url)
    proxies = [make_proxy(seed=11), make_proxy(seed=12)]
    for p in proxies:
        p.set_latency(up=(0.05, 0.2), down=(0.05, 0.2))
    procs = [
        workers.spawn(p.url, name=f"w{i}", concurrency=20, lease_ttl=LEASE_TTL)
        for i, p in enumerate(proxies)
    ]
    await _serving(client.redis, *procs)
    ids = await enqueue_ledger_jobs(client, n, seconds=0.05)

    async def all_final() -> bool:
        got = await statuses(client.redis, queue, ids)
        return all(s in ("completed", "failed", "cancelled") for s in got.values())

    elapsed = await until(all_final, 100, "1,000 jobs to finish", interval=0.25)
    final = collections.Counter((await statuses(client.redis, queue, ids)).values())
    warnings = [r for p in procs for r in log_lines(p) if r.level == "WARNING"]
    outage = [r for r in warnings if "unavailable" in r.message or "lost" in r.message]
    stats = [p.stats() for p in proxies]
    figures = await check(
        "6 latency 50-200 ms each way",
        client.redis,
        queue,
        ids,
        tail=tail,
        ledger=ledger,
        extra={
            "completed": final["completed"],
            "errors": n - final["completed"],
            "retries": len(tail.of_type("retrying")),
            "reclaimed": len(tail.of_type("reclaimed")),
            "outage_warnings": len(outage),
            "jobs_per_s": round(n / elapsed, 1),
            "bytes_proxied": sum(s["bytes_up"] + s["bytes_down"] for s in stats),
        },
    )
    assert final["completed"] == n, final
    assert figures.duplicate_executions == 0 and figures.duplicate_outcomes == 0
    assert not tail.of_type("retrying") and not tail.of_type("reclaimed")
    assert not outage, outage
    for proc in procs:
        assert not problems_in_log(proc), proc.log()[-3000:]
    await _stop(*procs)
