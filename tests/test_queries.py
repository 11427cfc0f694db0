"""The read model: each query of a queue, through its Client method, on real Redis (and the
embedded backend), including the round trips it takes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from redis.asyncio.client import Pipeline

from redisjobs import Client, InvalidJobId, JobStatus
from redisjobs.queries import STATUSES as STATUS_ORDER
from redisjobs.testing import unique_queue


@contextmanager
def round_trips(client: Client, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The round trips the client makes meanwhile: one per command sent alone, one per
    pipeline (the commands run for real; this only counts them)."""
    trips: list[str] = []
    single: Callable[..., Awaitable[Any]] = client.redis.execute_command
    batch = Pipeline.execute

    async def command(*args: Any, **options: Any) -> Any:
        trips.append(str(args[0]))
        return await single(*args, **options)

    async def pipeline(self: Pipeline, raise_on_error: bool = True) -> list[Any]:
        trips.append("pipeline")
        return await batch(self, raise_on_error)

    monkeypatch.setattr(client.redis, "execute_command", command)
    monkeypatch.setattr(Pipeline, "execute", pipeline)
    yield trips
    monkeypatch.undo()


async def test_job_counts_reads_statuses_counters_and_the_oldest_pending_at_once(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await client.get((await client.enqueue("call", {"fn": "add"})).id)
    assert first is not None
    await client.enqueue("call", {"fn": "add"})
    await client.enqueue("call", {"fn": "add"}, delay=60)
    empty = unique_queue()
    with round_trips(client, monkeypatch) as trips:
        mine, other = await client.job_counts([client.queue, empty])
    # the counts, then the head of the one queue with a stream (pending jobs have no index)
    assert trips == ["pipeline", "XRANGE"]
    assert mine.name == client.queue and other.name == empty
    waiting = {"pending": 2, "scheduled": 1, "dead": 0}
    assert mine.counts == {s.value: 0 for s in JobStatus} | waiting
    assert mine.totals["enqueued"] == 3 and mine.totals["completed"] == 0
    assert mine.oldest_pending_ms == int(first.created_at.timestamp() * 1000)
    assert abs(mine.read_at - await client.server_time()) < 5
    assert other.counts["pending"] == 0 and other.totals["enqueued"] == 0
    assert other.oldest_pending_ms is None
    assert client.queue in [c.name for c in await client.job_counts()]  # every known queue
    with round_trips(client, monkeypatch) as trips:
        stats = await client.stats()
    assert trips == ["pipeline"]  # no oldest pending: one round trip, as a tight poll wants
    assert stats["pending"] == 2 and stats["scheduled"] == 1 and stats["enqueued"] == 3


async def test_server_time_is_redis_clock(client: Client) -> None:
    assert abs(await client.server_time() - time.time()) < 5


async def test_event_rates_over_the_last_minute(client: Client) -> None:
    for _ in range(3):
        await client.enqueue("call", {"fn": "add"})
    rates = await client.event_rates([client.queue])
    assert rates[client.queue] == {"enqueued": pytest.approx(3 / 60), "completed": 0, "failed": 0}
    assert (await client.event_rates([unique_queue()])).popitem()[1]["enqueued"] == 0


async def test_event_rates_of_a_trimmed_log_cover_only_what_it_still_holds(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.enqueue_many([("call", {"fn": "add"})] * 10)
    cursor = await client.log_cursor()
    await client.enqueue_many([("call", {"fn": "add"})] * 10)
    kept = [ev async for ev in client.replay(since=cursor)]
    await client.redis.xtrim(client.keys().log, maxlen=10, approximate=False)
    assert [ev.id for ev in kept] == [ev.id async for ev in client.replay()]
    first_ms = int(str(kept[0].id).split("-")[0])
    # Two seconds after its first entry, the trimmed log covers those two seconds only: the 10
    # events it holds are 5 a second (a full minute's span would make it 0.17).
    with round_trips(client, monkeypatch) as trips:
        rates = await client.event_rates([client.queue], now_ms=first_ms + 2000)
    assert trips == ["pipeline"]
    assert rates[client.queue]["enqueued"] == pytest.approx(5.0)
    # Thirty seconds on, it still covers only those thirty of the minute.
    later = await client.event_rates([client.queue], now_ms=first_ms + 30_000)
    assert later[client.queue]["enqueued"] == pytest.approx(10 / 30)


async def test_find_job_in_another_queue(
    url: str, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = unique_queue()
    async with Client(url, queue=other) as producer:
        job = await producer.enqueue("call", {"fn": "add"})
    with round_trips(client, monkeypatch) as trips:
        found = await client.find_job(job.id)
    # The queues, then every queue's job at once (one command, without a pipeline, when the
    # registry holds one queue).
    assert trips[0] == "SMEMBERS" and len(trips) == 2
    assert found is not None and found.queue == other and found.id == job.id
    assert await client.find_job(job.id, queue=client.queue) is None
    assert (await client.find_job(job.id, queue=other)) == found
    assert await client.find_job("no-such-job") is None
    with pytest.raises(InvalidJobId):
        await client.find_job("a:b")


async def test_get_many_reads_jobs_in_one_round_trip(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await client.enqueue("call", {"fn": "add"})
    b = await client.enqueue("http", {"url": "x"})
    with round_trips(client, monkeypatch) as trips:
        got = await client.get_many([a.id, "gone", b.id])
    assert trips == ["pipeline"]
    assert [j.kind if j else None for j in got] == ["call", None, "http"]


async def test_log_cursor_replay_and_history(client: Client) -> None:
    assert await client.log_cursor() == "0"
    a = await client.enqueue("call", {"fn": "add"})
    cursor = await client.log_cursor()
    b = await client.enqueue("call", {"fn": "add"})
    await client.cancel(a.id)
    assert await client.log_cursor() > cursor
    after = [(ev.type, ev.job_id) async for ev in client.replay(since=cursor)]
    assert after == [("enqueued", b.id), ("cancelled", a.id)]
    everything = [ev async for ev in client.replay(a.id)]
    assert [ev.type for ev in everything] == ["enqueued", "cancelled"]
    assert all(ev.id for ev in everything)  # each carries its log id, a resume cursor

    stored = await client.get(a.id)  # its creation time as Redis wrote it
    assert stored is not None
    history = await client.job_history(stored)
    assert [ev.type for ev in history.events] == ["enqueued", "cancelled"]
    assert history.complete and history.cursor == await client.log_cursor()
    short = await client.job_history(stored, limit=2)  # three entries since its creation
    assert not short.complete and [ev.type for ev in short.events] == ["enqueued"]


async def test_ping_answers(client: Client) -> None:
    await client.ping()
    await asyncio.sleep(0)


async def test_a_page_reads_the_pending_count_only_when_it_lists_pending_jobs(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.enqueue("call", {"fn": "add"})
    with round_trips(client, monkeypatch) as trips:
        assert (await client.list_jobs(JobStatus.COMPLETED)).jobs == []
    assert trips == ["ZCARD"]  # no stats hash: completed jobs are counted by their index
    with round_trips(client, monkeypatch) as trips:
        assert len((await client.list_jobs(JobStatus.PENDING)).jobs) == 1
    assert trips[0] == "HMGET"  # the count's three fields, not the whole hash


async def test_counts_send_no_read_of_the_pending_index_they_do_not_use(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pending jobs are counted from the stats hash: a ZCARD of status:pending would be a
    command per queue per poll whose reply nobody reads."""
    await client.enqueue("call", {"fn": "add"})
    await client.enqueue("call", {"fn": "add"}, priority=1)  # in prio: indexed, still counted
    sent: list[tuple[str, ...]] = []
    batch = Pipeline.execute

    async def pipeline(self: Pipeline, raise_on_error: bool = True) -> list[Any]:
        sent.extend(tuple(str(a) for a in c[0][:2]) for c in self.command_stack)
        return await batch(self, raise_on_error)

    monkeypatch.setattr(Pipeline, "execute", pipeline)
    pending_index = client.keys().status("pending")
    assert (await client.stats())["pending"] == 2
    assert not [c for c in sent if c[1:] == (pending_index,)]
    sent.clear()
    (counts,) = await client.job_counts([client.queue])
    assert counts.counts["pending"] == 2 and list(counts.counts) == [*STATUS_ORDER, "dead"]
    assert ("ZCARD", pending_index) not in sent
    assert ("ZRANGE", pending_index) in sent  # the oldest of the indexed ones, as before
