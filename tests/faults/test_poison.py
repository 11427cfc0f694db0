"""Scenario 7: poison jobs. One kills its worker, one always raises, one hangs in a thread.

* A job that SIGKILLs its own ``redisjobs worker`` process runs exactly ``max_deliveries``
  times (the test restarts each worker it kills) and then fails with "worker died N times",
  while 100 healthy jobs complete.
* A job that always raises runs ``max_retries + 1`` times, spaced by its backoff on Redis's
  clock (the ``ts`` of its events).
* A blocking function that hangs (``time.sleep(3600)`` in a thread) fails by its timeout and
  frees its slot: with concurrency 1 the jobs after it still run. The thread cannot be stopped;
  it is reported in the worker's ``hung_threads`` gauge (its registry entry) and does not keep
  the worker from exiting.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import time
from typing import Any

import pytest

from redisjobs import Client, Event, JobStatus
from redisjobs.job import FINAL_STATUSES
from redisjobs.keys import REGISTRY
from tests.conftest import planned
from tests.faults.conftest import MakeScenario
from tests.faults.harness import (
    ROOT,
    EventTail,
    Ledger,
    Spawner,
    WorkerProcess,
    check,
    enqueue_ledger_jobs,
    in_flight,
    statuses,
    until,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]


MAX_DELIVERIES = 3
LEASE_TTL = 2.0
RECLAIM_INTERVAL = 0.5


async def test_a_job_that_kills_its_worker_fails_after_max_deliveries(
    scenario: MakeScenario,
    workers: Spawner,
    ledger: Ledger,
    queue: str,
) -> None:
    server, client, tail = await scenario()
    # Concurrency 1: a worker that dies takes only the poison job down with it (almost: a
    # reclaim and a fetch can each hand it one job at the same moment). With more slots, the
    # jobs running beside the poison count a crash each time it kills their worker, and reclaim
    # hands them out together with it again: at concurrency 4, 3 of the 100 healthy jobs failed
    # as "worker died 3 times" in one of two runs. Crash counts cannot tell the culprit from
    # its bystanders; running a job that has crashed before on its own would.
    options: dict[str, Any] = {
        "concurrency": 1,
        "lease_ttl": LEASE_TTL,
        "reclaim_interval": RECLAIM_INTERVAL,
        "max_deliveries": MAX_DELIVERIES,
    }
    pool = await workers.start(server.url, 2, client.redis, **options)

    t0 = time.monotonic()
    poison = (await client.enqueue("call", {"fn": "tests.jobs:kills_worker"})).id
    healthy = await enqueue_ledger_jobs(client, 100, seconds=0.1)
    deaths: list[tuple[WorkerProcess, int, list[str], float]] = []

    async def tend() -> bool:
        """Restart every worker that died; True once the poison failed and the rest are done."""
        for i, w in enumerate(pool):
            if not w.alive:
                held = await in_flight(client.redis, queue, w)
                deaths.append((w, w.proc.returncode, held, time.monotonic() - t0))
                pool[i] = workers.respawn(w)
        found = await statuses(client.redis, queue, [poison, *healthy])
        return all(s in FINAL_STATUSES for s in found.values())

    await until(tend, 100, "the poison job to fail and the healthy ones to finish", interval=0.05)
    elapsed = time.monotonic() - t0
    await tail.drain()

    job = await client.get(poison)
    assert job is not None and job.status is JobStatus.FAILED
    expected = (
        f"worker died {MAX_DELIVERIES} times while running this job "
        f"(max_deliveries={MAX_DELIVERIES})"
    )
    assert job.error == expected
    runs = (await ledger.starts())[poison]
    started = _of(tail, poison, "started")
    reclaimed = _of(tail, poison, "reclaimed")
    assert runs == MAX_DELIVERIES
    assert len(started) == MAX_DELIVERIES and len(reclaimed) == MAX_DELIVERIES - 1
    assert [e.data["crashes"] for e in reclaimed] == list(range(1, MAX_DELIVERIES))
    crashes: Any = await client.redis.hget(client.keys().job(poison), "crashes")
    assert int(crashes) == MAX_DELIVERIES
    # every worker that died was killed by the poison job, running it
    assert len(deaths) == MAX_DELIVERIES
    assert all(code == -9 and poison in held for _, code, held, _ in deaths), deaths
    bystanders = sum(len(held) - 1 for _, _, held, _ in deaths)

    failed_at = _of(tail, poison, "failed")[0].ts
    completed_before = sum(
        1 for e in tail.of_type("completed") if e.job_id in set(healthy) and e.ts < failed_at
    )
    # the time from one run's start to the next: the dead worker's lease running out,
    # a reclaim tick, the takeover
    gaps = [b.ts - a.ts for a, b in itertools.pairwise(started)]
    figures = await check(
        "7a poison: kills its worker",
        client.redis,
        queue,
        [poison, *healthy],
        tail=tail,
        ledger=ledger,
        budget=10,
        # the poison job's runs after the first, and healthy jobs a dying worker held
        max_duplicate_executions=MAX_DELIVERIES - 1 + bystanders,
        extra={
            "poison_runs": runs,
            "max_deliveries": MAX_DELIVERIES,
            "worker_deaths": len(deaths),
            "healthy_completed": len(healthy),
            "healthy_completed_before_poison_failed": completed_before,
            "healthy_in_flight_on_killed_workers": bystanders,
            "rerun_gaps_ms": gaps,
            "elapsed_s": round(elapsed, 2),
        },
    )
    assert figures.statuses == {"completed": len(healthy), "failed": 1}
    for w in pool:
        w.terminate()
    for w in pool:
        assert w.wait(15) == 0
    print(
        f"    poison: {runs} runs = max_deliveries, error {job.error!r}; {len(deaths)} workers "
        f"killed and restarted; {len(healthy)} healthy jobs completed ({completed_before} "
        f"before the poison failed, {bystanders} held by a dying worker); run-to-run "
        f"{gaps} ms (lease_ttl {LEASE_TTL:g} s); {elapsed:.1f} s"
    )


async def test_a_job_that_always_raises_runs_max_retries_plus_one_times(
    scenario: MakeScenario,
    workers: Spawner,
    ledger: Ledger,
    queue: str,
) -> None:
    server, client, tail = await scenario()
    [worker] = await workers.start(server.url, 1, client.redis, concurrency=4, lease_ttl=LEASE_TTL)
    max_retries, delay_ms, backoff, jitter = 3, 400, 2.0, 0.1

    job = await client.enqueue(
        "call",
        {"fn": "tests.jobs:ledger_fail", "args": {"message": "always"}},
        max_retries=max_retries,
        retry_delay=delay_ms / 1000,
        retry_backoff=backoff,
        retry_jitter=jitter,
    )
    healthy = await enqueue_ledger_jobs(client, 20, seconds=0.05)
    await until(lambda: _final(client, [job.id, *healthy]), 60, "the failing job to give up")
    await tail.drain()

    got = await client.get(job.id)
    assert got is not None and got.status is JobStatus.FAILED
    assert got.error == "RuntimeError: always" and got.attempt == max_retries + 1
    started = _of(tail, job.id, "started")
    retrying = _of(tail, job.id, "retrying")
    runs = (await ledger.starts())[job.id]
    assert runs == len(started) == max_retries + 1
    assert [e.attempt for e in started] == list(range(1, max_retries + 2))
    assert len(retrying) == max_retries and len(_of(tail, job.id, "failed")) == 1

    backoffs: list[int] = []
    spacing: list[int] = []
    lateness: list[int] = []
    for n, (retry, nxt) in enumerate(zip(retrying, started[1:], strict=True), start=1):
        delay = delay_ms * backoff ** (n - 1)
        due = retry.data["due"]
        # the retry was scheduled at its backoff (within the jitter) on Redis's clock...
        low = min(planned(client, int(delay * (1 - jitter)) - 1))
        assert low <= due - retry.ts <= delay * (1 + jitter) + 1
        # ...and ran once due, never before, and not much after
        assert 0 <= nxt.ts - due < 1000, (n, nxt.ts - due)
        backoffs.append(round(delay))
        spacing.append(nxt.ts - started[n - 1].ts)
        lateness.append(nxt.ts - due)
    for n, gap in enumerate(spacing):
        assert gap >= backoffs[n] * (1 - jitter), (spacing, backoffs)

    await check(
        "7b poison: always raises",
        client.redis,
        queue,
        [job.id, *healthy],
        tail=tail,
        ledger=ledger,
        budget=10,
        max_duplicate_executions=max_retries,  # the retries are its re-executions
        extra={
            "runs": runs,
            "max_retries": max_retries,
            "planned_backoff_ms": backoffs,
            "start_to_start_ms": spacing,
            "start_after_due_ms": lateness,
        },
    )
    worker.terminate()
    assert worker.wait(15) == 0
    print(
        f"    always raises: {runs} runs = max_retries + 1; start-to-start {spacing} ms on "
        f"Redis's clock for backoff {backoffs} ms ±{jitter:.0%}; started {lateness} ms after due"
    )


async def test_a_hung_thread_times_out_frees_its_slot_and_is_reported(
    scenario: MakeScenario,
    workers: Spawner,
    ledger: Ledger,
    queue: str,
) -> None:
    server, client, tail = await scenario()
    [worker] = await workers.start(
        server.url, 1, client.redis, concurrency=1, lease_ttl=LEASE_TTL, grace=5
    )
    worker_id = await _worker_id(client, worker)
    assert await _gauge(client, worker_id) == 0

    hung = await client.enqueue("call", {"fn": "tests.jobs:sleep_sync", "args": [3600]}, timeout=1)
    # after it, on the one slot: blocking functions (in threads, beside the hung one) and
    # coroutines
    later = [
        (await client.enqueue("call", {"fn": "tests.jobs:add_sync", "args": [i, i]})).id
        for i in range(10)
    ]
    later += await enqueue_ledger_jobs(client, 10, seconds=0.01)
    await until(lambda: _final(client, [hung.id, *later]), 30, "every job to finish")
    await tail.drain()

    got = await client.get(hung.id)
    assert got is not None and got.status is JobStatus.FAILED
    assert got.error == "timed out after 1 s" and got.attempt == 1
    [hung_start] = _of(tail, hung.id, "started")
    for n, jid in enumerate(later[:10]):
        assert await client.wait(jid, timeout=1) == 2 * n
    first_later = min(e.ts for e in tail.of_type("started") if e.job_id in set(later))
    waited = first_later - hung_start.ts
    assert waited >= 1000  # the one slot was the hung job's until its timeout, then free

    # the thread still sleeps: the gauge says so, in the registry (refreshed by heartbeats)
    await until(lambda: _gauge_is(client, worker_id, 1), LEASE_TTL * 3, "hung_threads = 1")
    assert _info_gauge(server.url, worker_id) == 1  # what `redisjobs info --json` shows
    log = worker.log()
    assert re.search(r"still runs in its thread \(1 hung threads\)", log), log

    await check(
        "7c poison: hangs in a thread",
        client.redis,
        queue,
        [hung.id, *later],
        tail=tail,
        ledger=ledger,
        budget=10,
        extra={"later_jobs_completed": len(later), "slot_free_after_ms": waited, "hung_threads": 1},
    )
    # and the thread does not hold the worker: SIGTERM, exit 0 at once (there is nothing to drain)
    t0 = time.monotonic()
    worker.terminate()
    assert worker.wait(10) == 0
    exit_s = time.monotonic() - t0
    assert "Traceback" not in worker.log()
    print(
        f"    hangs: failed 'timed out after 1 s' after 1 run; the next of {len(later)} jobs "
        f"started {waited} ms after it on the one slot; hung_threads gauge 1; SIGTERM exit 0 "
        f"in {exit_s:.2f} s with the thread still sleeping"
    )


def _of(tail: EventTail, job_id: str, etype: str) -> list[Event]:
    return [e for e in tail.events if e.job_id == job_id and e.type == etype]


async def _final(client: Client, job_ids: list[str]) -> bool:
    found = await statuses(client.redis, client.queue, job_ids)
    return all(s in FINAL_STATUSES for s in found.values())


async def _worker_id(client: Client, worker: WorkerProcess) -> str:
    members: Any = await client.redis.zrange(REGISTRY.workers, 0, -1)
    [mine] = [str(m.decode()) for m in members if worker.owns(m)]
    return mine


def _info_gauge(url: str, worker_id: str) -> int:
    out = subprocess.run(
        [sys.executable, "-m", "redisjobs", "info", "--json", "--redis", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        cwd=ROOT,
    )
    [mine] = [w for w in json.loads(out.stdout)["workers"] if w["id"] == worker_id]
    return int(mine["hung_threads"])


async def _gauge(client: Client, worker_id: str) -> int:
    value: Any = await client.redis.hget(REGISTRY.worker(worker_id), "hung_threads")
    return int(value)


async def _gauge_is(client: Client, worker_id: str, n: int) -> bool:
    return await _gauge(client, worker_id) == n
