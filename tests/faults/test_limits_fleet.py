"""Limits across real worker processes: a queue-wide rate shared by the fleet, and a key's
max_running kept through kill -9 of a worker mid-run."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import pytest

from redisjobs.keys import QueueKeys
from tests.faults.audit import audit
from tests.faults.conftest import MakeScenario
from tests.faults.harness import Ledger, Spawner, enqueue_ledger_jobs, until

pytestmark = [pytest.mark.faults]

RATE = 50
SECONDS = 20


async def _final(client: Any, keys: QueueKeys, n: int) -> bool:
    done: Any = await client.redis.zcard(keys.status("completed"))
    return int(done) >= n


async def test_a_queue_rate_is_shared_by_three_worker_processes(
    scenario: MakeScenario, workers: Spawner, queue: str
) -> None:
    server, client, _ = await scenario("plain")
    await client.set_limit(rate=RATE)
    ids = await enqueue_ledger_jobs(client, RATE * (SECONDS + 4), 0.0)
    await workers.start(server.url, 3, client.redis, concurrency=10)
    keys = client.keys()
    await until(lambda: _final(client, keys, RATE * (SECONDS + 2)), SECONDS + 15, "the jobs to run")
    jobs = await client.get_many(ids)
    started = sorted(j.started_at for j in jobs if j and j.started_at)
    first = started[0]
    per_second = collections.Counter(int((t - first).total_seconds()) for t in started)
    # the first second takes the burst (RATE jobs at once) on top of its share
    counted = [per_second[s] for s in range(1, SECONDS)]
    print(f"starts per second, {RATE}/s over 3 processes: {counted}")
    assert all(RATE - 5 <= c <= RATE + 5 for c in counted), counted


async def test_max_running_holds_through_kill_9(
    scenario: MakeScenario, workers: Spawner, ledger: Ledger, queue: str
) -> None:
    server, client, _ = await scenario("plain")
    await client.set_limit(key="k", max_running=2)
    ids = await enqueue_ledger_jobs(client, 30, 0.3, limit_key="k")
    opts: dict[str, Any] = {"concurrency": 5, "lease_ttl": 1.0, "reclaim_interval": 0.25}
    victim, survivor = await workers.start(server.url, 2, client.redis, **opts)

    async def victim_runs() -> bool:
        return any(e.pid == victim.pid and e.what == "start" for e in await ledger.entries())

    await until(victim_runs, 15, "the victim to run a job of the key")
    victim.kill()
    await until(lambda: _final(client, client.keys(), 30), 40, "every job to complete")
    # From the ledger's order: a run is open from its start to its end, or, for a run of the
    # killed worker, to the start of the job's next run (its reclaim).
    open_runs: dict[str, int] = {}
    most = 0
    for e in await ledger.entries():
        if e.what == "start":
            open_runs[e.job_id] = e.lease
        elif open_runs.get(e.job_id) == e.lease:
            del open_runs[e.job_id]
        most = max(most, len(open_runs))
    assert most == 2
    assert {j.status.value for j in await client.get_many(ids) if j} == {"completed"}
    assert await client.redis.scard(client.keys().key_active("k")) == 0
    assert not await audit(client.redis, queue)
    survivor.terminate()
    await asyncio.to_thread(survivor.wait, 10)
