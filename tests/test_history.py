"""A queue's history: noted once a minute by the workers, whoever comes first, bounded, and
read back as the charts' columns."""

from __future__ import annotations

import asyncio

from redis.typing import EncodableT

from redisjobs import Client
from redisjobs.dashboard.charts import overall_series, queue_series
from redisjobs.history import HISTORY_MINUTES, MINUTE_MS, Note, history_flow, note_flow, per_minute
from redisjobs.roundtrips import run
from redisjobs.testing import unique_queue
from tests.conftest import WorkerFactory


async def _entries(client: Client) -> list[tuple[bytes, dict[bytes, bytes]]]:
    found: list[tuple[bytes, dict[bytes, bytes]]] = await client.redis.xrange(  # type: ignore[assignment]
        client.keys().history
    )
    return found


async def test_one_note_a_minute_whoever_comes_first(client: Client) -> None:
    await client.enqueue("call", {"fn": "tests.jobs:add", "args": [1, 2]})
    # Many workers at once: the first note of the minute stands, the others are refused.
    minutes = await asyncio.gather(*(run(client.redis, note_flow(client.keys())) for _ in range(5)))
    assert len(set(minutes)) == 1 and minutes[0] % MINUTE_MS == 0
    (entry_id, fields), *more = await _entries(client)
    assert not more and entry_id == f"{minutes[0]}-0".encode()
    assert fields[b"enqueued"] == b"1" and fields[b"pending"] == b"1"
    assert int(fields[b"t"]) >= minutes[0] and b"latency" in fields
    (note,) = await client.history()
    assert note.totals["enqueued"] == 1 and note.depths["pending"] == 1 and note.latency >= 0


async def test_a_worker_notes_the_minute_with_its_refresh(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(modules=["tests.jobs"], lease_ttl=0.6)  # a refresh each 0.2 s
    job = await client.enqueue("call", {"fn": "tests.jobs:add", "args": [1, 2]})
    assert await client.wait(job.id, timeout=10) == 3
    async with asyncio.timeout(10):
        while not await _entries(client):
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.6)  # more refreshes of the same minute add nothing
    assert len(await _entries(client)) in (1, 2)  # 2 only when a minute turned meanwhile


async def test_the_history_is_bounded(client: Client) -> None:
    keys = client.keys()
    for minute in range(HISTORY_MINUTES + 200):
        await client.redis.xadd(
            keys.history, {"t": minute * MINUTE_MS}, id=f"{(minute + 1) * MINUTE_MS}-0"
        )
    await run(client.redis, note_flow(keys))  # a note trims as it writes
    assert await client.redis.xlen(keys.history) < HISTORY_MINUTES + 200


def _note(minute: int, completed: int, failed: int = 0, pending: int = 0) -> Note:
    totals = {"enqueued": 0, "completed": completed, "failed": failed}
    totals |= {"retried": 0, "cancelled": 0}
    depths = {"waiting": 0, "pending": pending, "scheduled": 0, "running": 0}
    # a note is read a little after its minute began: rates use the read times
    return Note(minute * MINUTE_MS + 7_000, totals, depths, latency=pending * 1.5)


def test_per_minute_is_the_difference_over_the_time_between_notes() -> None:
    notes = [_note(0, 0), _note(1, 30), _note(3, 90), _note(4, 5)]  # the last: obliterated
    assert per_minute(notes, "completed") == [None, 30.0, 30.0, None]
    assert per_minute([], "completed") == []


async def _write(client: Client, notes: list[Note], queue: str | None = None) -> None:
    keys = client.keys(queue)
    for n in notes:
        fields: dict[EncodableT, EncodableT] = {"t": n.t, "latency": int(n.latency * 1000)}
        for name, value in (*n.totals.items(), *n.depths.items()):
            fields[name] = value
        await client.redis.xadd(keys.history, fields, id=f"{n.t // MINUTE_MS * MINUTE_MS}-0")
    await client.redis.sadd(client.registry.queues, keys.queue)


async def test_the_charts_columns(client: Client) -> None:
    now = int(await client.server_time() * 1000) // MINUTE_MS - 30
    notes = [_note(now, 0), _note(now + 1, 40, 4, pending=3), _note(now + 10, 100, 4)]
    await _write(client, notes)
    assert (await run(client.redis, history_flow(client.keys(), 60))) == notes
    columns = await queue_series(client, client.queue, 60)
    # the third note is 9 minutes after the second: a point of nothing breaks the line
    assert columns["t"] == [
        notes[0].t / 1000,
        notes[1].t / 1000,
        (notes[1].t + MINUTE_MS) / 1000,
        notes[2].t / 1000,
    ]
    assert columns["processed"] == [None, 44.0, None, 60 / 9]
    assert columns["failed"] == [None, 4.0, None, 0.0]
    assert columns["pending"] == [0, 3, None, 0]
    assert columns["latency"] == [0.0, 4.5, None, 0.0]
    assert columns["last"] == {"t": notes[2].t / 1000, "completed": 100, "failed": 4}
    assert (await queue_series(client, client.queue, 5))["t"] == []  # all older than that


async def test_every_queue_summed_minute_by_minute(client: Client) -> None:
    now = int(await client.server_time() * 1000) // MINUTE_MS - 5
    other = unique_queue("second")
    await _write(client, [_note(now, 0, pending=1), _note(now + 1, 10, pending=2)])
    await _write(client, [_note(now, 5, pending=4), _note(now + 1, 25, 5, pending=1)], other)
    columns = await overall_series(client, 60)
    mine = columns["t"].index((now + 1) * MINUTE_MS / 1000)
    assert columns["processed"][mine] >= 10 + 25  # (other tests' queues may add theirs)
    assert columns["pending"][mine] >= 3 and columns["latency"][mine] >= 3.0
