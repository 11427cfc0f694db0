"""A graceful hand-back is announced: followers see `released`, then the job runs elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from redisjobs import Client, Event, Worker
from redisjobs.cli.follow import line
from redisjobs.cli.watch import State
from redisjobs.dashboard.present import event_details
from tests import jobs
from tests.conftest import log_events


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def worker(url: str, queue: str, grace: float) -> Worker:
    return Worker(
        url,
        queue=queue,
        functions=[jobs.sleep],
        handle_signals=False,
        poll_interval=0.05,
        grace_period=grace,
    )


async def test_a_job_handed_back_on_a_graceful_stop_is_released_then_runs_elsewhere(
    url: str, queue: str, client: Client
) -> None:
    seen: list[Event] = []

    async def follow() -> None:
        # from the log's start, so the follower is following (it opens its tail before it
        # replays) by the time it has seen the job start: `released` then arrives live
        async for ev in client.events(since="0"):
            seen.append(ev)

    follower = asyncio.create_task(follow())
    try:
        first = worker(url, queue, grace=0.1)
        async with first:
            job = await client.enqueue("call", {"fn": "sleep", "args": {"seconds": 1.0}})
            await until(lambda: [ev.type for ev in seen if ev.job_id == job.id][-1:] == ["started"])
            first.stop()  # the job outlives the grace period: it is handed back
        await until(lambda: any(ev.type == "released" for ev in seen))
        [released] = [ev for ev in seen if ev.type == "released"]
        assert released.id is not None  # live events carry their log id too
        assert (released.job_id, released.attempt) == (job.id, 1)
        assert released.data == {"worker": first.id, "requeued": True}

        second = worker(url, queue, grace=5)
        async with second:
            assert await client.wait(job.id, timeout=10) == "slept"
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower

    in_log = await log_events(client)
    assert released.id in [ev.id for ev in in_log if ev.type == "released"]
    logged = [(ev.type, ev.attempt, ev.data.get("worker")) for ev in in_log]
    assert logged == [
        ("enqueued", 0, None),
        ("started", 1, first.id),
        ("released", 1, first.id),
        ("started", 1, second.id),  # a hand-back burns no attempt
        ("completed", 1, None),
    ]
    # what the renderers make of it
    assert "released" in line(released) and "requeued=true" in line(released)
    assert event_details(released.data) == f"on {first.id} · back to the queue"
    state = State(job.id, "running", 40.0, "", 1)
    state.apply(released)
    assert (state.status, state.message) == ("pending", "its worker stopped; it runs again")
