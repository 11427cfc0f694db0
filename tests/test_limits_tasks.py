"""Limits declared on tasks: ``@app.task(rate_limit=..., limit_key=..., max_running=...)``."""

from __future__ import annotations

import time
from typing import Any

import pytest

from redisjobs import App, Client, Worker
from redisjobs.limits import Limit
from redisjobs.testing import unique_queue

from . import tasks_app


async def _key_of(client: Client, job_id: str) -> str | None:
    raw: Any = await client.redis.hget(client.keys().job(job_id), "limit_key")
    return None if raw is None else raw.decode()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate_limit": "10/w"}, "a rate is"),
        ({"rate_limit": "fast"}, "a rate is"),
        ({"max_running": 0}, "max_running must be"),
        ({"limit_key": "a b"}, "limit_key must be"),
    ],
)
def test_bad_task_limits_are_refused_when_declared(options: dict[str, Any], message: str) -> None:
    app = App("memory://task-limits")
    with pytest.raises(ValueError, match=message):
        app.task(name="t.area", **options)(tasks_app.area.fn)
    assert app.tasks == {}  # refused whole: the name is free again
    app.task(name="t.area")(tasks_app.area.fn)


async def test_task_keys_and_limits_reach_redis_and_the_jobs(url: str) -> None:
    queue = unique_queue()
    app = App(url, queue=queue)
    keyed = app.task(
        name="t.keyed", rate_limit="20/s", limit_key=lambda width, **_: f"w{width}", max_running=1
    )(tasks_app.area.fn)
    fleet = app.task(name="t.fleet", rate_limit="5/2s")(tasks_app.area.fn)
    plain = app.task(name="t.plain")(tasks_app.area.fn)
    async with Client(url, queue=queue) as client:
        assert await client.limits() == []  # upserted by the workers, at start
        async with Worker(url, app=app, handle_signals=False):
            jobs = [await keyed.enqueue(3), await keyed.enqueue(4, height=1)]
            jobs += await keyed.enqueue_many([(3,), (5,)])
            jobs += [await fleet.enqueue(1), await plain.enqueue(1)]
            jobs.append(await keyed.options(limit_key="chosen").enqueue(9))
            results = [await j.result(timeout=10) for j in jobs]
            assert await client.limits() == [
                Limit("t.fleet", 5.0, 2.0, None, None, None),
                Limit("t.keyed:*", 20.0, 1.0, None, 1, None),
            ]
        keys = [await _key_of(client, j.id) for j in jobs]
    assert results == [6, 4, 6, 10, 2, 2, 18]
    assert keys == ["t.keyed:w3", "t.keyed:w4", "t.keyed:w3", "t.keyed:w5", "t.fleet", None,
                    "chosen"]  # fmt: skip
    await app.aclose()


async def test_a_task_rate_limit_holds_across_its_keys_each(redis_url: str) -> None:
    queue = unique_queue()
    app = App(redis_url, queue=queue)
    task = app.task(name="t.slow", rate_limit="5/s", limit_key=lambda width, **_: width)(
        tasks_app.area.fn
    )
    async with Worker(redis_url, app=app, handle_signals=False, concurrency=4):
        t0 = time.monotonic()
        jobs = await task.enqueue_many([(k,) for k in (1, 2) for _ in range(10)])
        for j in jobs:
            await j.result(timeout=10)
        took = time.monotonic() - t0
    # each key: a burst of 5, then 5 a second: its 10 jobs take about 1 s, both keys at once
    assert 0.8 <= took <= 1.8, took
    await app.aclose()


def test_a_scheduled_limited_task_runs_under_its_limit_key() -> None:
    app = App("memory://task-limits-cron")

    @app.task(name="t.report", every=60, rate_limit="1/m", limit_key="nightly")
    def report() -> None: ...

    @app.task(name="t.sweep", cron="*/5 * * * *", max_running=1)
    def sweep() -> None: ...

    for task, key in ((report, "t.report:nightly"), (sweep, "t.sweep")):
        assert task.schedule is not None
        assert ("limit_key", key) in task.schedule.job.rules  # each tick's job carries it


def test_a_scheduled_task_whose_limit_key_needs_arguments_is_refused() -> None:
    app = App("memory://task-limits-cron-bad")
    with pytest.raises(TypeError, match="called with no arguments"):
        app.task(name="t.bill", every=60, limit_key=lambda customer, **_: customer)(lambda: None)
    assert app.tasks == {}  # refused whole
