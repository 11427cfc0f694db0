"""A parent that fails under each policy (fail, cancel, ignore, run), with real worker
processes: what the jobs waiting for it become (docs/architecture.md, "Flows"), and a retry of
the failed parent that carries each flow to completion, every job's outcome recorded once.

Each flow: P (fails while its gate is closed) and Q (runs until its gate opens) are the
children of D (``on_parent_failure=policy``), and E follows D in a chain (default ``fail``).
"""

from __future__ import annotations

import collections
from typing import Any

import pytest

from redisjobs import Client, Job, chain, flow, step
from redisjobs.composition import StepLike
from tests.faults.audit import audit
from tests.faults.conftest import MakeScenario
from tests.faults.harness import Ledger, Spawner, jobs_call, until

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(120)]

POLICIES = ("fail", "cancel", "ignore", "run")


async def _statuses(client: Client, ids: list[str]) -> list[str]:
    return [j.status.value if j else "gone" for j in await client.get_many(ids)]


async def _until_all(client: Client, ids: list[str], status: str, what: str) -> None:
    async def reached() -> bool:
        return set(await _statuses(client, ids)) == {status}

    await until(reached, 30, what)


async def _get(client: Client, job_id: str) -> Job:
    job = await client.get(job_id)
    assert job is not None, f"job {job_id} is gone"
    return job


async def test_each_policy_then_a_retry_of_the_failed_parent_completes_the_flow(
    scenario: MakeScenario, workers: Spawner, ledger: Ledger, queue: str
) -> None:
    server, client, tail = await scenario("plain")
    gate_p, gate_q = f"{ledger.key}:p", f"{ledger.key}:q"
    flows: dict[str, list[str]] = {}  # policy -> [P, Q, D, E]
    for policy in POLICIES:
        children: list[StepLike] = [
            step(*jobs_call("ledger_until_open", gate=gate_p), max_retries=0),
            jobs_call("ledger_gated", gate=gate_q),
        ]
        node = flow(step(*jobs_call("ledger_add", x=1), on_parent_failure=policy), children)
        run = await client.enqueue_flow(chain(node, jobs_call("ledger_add", x=10)))
        flows[policy] = [j.id for j in run.jobs]
    await workers.start(server.url, 2, client.redis, concurrency=4)
    ps, qs = [ids[0] for ids in flows.values()], [ids[1] for ids in flows.values()]
    await _until_all(client, ps, "failed", "every P to fail")

    # While Q runs (its gate closed): each policy has acted on P's failure alone.
    expected = {"fail": "failed", "cancel": "cancelled", "run": "completed"}
    for policy, status in expected.items():
        await _until_all(client, flows[policy][2:], status, f"{policy}: D, E {status}")
    for policy in ("fail", "cancel"):
        p, _, d, e = flows[policy]
        for job, parent in ((await _get(client, d), p), (await _get(client, e), d)):
            assert job.failure == "dependency" and job.started_at is None
            assert job.error is not None and job.error.startswith(f"dependency {parent} ")
    assert await client.wait(flows["run"][3], timeout=5) == 11  # D ran at once: 1, E: 10 + 1
    d_ignore = await _get(client, flows["ignore"][2])
    assert d_ignore.status.value == "waiting"  # for Q, P's failure counted as done
    assert await client.redis.hget(client.keys().job(d_ignore.id), "deps") == b"1"
    assert await _statuses(client, qs) == ["running"] * len(qs)

    await ledger.redis.set(gate_q, 1)
    await _until_all(client, qs, "completed", "every Q to complete")
    assert await client.wait(flows["ignore"][3], timeout=30) == 11
    for policy in ("fail", "cancel"):  # Q's end changes nothing for a job that has ended
        assert await _statuses(client, flows[policy][2:]) == [expected[policy]] * 2

    await ledger.redis.set(gate_p, 1)
    for p in ps:
        assert await client.retry(p)
    for ids in flows.values():
        assert await client.wait(ids[3], timeout=30) == 11, await _statuses(client, ids)
    assert await _statuses(client, [j for ids in flows.values() for j in ids]) == ["completed"] * 16
    await _check_once(client, tail.drain, ledger, flows, queue)


async def _check_once(
    client: Client, drain: Any, ledger: Ledger, flows: dict[str, list[str]], queue: str
) -> None:
    """One recorded outcome per job; D and E ran once each, P twice; the audit is clean."""
    events = await drain()
    completed = collections.Counter(e.job_id for e in events if e.type == "completed")
    waited = collections.Counter(e.job_id for e in events if e.type == "waiting")
    starts = await ledger.starts()
    for policy, (p, q, d, e) in flows.items():
        assert [completed[j] for j in (p, q, d, e)] == [1, 1, 1, 1], policy
        assert [starts[j] for j in (p, q, d, e)] == [2, 1, 1, 1], policy
        # the jobs that ended because of P waited again after its retry; the others did not
        again = 1 if policy in ("fail", "cancel") else 0
        assert [waited[d], waited[e]] == [again, again], policy
    assert await audit(client.redis, queue) == []
