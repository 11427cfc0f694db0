"""A retry of a failed (or cancelled) step: the jobs that ended because of it wait again, on
one queue and across queues, however the end and the dependent's enqueue were ordered."""

from __future__ import annotations

import pytest

from redisjobs import Client, JobFailed, JobStatus, chain, chord, group
from tests.conftest import WorkerFactory, log_events
from tests.test_flows import FUNCTIONS, _status, call


async def test_a_retry_of_the_failed_step_continues_the_chain(
    client: Client, worker: WorkerFactory
) -> None:
    run = await client.enqueue_flow(
        chain(call("plus", 1), call("flaky"), call("plus", 2), call("plus", 3))
    )
    await worker(functions=FUNCTIONS)
    with pytest.raises(JobFailed, match="dependency"):
        await client.wait(run.id, timeout=10)
    broken = run.jobs[1]
    assert await client.retry(broken.id)  # it fails once per job, so this run succeeds
    for job in run.jobs[2:]:
        assert (await client.get(job.id)).status in ("waiting", "pending", "running", "completed")  # type: ignore[union-attr]
    assert await client.wait(run.id, timeout=10) == 1 + 1 + 2 + 3
    types = [ev.type for ev in await log_events(client, run.id)]
    assert types.count("waiting") == 1 and types.count("completed") == 1


async def test_a_retry_revives_a_job_whose_other_parent_completed_meanwhile(
    client: Client, worker: WorkerFactory
) -> None:
    p = await client.enqueue("call", {"fn": "plus", "args": [1]})
    q = await client.enqueue("call", {"fn": "plus", "args": [2]})
    c = await client.enqueue("call", {"fn": "total"}, depends_on=[p, q])
    assert await client.cancel(p.id)
    assert (await client.get(c.id)).status is JobStatus.CANCELLED  # type: ignore[union-attr]
    await worker(functions=FUNCTIONS)
    assert await client.wait(q.id, timeout=10) == 2  # its edge closes while c has ended
    assert await client.retry(p.id)
    assert await client.wait(c.id, timeout=10) == 3  # c waits for p alone, then runs


async def test_a_retry_before_a_chord_releases_its_callback_once_the_group_ran_again(
    client: Client, worker: WorkerFactory
) -> None:
    # the callback ends with the first group member that fails; the others' failures close
    # their edges on an ended job, and must not count twice when the retry opens them again
    run = await client.enqueue_flow(
        chain(call("flaky"), chord(group(call("plus", 1), call("plus", 2)), call("total")))
    )
    await worker(functions=FUNCTIONS)
    with pytest.raises(JobFailed, match="dependency"):
        await client.wait(run.id, timeout=10)
    assert await client.retry(run.jobs[0].id)
    assert await client.wait(run.id, timeout=10) == (1 + 1) + (2 + 1)


async def test_a_retry_revives_a_job_only_once_no_other_parent_failure_ends_it(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=FUNCTIONS, concurrency=2)
    first = await client.enqueue("call", {"fn": "flaky"})  # fails once, then works
    other = await client.enqueue("call", {"fn": "boom"}, delay=0.5)  # fails, after first
    both = await client.enqueue("call", {"fn": "total"}, depends_on=[first, other])
    with pytest.raises(JobFailed, match="dependency"):
        await client.wait(both.id, timeout=10)
    await _status(client, other.id, "failed")
    assert await client.retry(first.id)
    assert await client.wait(first.id, timeout=10) == 1
    job = await client.get(both.id)  # the other parent's failure still ends it
    assert job is not None and job.status is JobStatus.FAILED and job.failure == "dependency"
    assert "waiting" not in [ev.type for ev in await log_events(client, both.id)]


@pytest.mark.parametrize("across", [False, True], ids=["one-queue", "across-queues"])
async def test_a_retry_revives_a_job_enqueued_after_its_parent_had_failed(
    client: Client, worker: WorkerFactory, queue: str, across: bool
) -> None:
    # A step of another queue may fail before its dependent is even linked to it (a fast
    # worker, a flow still being written): the retry must find that dependent all the same.
    other = f"{queue}-gpu" if across else queue
    await worker(functions=FUNCTIONS, queue=None, queues=sorted({queue, other}))
    parent = await client.enqueue("call", {"fn": "flaky"}, queue=other)  # fails once
    with pytest.raises(JobFailed, match="first run fails"):
        await client.wait(parent.id, queue=other, timeout=10)
    late = await client.enqueue("call", {"fn": "total"}, depends_on=[parent])
    job = await client.get(late.id)
    assert job is not None and job.status is JobStatus.FAILED and job.failure == "dependency"
    await _kept_with(client, other, parent.id)
    assert await client.retry(parent.id, queue=other)
    assert await client.wait(late.id, timeout=10) == 1
    await client.wait(parent.id, queue=other, timeout=10)
    await _kept_with(client, other, parent.id)


async def _kept_with(client: Client, queue: str, job_id: str) -> None:
    """The job's dependents set is there, and expires no later than its hash."""
    keys = client.keys(queue)
    lives = await client.redis.pttl(keys.job(job_id))  # read first: the set's TTL is read later
    # (a ms of slack: the embedded backend keeps expiry times as float seconds)
    assert 0 < await client.redis.pttl(keys.job_dependents(job_id)) <= lives + 1
