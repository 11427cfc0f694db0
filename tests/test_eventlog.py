"""Following a queue's event log: cursors, lost entries, a deleted log, shared readers.

Events are written once, to the queue's capped log (``rj:{Q}:log``), and read from there live.
A reader that falls so far behind that the cap trims entries it never read, or whose log is
deleted, must say so (its followers look again) rather than go on as if nothing was missed.
The floods below add their entries in one script call, so the trim happens before any reader
can read: what a reader finds next is decided, not a race.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redisjobs import Client, Event, JobCancelled
from redisjobs.eventlog import BATCH, NAME, LogCursor
from redisjobs.keys import QueueKeys
from redisjobs.producing import wait_flow
from redisjobs.roundtrips import Received, run
from redisjobs.serialization import packb
from tests.conftest import WorkerFactory
from tests.jobs import add

FLOOD = """
for i = 1, tonumber(ARGV[1]) do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', 10000, '*', 'e', '\\128')
end
return 1
"""


async def flood(client: Client, keys: QueueKeys, n: int) -> None:
    """Add `n` entries (empty maps, no job's) to the queue's log in one script call, capped as
    the scripts cap it."""
    redis: Any = client.redis  # eval's typing differs across redis-py releases
    await redis.eval(FLOOD, 1, keys.log, n)


class Follower:
    """Follows the whole queue in a task: the events it got, and how often it was told to look
    again."""

    def __init__(self, client: Client) -> None:
        self.events: list[Event] = []
        self.rechecks = 0
        self.client = client
        self.task: asyncio.Task[None] | None = None

    async def _recheck(self) -> None:
        self.rechecks += 1

    async def _run(self) -> None:
        async for ev in self.client.events(on_recheck=self._recheck):
            self.events.append(ev)

    async def __aenter__(self) -> Follower:
        self.task = asyncio.create_task(self._run())
        await asyncio.sleep(0.3)  # its tail is open
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def until(check: Any, seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():
            await asyncio.sleep(0.02)


async def test_a_follower_behind_the_cap_is_told_to_look_again(client: Client) -> None:
    keys = client.keys()
    async with Follower(client) as follower:
        await flood(client, keys, 3 * 10_000)
        await until(lambda: follower.rechecks == 1)
        # and it goes on from what is left: a later event arrives, once
        job = await client.enqueue("call", None)
        await until(lambda: [e.job_id for e in follower.events] == [job.id])
        assert follower.rechecks == 1


async def test_a_follower_that_keeps_up_is_not_told_to_look_again(client: Client) -> None:
    keys = client.keys()
    async with Follower(client) as follower:
        await flood(client, keys, 2 * BATCH + 10)  # full reads, but nothing trimmed unread
        job = await client.enqueue("call", None)
        await until(lambda: [e.job_id for e in follower.events] == [job.id])
        assert follower.rechecks == 0


@pytest.mark.redis_only
async def test_a_log_deleted_while_the_reader_was_away_is_read_anew(client: Client) -> None:
    keys = client.keys()
    async with Follower(client) as follower:
        before = [await client.enqueue("call", None) for _ in range(3)]
        await until(lambda: len(follower.events) == 3)
        # As after a restart of a Redis that kept nothing, with a clock that went back: a new
        # log whose ids are below the reader's cursor, found when the reader reconnects.
        await client.redis.delete(keys.log)
        await client.redis.xadd(keys.log, {"e": b"\x80"}, id="1-1")
        for c in await client.redis.client_list():
            if c["name"] == NAME:
                await client.redis.client_kill_filter(_id=c["id"])
        # told to look again (for the lost read, then for the new log: one or two looks)
        await until(lambda: follower.rechecks >= 1)
        after = await client.enqueue("call", None)
        want = [j.id for j in [*before, after]]
        await until(lambda: [e.job_id for e in follower.events] == want)
        await asyncio.sleep(0.3)
        assert [e.job_id for e in follower.events] == want  # each event once


async def test_entries_that_are_no_events_stop_no_wait(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=[add])
    keys = client.keys()
    async with Follower(client) as follower:
        job = await client.enqueue("call", {"fn": "add", "args": {"a": 1, "b": 2}}, delay=0.5)
        waiting = asyncio.create_task(client.wait(job.id, timeout=20))
        await asyncio.sleep(0.1)
        wrong_ts = packb({"type": "completed", "job_id": job.id, "ts": "soon", "result": 0})
        for junk in (b"\xc1", b"\x93\x01\x02\x03", packb({"job_id": 7}), wrong_ts, b""):
            await client.redis.xadd(keys.log, {"e": junk})
        await client.redis.xadd(keys.log, {"x": b"no e field"})
        assert await waiting == 3
        await until(lambda: [e.type for e in follower.events][-1:] == ["completed"])
    # and the readers of the log as it is: a replay, a job's history, the rates
    replayed = [ev async for ev in client.replay(job.id, since="0")]
    assert [ev.type for ev in replayed] == ["enqueued", "started", "completed"]
    got = await client.get(job.id)
    assert got is not None
    assert [ev.type for ev in (await client.job_history(got)).events] == [
        "enqueued",
        "started",
        "completed",
    ]
    assert (await client.event_rates())[client.queue]["completed"] > 0


async def test_events_that_leave_out_what_their_entry_says_are_read(client: Client) -> None:
    """The next release's writers leave out `queue`, `ts` and `attempt` (docs/wire-format.md,
    "Events"): every reader of this one takes them from the log entry."""
    keys = client.keys()
    job = await client.enqueue("call", None)  # no worker: only the events below end it
    async with Follower(client) as follower:
        waiting = asyncio.create_task(client.wait(job.id, timeout=20))
        short = packb({"type": "completed", "job_id": job.id, "result": [1, "two"]})
        entry_id: Any = None
        while not waiting.done():  # until the wait's tail is open to read one
            entry_id = await client.redis.xadd(keys.log, {"e": short})
            await asyncio.wait({waiting}, timeout=0.1)
        assert await waiting == [1, "two"]
        await until(lambda: [e.type for e in follower.events][-1:] == ["completed"])
    assert entry_id is not None
    heard = follower.events[-1]
    replayed = [ev async for ev in client.replay(job.id, since="0")]
    got = await client.get(job.id)
    assert got is not None
    history = (await client.job_history(got)).events
    for ev in (heard, replayed[-1], history[-1]):
        assert (ev.type, ev.queue, ev.job_id, ev.attempt) == ("completed", client.queue, job.id, 0)
        assert ev.ts == int(ev.id.split("-")[0]) if ev.id else False
        assert ev.data == {"result": [1, "two"]}
    assert replayed[-1].id == entry_id.decode() and replayed[0].type == "enqueued"


async def test_a_client_following_many_queues_hears_each_at_once(client: Client) -> None:
    # more queues than a command pool has connections: every queue's reader blocks on its own
    queues = [f"{client.queue}-{i}" for i in range(100)]
    got: dict[str, list[str]] = {q: [] for q in queues}

    async def follow(queue: str) -> None:
        async for ev in client.events(queue=queue):
            got[queue].append(ev.job_id)

    tasks = [asyncio.create_task(follow(q)) for q in queues]
    try:
        await asyncio.sleep(1.0)  # every tail open
        for q in (queues[0], queues[-1], queues[50]):
            job = await client.enqueue("call", None, queue=q)
            await until(lambda q=q, job=job: got[q] == [job.id], 5)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_live_events_carry_their_log_id(client: Client) -> None:
    async with Follower(client) as follower:
        job = await client.enqueue("call", None)
        await until(lambda: len(follower.events) == 1)
    entries: Any = await client.redis.xrange(client.keys().log, "-", "+")
    (entry,) = entries
    assert follower.events[0].id == entry[0].decode()
    assert follower.events[0].job_id == job.id


async def test_many_waits_on_a_queue_share_one_reader(
    client: Client, worker: WorkerFactory, url: str
) -> None:
    await worker(functions=[add], concurrency=50)
    jobs = [
        await client.enqueue("call", {"fn": "add", "args": {"a": i, "b": 1}}) for i in range(200)
    ]
    results = await asyncio.gather(*(client.wait(j.id, timeout=30) for j in jobs))
    assert results == [i + 1 for i in range(200)]
    if url.startswith("redis"):
        readers = [c for c in await client.redis.client_list() if c["name"] == NAME]
        assert len(readers) == 1


async def test_a_wait_on_a_cancelled_job_ends_with_the_cancel(client: Client) -> None:
    job = await client.enqueue("call", None, delay=60)
    waiting = asyncio.create_task(client.wait(job.id, timeout=10))
    await asyncio.sleep(0.2)
    assert await client.cancel(job.id)
    with pytest.raises(JobCancelled):
        await waiting


async def test_a_wait_passes_over_events_older_than_its_state_read(
    client: Client, worker: WorkerFactory
) -> None:
    # A tail opened on a reader that has not read up to the log's end yet is handed the
    # entries in between: here the job's cancel, which a retry has undone since. The wait
    # must take the outcome of the run it waits for, not that cancel.
    job = await client.enqueue("call", {"fn": "add", "args": {"a": 2, "b": 3}}, delay=60)
    assert await client.cancel(job.id) and await client.retry(job.id)
    keys = client.keys()
    lagging: asyncio.Queue[Received] = asyncio.Queue()
    waiting = asyncio.create_task(run(client.redis, wait_flow(keys, job.id), receive=lagging.get))
    fed = await _feed(client, keys, lagging, "-")  # enqueued, cancelled, enqueued
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await worker(functions=[add])
    async with asyncio.timeout(10):
        while (await client.get(job.id)).status != "completed":  # type: ignore[union-attr]
            await asyncio.sleep(0.02)
    await _feed(client, keys, lagging, f"({fed}")
    assert await asyncio.wait_for(waiting, 5) == 5


async def _feed(client: Client, keys: QueueKeys, tail: asyncio.Queue[Received], start: str) -> str:
    """Put the log's entries from `start` on in `tail`, as a reader would; the last one's id."""
    entries: Any = await client.redis.xrange(keys.log, start, "+")
    for entry_id, fields in entries:
        tail.put_nowait((entry_id.decode(), fields[b"e"]))
    return str(entries[-1][0].decode())


def info(added: int, length: int, last: str = "9-9") -> dict[str, Any]:
    return {"entries-added": added, "length": length, "last-generated-id": last.encode()}


def test_log_cursor_counts_what_it_read() -> None:
    cursor = LogCursor(info(100, 50, "7-3"))
    assert (cursor.id, cursor.added) == ("7-3", 100)
    event = packb({"type": "enqueued", "queue": "q", "job_id": "j", "attempt": 0, "ts": 1})
    got = cursor.advance([(b"8-0", {b"e": event}), (b"8-1", {b"x": b"y"}), (b"8-2", {b"e": b"a"})])
    assert got == [("8-0", "j", event)]  # entries that hold no event are read past
    assert (cursor.id, cursor.added) == ("8-2", 103)
    assert not cursor.lost(info(103 + 5000, 5010))  # the first left is read already
    assert not cursor.lost(info(103 + 10_000, 10_000))  # the first left is the next due
    assert cursor.lost(info(103 + 10_001, 10_000))  # one past it: one was trimmed unread
    assert cursor.added == 104  # moved to what is left
    assert cursor.lost(info(10, 10))  # fewer than read: deleted and written anew
    assert (cursor.id, cursor.added) == ("0-0", 0)
    assert not cursor.lost(None) and LogCursor(None).id == "0-0"
