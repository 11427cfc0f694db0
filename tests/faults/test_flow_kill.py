"""kill -9 of a worker process in the middle of flows: four 4-step chains and a 50-wide chord
over three worker processes. Every flow completes with its result, nothing is lost, each step's
outcome is recorded once (the killed steps may run twice: at least once runs, exactly once
recorded outcomes), and the audit is clean."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from redisjobs import chain, chord, group
from tests.faults.conftest import MakeScenario
from tests.faults.harness import Ledger, Spawner, check, in_flight, jobs_call, until

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(120)]

STEP_SECONDS = 0.3
CHAINS = 4
WIDTH = 50


def step_of(x: int) -> tuple[str, dict[str, Any]]:
    """A step that takes a little while (so a kill lands mid-run) and adds `x`."""
    return jobs_call("ledger_add", x=x, seconds=STEP_SECONDS)


async def test_kill_9_mid_flow_completes_every_flow_recording_each_outcome_once(
    scenario: MakeScenario, workers: Spawner, ledger: Ledger, queue: str
) -> None:
    server, client, tail = await scenario("plain")
    opts: dict[str, Any] = {"concurrency": 4, "lease_ttl": 2.0, "reclaim_interval": 0.5}
    victim, *others = await workers.start(server.url, 3, client.redis, **opts)
    runs = [
        await client.enqueue_flow(chain(*(step_of(10**i) for i in range(4)))) for _ in range(CHAINS)
    ]
    members = group([step_of(i) for i in range(WIDTH)])
    runs.append(await client.enqueue_flow(chord(members, jobs_call("ledger_total"))))
    ids = [job.id for run in runs for job in run.jobs]

    async def victim_mid_run() -> bool:
        entries = await ledger.entries()
        open_runs = collections.Counter(
            e.job_id for e in entries if e.pid == victim.pid and e.what == "start"
        )
        open_runs.subtract(e.job_id for e in entries if e.pid == victim.pid and e.what == "end")
        started = sum(e.what == "start" for e in entries)
        return started >= 10 and any(n > 0 for n in open_runs.values())

    await until(victim_mid_run, 30, "the victim to be mid-run, ten steps into the flows")
    victim.kill()
    held = await in_flight(client.redis, queue, victim)
    assert held, "the kill hit a worker with nothing in flight"
    others.append(workers.respawn(victim))

    await check(
        "flows: kill -9 mid-flow",
        client.redis,
        queue,
        ids,
        tail=tail,
        ledger=ledger,
        budget=60,
        max_duplicate_executions=len(held),
        extra={"in_flight_on_killed": len(held)},
    )
    for run in runs[:CHAINS]:
        assert await client.wait(run.id, timeout=5) == 1111
    assert await client.wait(runs[-1].id, timeout=5) == sum(range(WIDTH))
    completed = collections.Counter(e.job_id for e in tail.of_type("completed"))
    assert {completed[j] for j in ids} == {1}
    # the steps the kill cut short ran again elsewhere: their one recorded outcome is the re-run's
    rerun = {e.job_id for e in await ledger.entries() if e.what == "end" and e.pid != victim.pid}
    assert set(held) <= rerun
    for w in others:
        w.terminate()
        assert w.wait(10) == 0
