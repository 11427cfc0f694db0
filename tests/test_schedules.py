"""Schedules on both backends: the idempotent upsert, unschedule, the listing, limit and end,
hostile input, misfire after an outage, DST end to end, the sync client and the app's tasks."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgpack
import pytest

from redisjobs import App, Client, Worker
from redisjobs.errors import CallRefused, InvalidJobId
from redisjobs.schedule_loop import ScheduleLoop
from redisjobs.schedule_spec import ScheduleSpec
from redisjobs.sync import Client as SyncClient
from tests.conftest import WorkerFactory, log_events
from tests.faults.audit import audit
from tests.jobs import echo

CALL = {"fn": "tests.jobs:echo", "args": [1]}
ZONE = ZoneInfo("Europe/Berlin")


async def _loop(client: Client) -> ScheduleLoop:
    redis, scripts = await client._conn()
    return ScheduleLoop(redis, scripts, client.keys())


async def _set_due(client: Client, schedule_id: str, due_ms: int) -> None:
    """As if every worker had been away since `due_ms`."""
    await client.redis.zadd(client.keys().schedule_due, {schedule_id: due_ms})


async def _ticks(client: Client) -> list[int]:
    """The ticks of the jobs made so far, from the ``enqueued`` events (each once)."""
    ids = [ev.job_id for ev in await log_events(client) if ev.type == "enqueued"]
    assert len(ids) == len(set(ids))
    return sorted(int(job_id.rsplit("@", 1)[1]) for job_id in ids)


async def _until(predicate: Any, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def test_upsert_is_idempotent_and_a_change_recomputes(client: Client) -> None:
    assert await client.schedule("nightly", "call", CALL, cron="0 3 * * *", tz="Europe/Berlin")
    (first,) = await client.schedules()
    assert not await client.schedule("nightly", "call", CALL, cron="0 3 * * *", tz="Europe/Berlin")
    assert await client.schedules() == [first]  # same next run, nothing written
    assert first.next_run is not None and first.next_run.astimezone(ZONE).hour == 3
    assert (first.cron, first.tz, first.every, first.runs, first.last_job) == (
        "0 3 * * *",
        "Europe/Berlin",
        None,
        0,
        None,
    )
    assert await client.schedule("nightly", "call", CALL, cron="0 5 * * *", tz="Europe/Berlin")
    (changed,) = await client.schedules()
    assert changed.next_run is not None and changed.next_run.astimezone(ZONE).hour == 5
    assert await client.schedule("nightly", "call", {"fn": "tests.jobs:echo"}, cron="0 5 * * *")
    assert (await client.schedules())[0].payload == {"fn": "tests.jobs:echo"}


async def test_unschedule_removes_it_and_its_keys(client: Client) -> None:
    await client.schedule("a", "call", CALL, every=60)
    await client.schedule("b", "call", CALL, every=60, queue=f"{client.queue}-other")
    assert [s.id for s in await client.schedules()] == ["a"]
    assert await client.unschedule("a")
    assert not await client.unschedule("a")
    assert await client.schedules() == []
    assert await client.redis.exists(client.keys().schedule_state("a")) == 0
    assert await client.redis.zcard(client.keys().schedule_due) == 0
    assert [s.id for s in await client.schedules(f"{client.queue}-other")] == ["b"]
    assert client.queue in await client.queues()  # listed for the CLI and the dashboard


BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"schedule_id": "a:b", "every": 1}, InvalidJobId, "invalid job id"),
    ({"schedule_id": "x" * 187, "every": 1}, InvalidJobId, "at most 186"),
    ({"schedule_id": "{q}", "every": 1}, InvalidJobId, "invalid job id"),
    ({}, ValueError, "exactly one of"),
    ({"every": 1, "cron": "* * * * *"}, ValueError, "exactly one of"),
    ({"cron": "61 * * * *"}, ValueError, "invalid cron"),
    ({"cron": "* * * * *", "tz": "Mars/Olympus"}, ValueError, "unknown time zone"),
    ({"cron": "* * * * *", "tz": "../../etc/passwd"}, ValueError, "time zone"),
    ({"every": 0}, ValueError, "every must be"),
    ({"every": -5}, ValueError, "every must be"),
    ({"every": float("nan")}, ValueError, "every must be"),
    ({"every": True}, ValueError, "every must be"),
    ({"every": "5"}, ValueError, "every must be"),
    ({"every": 1, "limit": 0}, ValueError, "limit"),
    ({"every": 1, "limit": 2.5}, ValueError, "limit"),
    ({"every": 1, "misfire": "sometimes"}, ValueError, "misfire"),
    ({"every": 1, "start_at": "tomorrow"}, TypeError, "start_at"),
    (
        {"every": 1, "start_at": datetime(2030, 1, 2), "end_at": datetime(2030, 1, 1)},
        ValueError,
        "end_at",
    ),
    ({"every": 1, "job_id": "x"}, TypeError, "unknown schedule option"),
    ({"every": 1, "max_retries": -1}, ValueError, "max_retries"),
    ({"every": 1, "priority": "high"}, TypeError, "priority"),
]


@pytest.mark.parametrize(("given", "error", "says"), BAD)
async def test_hostile_input_is_refused_before_anything_is_written(
    client: Client, given: dict[str, Any], error: type[Exception], says: str
) -> None:
    args = {"schedule_id": "s", **given}
    with pytest.raises(error, match=says):
        await client.schedule(args.pop("schedule_id"), "call", CALL, **args)
    with pytest.raises(CallRefused):
        await client.schedule("s", "call", {"fn": "_private:x"}, every=1)
    assert await client.schedules() == []
    with pytest.raises(InvalidJobId):
        await client.unschedule("a b")


async def test_a_worker_fires_until_the_limit_then_it_is_finished(
    client: Client, worker: WorkerFactory
) -> None:
    # run_all: a worker stalled past the grace by a busy host still makes every tick's job
    await client.schedule("thrice", "call", CALL, every=0.1, limit=3, misfire="run_all")
    await worker(functions=[echo])

    async def finished() -> bool:
        (s,) = await client.schedules()
        return s.finished

    await _until(finished)
    await asyncio.sleep(0.3)
    ticks = await _ticks(client)
    assert len(ticks) == 3 and ticks == list(range(ticks[0], ticks[0] + 300, 100))
    (s,) = await client.schedules()
    assert (s.runs, s.limit, s.next_run, s.last_job) == (3, 3, None, f"thrice@{ticks[-1]}")
    assert s.last_run is not None
    # the same spec again does not revive it; a raised limit does, runs kept
    assert not await client.schedule("thrice", "call", CALL, every=0.1, limit=3, misfire="run_all")
    assert await client.schedule("thrice", "call", CALL, every=0.1, limit=4, misfire="run_all")
    await _until(finished)
    assert len(await _ticks(client)) == 4


async def test_end_at_stops_it(client: Client, worker: WorkerFactory) -> None:
    now = datetime.fromtimestamp(await client.server_time(), UTC)
    end = now + timedelta(seconds=0.5)
    await client.schedule("brief", "call", CALL, every=0.1, end_at=end, misfire="run_all")
    await worker(functions=[echo])

    async def finished() -> bool:
        return (await client.schedules())[0].finished

    await _until(finished)
    ticks = await _ticks(client)
    end_ms = (now + timedelta(seconds=0.5)).timestamp() * 1000
    assert ticks and ticks[-1] <= end_ms < ticks[-1] + 100
    assert all(b - a == 100 for a, b in itertools.pairwise(ticks))


@pytest.mark.parametrize(("misfire", "expected"), [("skip", 0), ("run_once", 1), ("run_all", 10)])
async def test_misfire_after_every_worker_was_away(
    client: Client, misfire: str, expected: int
) -> None:
    await client.schedule("m", "call", CALL, every=10, misfire=misfire)  # type: ignore[arg-type]
    now = int(await client.server_time() * 1000)
    last = now // 10_000 * 10_000
    if now - last > 4_000:  # keep the latest tick within the grace (5 s): on time
        await asyncio.sleep((10_000 - (now - last)) / 1000 + 0.05)
        last += 10_000
    await _set_due(client, "m", last - 100_000)  # ten ticks missed
    loop = await _loop(client)
    while await loop.once() == 0:
        pass
    ticks = await _ticks(client)
    missed = [t for t in ticks if t < last]
    assert len(missed) == expected and ticks[-1] == last  # the on-time tick always fires
    if misfire == "run_once":
        assert missed == [last - 10_000]  # the latest missed one
    if misfire == "run_all":
        assert missed == list(range(last - 100_000, last, 10_000))
    (s,) = await client.schedules()
    assert s.runs == len(ticks) and s.next_run == datetime.fromtimestamp(
        (last + 10_000) / 1000, UTC
    )


async def test_dst_days_end_to_end(client: Client) -> None:
    """A daily 02:30 in Berlin, fired by the real scripts across both DST changes of 2026 (the
    ticks are in the past: a catch-up with run_all makes every one of them)."""
    start = datetime(2026, 3, 27, tzinfo=UTC)
    end = datetime(2026, 3, 31, tzinfo=UTC)
    await client.schedule(
        "dst",
        "call",
        CALL,
        cron="30 2 * * *",
        tz="Europe/Berlin",
        start_at=start,
        end_at=end,
        misfire="run_all",
    )
    autumn_start, autumn_end = (
        datetime(2026, 10, 24, tzinfo=UTC),
        datetime(2026, 10, 27, tzinfo=UTC),
    )
    await client.schedule(
        "fall",
        "call",
        CALL,
        cron="30 2 * * *",
        tz="Europe/Berlin",
        start_at=autumn_start,
        end_at=autumn_end,
        misfire="run_all",
    )
    for sid, first in (("dst", "2026-03-27T01:30"), ("fall", "2026-10-24T00:30")):
        await _set_due(
            client, sid, int(datetime.fromisoformat(first + "+00:00").timestamp() * 1000)
        )
    loop = await _loop(client)
    while await loop.once() == 0:
        pass
    shown = [
        datetime.fromtimestamp(t / 1000, UTC).strftime("%m-%d %H:%M") for t in await _ticks(client)
    ]
    assert shown == [
        "03-27 01:30",
        "03-28 01:30",
        "03-29 01:00",
        "03-30 00:30",  # 03:00 CEST on the 29th
        "10-24 00:30",
        "10-25 00:30",
        "10-26 01:30",  # once on the 25th
    ]
    assert all(s.finished for s in await client.schedules())


async def test_racing_loops_make_one_job_per_tick(client: Client) -> None:
    await client.schedule("race", "call", CALL, every=1, misfire="run_all")
    now = int(await client.server_time() * 1000)
    await _set_due(client, "race", now // 1000 * 1000 - 250_000)  # 250 ticks to catch up
    loops = [await _loop(client) for _ in range(4)]

    async def drain(loop: ScheduleLoop) -> None:
        while await loop.once() == 0:
            pass

    await asyncio.gather(*(drain(loop) for loop in loops))
    ticks = await _ticks(client)
    assert ticks == list(range(ticks[0], ticks[0] + 1000 * len(ticks), 1000))
    assert len(ticks) >= 251


async def test_sync_client(url: str, client: Client) -> None:
    def work() -> None:
        with SyncClient(url, queue=client.queue) as sync:
            assert sync.schedule("s", "call", CALL, every=30, max_retries=2)
            assert not sync.schedule("s", "call", CALL, every=30, max_retries=2)
            assert [s.every for s in sync.schedules()] == [30.0]
            assert sync.unschedule("s") and sync.schedules() == []

    await asyncio.to_thread(work)


async def test_an_apps_scheduled_task_is_upserted_by_its_worker(url: str, client: Client) -> None:
    app = App(url, queue=client.queue)

    @app.task(every=0.1, name="tests.beat")
    async def beat() -> str:
        return "tick"

    assert beat.schedule is not None and beat.schedule.schedule_id == "tests.beat"
    async with Worker(url, app=app, handle_signals=False, poll_interval=0.05):
        await _until(lambda: _has_jobs(client, 2))
        (s,) = await client.schedules()
        assert (s.id, s.kind, s.payload) == ("tests.beat", "call", {"fn": "tests.beat"})
        assert s.every == 0.1 and s.last_job is not None
        assert await client.wait(s.last_job, timeout=10) == "tick"  # the task ran
    await app.aclose()


async def _has_jobs(client: Client, n: int) -> bool:
    return len(await _ticks(client)) >= n


def test_a_task_is_checked_where_it_is_declared() -> None:
    app = App("memory://")
    with pytest.raises(TypeError, match="no arguments"):

        @app.task(every=5, name="jobs:needs")
        def needs(x: int) -> int:
            return x

    with pytest.raises(ValueError, match="invalid cron"):

        @app.task(cron="every day", name="jobs:bad")
        def bad() -> None: ...

    @app.task(
        cron="*/5 * * * *", tz="Europe/Berlin", misfire="run_once", retries=2, name="jobs:fine"
    )
    def fine() -> None: ...

    assert fine.schedule is not None
    assert fine.schedule.schedule_id == "jobs.fine"  # a task name's ':' is no id's
    assert fine.schedule.job.max_retries == 2
    assert [t.name for t in app.tasks.values()] == [fine.name]  # the refused ones are not kept
    assert app.schedules("default") == [fine.schedule] and app.schedules("other") == []


async def test_the_keyspace_audit_knows_schedules(client: Client, worker: WorkerFactory) -> None:
    await client.schedule("audited", "call", CALL, every=0.1, limit=2)
    await client.schedule("waiting", "call", CALL, cron="0 3 * * *")
    await worker(functions=[echo])
    await _until(lambda: _has_jobs(client, 2))
    await asyncio.sleep(0.3)  # the two jobs run
    assert await audit(client.redis, client.queue) == []
    await client.redis.hdel(client.keys().schedules, "waiting")  # a spec lost by hand
    assert await audit(client.redis, client.queue) == ["schedule waiting is due but has no spec"]


async def test_a_worker_upserts_the_schedules_of_each_queue_of_its_app(
    url: str, client: Client
) -> None:
    app = App(url, queue=client.queue)
    other = f"{client.queue}-b"

    @app.task(every=3600, name="tests.here")
    def here() -> None: ...

    @app.task(cron="0 4 * * *", queue=other, name="tests.there")
    def there() -> None: ...

    async with Worker(url, app=app, handle_signals=False, poll_interval=0.05) as w:
        assert w.queues == [client.queue, other]

        async def both() -> bool:
            return bool(await client.schedules()) and bool(await client.schedules(other))

        await _until(both)
    assert [s.id for s in await client.schedules()] == ["tests.here"]
    assert [s.id for s in await client.schedules(other)] == ["tests.there"]
    await app.aclose()


async def test_a_spec_written_by_something_else_is_logged_not_fatal(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    await client.schedule("good", "call", CALL, every=60, misfire="run_all")
    keys = client.keys()
    await client.redis.hset(keys.schedules, "junk", b"\xc1 not msgpack")
    await client.redis.hset(keys.schedule_state("junk"), "rev", 1)
    now = int(await client.server_time() * 1000)
    await _set_due(client, "junk", now - 10_000)
    await _set_due(client, "good", now // 60_000 * 60_000)
    loop = await _loop(client)
    assert await loop.once() == 0  # the good one fired
    assert 0 < await loop.once() <= 5  # only the junk is due: no busy loop
    assert "schedule 'junk': unreadable spec" in caplog.text
    assert [s.id for s in await client.schedules()] == ["good"]  # listed without the junk
    assert len(await _ticks(client)) == 1


async def test_an_upsert_wakes_sleeping_workers(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=[echo])
    await asyncio.sleep(0.5)  # its schedule loop found nothing and sleeps (4-5 s)
    began = asyncio.get_running_loop().time()
    await client.schedule("soon", "call", CALL, every=0.1, limit=1)
    await _until(lambda: _has_jobs(client, 1), timeout=3)
    assert asyncio.get_running_loop().time() - began < 1.5


async def test_a_unique_schedule_makes_no_job_while_the_last_one_is_unfinished(
    client: Client,
) -> None:
    await client.schedule(
        "solo", "call", CALL, every=1, misfire="run_all", unique="until_done", keep_completed=60
    )
    now = int(await client.server_time() * 1000)
    await _set_due(client, "solo", now // 1000 * 1000 - 3_000)
    loop = await _loop(client)
    while await loop.once() == 0:
        pass
    (s,) = await client.schedules()
    assert s.runs >= 4  # every tick ran ...
    (made,) = await _ticks(client)  # ... but only the first made a job: it has not run yet
    job = await client.get(f"solo@{made}")
    assert job is not None and job.status == "pending"


def test_a_spec_stored_with_an_older_row_decodes_with_its_rules() -> None:
    """Rows stored before the rules became pairs (eight values in fixed places, or none at all)
    decode to today's row: only the rules they set, as pairs."""
    options = {"unique": "until_done", "keep_failed": 60}
    spec = ScheduleSpec.build("s", "call", CALL, every=5, options=options)
    stored = msgpack.unpackb(spec.encode())
    assert ScheduleSpec.decode("s", spec.encode()) == spec
    fixed, rules = stored["job"][:11], dict(spec.job.rules)
    v3 = [*fixed, 0, 0, 60_000, 0, "until_done", rules["unique_key"], 3_600_000, 0]
    older = ScheduleSpec.decode("s", msgpack.packb({**stored, "job": v3}))
    assert dict(older.job.rules) == rules and older.job[:12] == spec.job[:12]
    v2 = ScheduleSpec.decode("s", msgpack.packb({**stored, "job": fixed}))
    assert v2.job == spec.job._replace(rules=())
    with pytest.raises(ValueError, match="unreadable spec"):  # neither: refused
        ScheduleSpec.decode("s", msgpack.packb({**stored, "job": [*fixed, 0, 0]}))
