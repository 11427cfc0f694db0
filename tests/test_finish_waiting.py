"""finish_waiting: an outcome recorded by hand for a job that waits to run (no worker runs it),
taken out of wherever it waits, as a cancel would take it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redisjobs import Client, JobStatus, Keep
from redisjobs.keys import QueueKeys
from redisjobs.scripts import Scripts
from tests.test_scripts import deliver, events_of


async def test_a_pending_job_completed_by_hand_never_runs(client: Client, keys: QueueKeys) -> None:
    job = await client.enqueue("call", {"x": 1})
    assert await client.finish_waiting(job.id, "completed", {"by": "hand"}) == "done"
    done = await client.get(job.id)
    assert done is not None and done.status is JobStatus.COMPLETED and done.attempt == 0
    assert done.result == {"by": "hand"} and done.progress == 100
    assert await client.wait(job.id, timeout=5) == {"by": "hand"}
    assert await events_of(client, job.id) == ["enqueued", "completed"]
    assert await client.redis.xlen(keys.ready) == 0  # its entry is gone: nothing starts it
    stats = await client.stats()
    assert (stats["completed"], stats["pending"]) == (1, 0)
    assert await client.finish_waiting(job.id, "fatal", "again") == "final"


@pytest.mark.parametrize("outcome", ["fatal", "timeout"])
async def test_scheduled_and_prioritised_jobs_fail_by_hand_into_the_dead_letters(
    client: Client, keys: QueueKeys, outcome: str
) -> None:
    later = await client.enqueue("call", 1, delay=60)
    urgent = await client.enqueue("call", 2, priority=1)
    for job in (later, urgent):
        assert await client.finish_waiting(job.id, outcome, "given up") == "done"
        failed = await client.get(job.id)
        assert failed is not None and failed.status is JobStatus.FAILED
        assert failed.error == "given up" and failed.failure == outcome
    assert await client.redis.zcard(keys.delayed) == 0 and await client.redis.zcard(keys.prio) == 0
    assert await client.redis.zcard(keys.dead) == 2
    assert await client.retry(later.id)  # a dead letter like any other


async def test_what_it_leaves_alone(client: Client, scripts: Scripts, keys: QueueKeys) -> None:
    [running] = await deliver(client, scripts, "w1")
    assert await client.finish_waiting(running.job_id, "completed", 1) == "running"
    job = await client.get(running.job_id)
    assert job is not None and job.status is JobStatus.RUNNING
    assert await client.finish_waiting("no-such-job", "completed", 1) == "missing"
    with pytest.raises(ValueError, match="outcome must be"):
        await client.finish_waiting(running.job_id, "cancelled", 1)


async def test_a_waiting_child_and_a_unique_lock(client: Client) -> None:
    parent = await client.enqueue("call", 1, delay=60)
    child = await client.enqueue("call", 2, depends_on=[parent.id])
    assert await client.finish_waiting(child.id, "completed", "skipped") == "done"
    assert await client.finish_waiting(parent.id, "completed", "p") == "done"
    ended = await client.get(child.id)  # the parent's end only closed the edge
    assert ended is not None and ended.status is JobStatus.COMPLETED and ended.result == "skipped"
    locked = await client.enqueue("call", 3, unique="until_done", unique_key="u")
    assert await client.finish_waiting(locked.id, "completed", None) == "done"
    again = await client.enqueue("call", 3, unique="until_done", unique_key="u")
    assert not again.duplicate  # the lock went with the job's end


async def test_a_count_to_keep_holds_for_jobs_completed_by_hand(client: Client) -> None:
    ids = []
    for n in range(4):  # one by one, each ending in a millisecond of its own
        job = await client.enqueue("call", {"n": n}, keep_completed=Keep(count=2))
        assert await client.finish_waiting(job.id, "completed", n) == "done"
        ids.append(job.id)
        await asyncio.sleep(0.002)
    index: Any = await client.redis.zrange(client.keys().status("completed"), 0, -1)
    assert [i.decode() for i in index] == ids[-2:]
    for gone in ids[:-2]:
        assert await client.get(gone) is None
