"""Pending jobs have no index entry while they wait as a `ready` entry: their count, their list,
the oldest one's age, drain and obliterate read the stream instead (docs/architecture.md,
"Pending jobs"), on both backends."""

from __future__ import annotations

import asyncio
from typing import Any

from redisjobs import Client, Job, JobStatus
from redisjobs.scripts import Scripts
from tests.faults.audit import audit
from tests.test_scripts import read


async def _apart(client: Client, *specs: dict[str, Any]) -> list[Job]:
    """Enqueue one job per spec, a few ms apart (so that their times order them)."""
    jobs = []
    for spec in specs:
        jobs.append(await client.enqueue("call", {}, **spec))
        await asyncio.sleep(0.005)
    return jobs


async def _pending_ids(client: Client, limit: int) -> list[list[str]]:
    """Every page of pending jobs, `limit` a page."""
    pages: list[list[str]] = []
    cursor: int | None = 0
    while cursor is not None:
        page = await client.list_jobs(JobStatus.PENDING, limit=limit, cursor=cursor)
        pages.append([job.id for job in page.jobs])
        cursor = page.cursor
    return pages


async def test_a_plain_job_has_no_index_entry_and_is_counted(client: Client) -> None:
    jobs = await client.enqueue_many([("call", {})] * 3)
    assert await client.redis.zcard(client.keys().status("pending")) == 0
    assert (await client.stats())["pending"] == 3
    assert {j.status for j in await client.get_many([j.id for j in jobs])} == {"pending"}  # type: ignore[union-attr]
    assert await audit(client.redis, client.queue) == []


async def test_pending_jobs_are_listed_newest_first_wherever_they_wait(client: Client) -> None:
    a, urgent, b, keyed, c = await _apart(client, {}, {"priority": 5}, {}, {"limit_key": "k"}, {})
    assert await client.redis.zcard(client.keys().status("pending")) == 2  # prio, key backlog
    newest_first = [c.id, keyed.id, b.id, urgent.id, a.id]
    assert await _pending_ids(client, 10) == [newest_first]
    assert await _pending_ids(client, 2) == [newest_first[:2], newest_first[2:4], newest_first[4:]]
    every = await client.list_jobs(limit=10)  # all statuses: the pending ones among them
    assert [j.id for j in every.jobs] == newest_first
    oldest = [(await client.list_jobs(JobStatus.PENDING, limit=2, cursor=n, oldest=True)).jobs
              for n in (0, 2, 4)]  # fmt: skip
    assert [j.id for page in oldest for j in page] == newest_first[::-1]


async def test_a_job_read_but_not_started_is_still_listed_and_counted(
    client: Client, scripts: Scripts
) -> None:
    first, second = await _apart(client, {}, {})
    assert [jid for _, jid in await read(client, "w1", count=1)] == [first.id]
    assert (await client.stats())["pending"] == 2
    assert await _pending_ids(client, 10) == [[second.id, first.id]]


async def test_the_oldest_pending_job_is_the_first_one_not_started(
    client: Client, scripts: Scripts
) -> None:
    first, second = await _apart(client, {}, {})
    (counts,) = await client.job_counts([client.queue])
    assert counts.oldest_pending_ms == await _ms(client, first)
    [d] = await scripts.start(client.keys(), "w1", await read(client, "w1", count=1))
    assert d.job_id == first.id
    (urgent,) = await _apart(client, {"priority": 5})
    (counts,) = await client.job_counts([client.queue])
    assert counts.oldest_pending_ms == await _ms(client, second)
    assert counts.counts["pending"] == 2 and counts.counts["running"] == 1
    await client.cancel(second.id)
    (counts,) = await client.job_counts([client.queue])
    assert counts.oldest_pending_ms == await _ms(client, urgent)  # only it is left
    assert await audit(client.redis, client.queue) == []


async def _ms(client: Client, job: Job) -> int:
    """When the job was created, as stored (Redis's clock)."""
    stored = await client.get(job.id)
    assert stored is not None
    return round(stored.created_at.timestamp() * 1000)


async def test_drain_drops_the_undelivered_and_leaves_a_job_a_worker_read(
    client: Client, scripts: Scripts
) -> None:
    taken, plain, urgent = await _apart(client, {}, {}, {"priority": 5})
    read_first = await read(client, "w1", count=1)
    assert await client.drain() == 2
    assert await client.get(plain.id) is None and await client.get(urgent.id) is None
    # the job the worker read starts as it would have had the drain come a moment later
    assert (await client.stats())["pending"] == 1
    [d] = await scripts.start(client.keys(), "w1", read_first)
    assert d.job_id == taken.id
    assert (await client.stats())["pending"] == 0
    assert await audit(client.redis, client.queue) == []


async def test_drain_leaves_jobs_enqueued_after_its_cutoff_and_wake_up_entries_go(
    client: Client,
) -> None:
    await client.enqueue_many([{"kind": "call", "payload": {}, "priority": 5}] * 3)
    await client.enqueue_many([("call", {})] * 250)  # more than a drain call looks at
    assert await client.drain() == 253
    assert await client.redis.xlen(client.keys().ready) == 0
    later = await client.enqueue("call", {})
    assert (await client.stats())["pending"] == 1
    assert [j.id for j in (await client.list_jobs(JobStatus.PENDING)).jobs] == [later.id]
    assert await audit(client.redis, client.queue) == []


async def test_obliterate_counts_and_deletes_pending_jobs_of_the_stream(client: Client) -> None:
    await client.enqueue_many([("call", {})] * 700)  # more than an obliterate call looks at
    await client.enqueue("call", {}, priority=1)
    assert await client.obliterate() == 701
    assert [k async for k in client.redis.scan_iter(match=client.keys().prefix + "*")] == []


async def test_junk_entries_in_the_stream_stop_no_listing_count_or_drain(client: Client) -> None:
    job = await client.enqueue("call", {})
    for fields in ({"id": b"\xff\xfe"}, {"id": "no-such-job"}, {"x": "1"}):
        await client.redis.xadd(client.keys().ready, fields)  # type: ignore[arg-type]
    assert [j.id for j in (await client.list_jobs(JobStatus.PENDING)).jobs] == [job.id]
    (counts,) = await client.job_counts([client.queue])
    assert counts.counts["pending"] == 1
    assert await client.drain() == 1
    assert await client.redis.xlen(client.keys().ready) == 0
    assert await audit(client.redis, client.queue) == []
