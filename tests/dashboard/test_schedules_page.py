"""The schedules page: each queue's schedules with next run, last run and a link to the last job."""

from __future__ import annotations

import httpx

from redisjobs import Client
from redisjobs.schedule_loop import ScheduleLoop

from .conftest import get_on_empty

CALL = {"fn": "tests.jobs:echo", "args": ["<script>alert('x')</script>"]}


async def test_schedules_page_lists_them_and_links_the_last_job(
    client: Client, dash: httpx.AsyncClient
) -> None:
    await client.schedule("beat", "call", CALL, every=1, limit=1, misfire="run_all")
    await client.schedule("nightly", "call", CALL, cron="0 3 * * *", tz="Europe/Berlin")
    now = int(await client.server_time() * 1000)
    await client.redis.zadd(client.keys().schedule_due, {"beat": now // 1000 * 1000})
    redis, scripts = await client._conn()
    await ScheduleLoop(redis, scripts, client.keys()).once()
    beat, nightly = await client.schedules()
    assert beat.finished and beat.last_job and not nightly.finished

    page = await dash.get("/schedules")
    assert page.status_code == 200
    html = page.text
    assert 'aria-current="page">Schedules' in html
    assert 'data-schedule="beat"' in html and 'data-schedule="nightly"' in html
    assert "every 1s" in html and "0 3 * * * (Europe/Berlin)" in html
    assert "finished" in html and "1/1" in html
    link = f'href="/queues/{client.queue}/jobs/{beat.last_job}"'
    assert link in html
    assert "<script>alert" not in html
    job = await dash.get(f"/queues/{client.queue}/jobs/{beat.last_job}")
    assert job.status_code == 200
    assert "Schedules</a>" in (await dash.get("/")).text  # in the navigation of every page


async def test_schedules_page_without_any() -> None:
    empty = await get_on_empty("/schedules")
    assert empty.status_code == 200 and "No schedules" in empty.text
