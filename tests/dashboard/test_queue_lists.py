"""A queue's page as an operator uses it: "All" by last change, filters by name, error text and
time, oldest first, Failed with errors and Retry, Scheduled with when and Run now, bulk actions;
the overview's Redis facts; a job's limit key and schedule; the history behind the charts."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from redisjobs import Client, JobFailed
from redisjobs.history import note_flow
from redisjobs.roundtrips import run
from tests.conftest import WorkerFactory

from .conftest import csrf_of


def _ids(page: str) -> list[str]:
    return re.findall(r'<tr data-job="([^"]+)">', page)


async def _failed(client: Client, worker: WorkerFactory, message: str) -> str:
    job = await client.enqueue("call", {"fn": "tests.jobs:fail", "args": [message]}, max_retries=0)
    with pytest.raises(JobFailed):
        await client.wait(job.id, timeout=10)
    return job.id


async def test_all_leads_with_what_changed_last_and_filters_narrow_it(
    client: Client, worker: WorkerFactory, dash: httpx.AsyncClient
) -> None:
    await worker(modules=["tests.jobs"])
    done = await client.enqueue("call", {"fn": "tests.jobs:add", "args": [1, 2]})
    await client.wait(done.id, timeout=10)
    # Each change in a millisecond of its own (Redis's clock): two in the same one tie.
    await asyncio.sleep(0.005)
    disk = await _failed(client, worker, "disk full")
    await asyncio.sleep(0.005)
    later = await client.enqueue("call", {"fn": "tests.jobs:add", "args": [2, 2]}, delay=3600)
    await asyncio.sleep(0.005)
    quota = await _failed(client, worker, "quota exceeded")
    base = f"/queues/{client.queue}"

    # All: by last change, newest first, whatever the status (not grouped by status)
    assert _ids((await dash.get(base)).text) == [quota, later.id, disk, done.id]
    assert _ids((await dash.get(f"{base}?sort=oldest")).text) == [done.id, disk, later.id, quota]
    failed = (await dash.get(f"{base}?status=failed")).text
    assert _ids(failed) == [quota, disk]
    assert "quota exceeded" in failed and "<th>Error</th>" in failed
    assert f'action="{base}/jobs/{disk}/retry"' in failed
    assert _ids((await dash.get(f"{base}?error=DISK")).text) == [disk]  # any case
    assert _ids((await dash.get(f"{base}?name=tests.jobs:add")).text) == [later.id, done.id]
    assert _ids((await dash.get(f"{base}?name=fail&status=failed&sort=oldest")).text) == [
        disk,
        quota,
    ]
    assert len(_ids((await dash.get(f"{base}?since=5m")).text)) == 4
    scheduled = (await dash.get(f"{base}?status=scheduled")).text
    assert (
        "<th>Runs at</th>" in scheduled and f'action="{base}/jobs/{later.id}/run-now"' in scheduled
    )
    # the tabs keep the filters
    assert (
        f'href="{base}?status=failed&amp;name=fail"' in (await dash.get(f"{base}?name=fail")).text
    )


async def test_run_now_and_bulk_buttons(
    client: Client, worker: WorkerFactory, dash: httpx.AsyncClient
) -> None:
    base = f"/queues/{client.queue}"
    later = [
        (await client.enqueue("call", {"fn": "tests.jobs:add", "args": [i, 1]}, delay=3600)).id
        for i in range(3)
    ]
    page = (await dash.get(f"{base}?status=scheduled")).text
    form = {"csrf": csrf_of(page), "next": f"{base}?status=scheduled"}
    one = await dash.post(f"{base}/jobs/{later[0]}/run-now", data=form)
    assert one.headers["location"] == f"{base}?status=scheduled&done=ran-now"
    assert (await client.get(later[0])).status == "pending"  # type: ignore[union-attr]

    ticked = {**form, "action": "run-now", "ids": later}  # a field per ticked box
    bulk = await dash.post(f"{base}/bulk", data=ticked)
    assert bulk.headers["location"] == f"{base}?status=scheduled&done=bulk-run-now&n=2&m=1"
    shown = (await dash.get(bulk.headers["location"])).text
    assert "2 selected jobs are pending now (1 skipped: not scheduled)." in shown
    assert [(await client.get(i)).status for i in later] == ["pending"] * 3  # type: ignore[union-attr]


async def test_the_overview_shows_redis_and_its_risks(
    client: Client, dash: httpx.AsyncClient, url: str
) -> None:
    await client.enqueue("call", {"fn": "tests.jobs:add", "args": [1, 2]})
    page = (await dash.get("/")).text
    body = (await dash.get("/api/queues")).json()
    if url.startswith("memory://"):
        assert "redis-facts" not in page and body["redis"] is None
        return
    # The test servers run without AOF: the overview says what that risks.
    assert "appendonly is no" in page and "<dt>Version</dt>" in page
    assert body["redis"]["appendonly"] is False and body["redis"]["version"]
    assert any("appendonly" in r for r in body["redis"]["risks"])
    assert 'Failed <span class="sub">all time</span>' in page  # told apart from Dead
    assert 'data-history="/history"' in page


async def test_a_job_page_names_its_limit_key_and_schedule(
    client: Client, dash: httpx.AsyncClient
) -> None:
    await client.schedule("nightly", "call", {"fn": "tests.jobs:add"}, every=3600)
    job = await client.enqueue(
        "call", {"fn": "tests.jobs:add"}, job_id="nightly@1700000000000", limit_key="acme"
    )
    page = (await dash.get(f"/queues/{client.queue}/jobs/{job.id}")).text
    assert "<dt>Limit key</dt>" in page and ">acme</a>" in page
    assert "<dt>Made by</dt>" in page and 'href="/schedules#schedule-nightly"' in page


async def test_the_history_behind_the_charts(client: Client, dash: httpx.AsyncClient) -> None:
    await client.enqueue("call", {"fn": "tests.jobs:add", "args": [1, 2]})
    await run(client.redis, note_flow(client.keys()))
    mine = (await dash.get(f"/queues/{client.queue}/history?minutes=360")).json()
    assert mine["queue"] == client.queue and len(mine["t"]) == 1 and mine["pending"] == [1]
    assert mine["last"]["completed"] == 0
    every = (await dash.get("/history")).json()
    assert every["queue"] is None and every["t"]
    api = await dash.get(f"/api/queues/{client.queue}/history?minutes=60")
    assert api.json()["pending"] == [1]
    assert (await dash.get(f"/api/queues/{client.queue}/history?minutes=0")).status_code == 422
