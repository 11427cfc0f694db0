"""The list pages (Workers, Dead letters, Schedules, Limits): what the Workers page shows, its
quiet and stop buttons, and each list's stream, which sends the list again as it changes."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import httpx
import pytest

from redisjobs import Client, Job, JobFailed, Worker
from redisjobs.dashboard import create_app
from redisjobs.dashboard.data import Summaries
from tests.conftest import WorkerFactory

from .conftest import csrf_of, live_http
from .test_sse import messages


async def _until(check: Any, timeout: float = 15.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.05)
    return found


async def _state(client: Client, worker_id: str, wanted: str) -> bool:
    return any(w.id == worker_id and w.state == wanted for w in await client.workers(gone=True))


async def test_the_workers_page_and_its_quiet_and_stop_buttons(
    client: Client, worker: WorkerFactory, dash: httpx.AsyncClient
) -> None:
    w = await worker(modules=["tests.jobs"], lease_ttl=1.0, concurrency=3)
    job = await client.enqueue("call", {"fn": "tests.jobs:sleep", "args": [30]})
    running = functools.partial(_running, client, w.id, job.id)
    await _until(running)
    page = await dash.get("/workers")
    assert page.status_code == 200
    html = page.text
    for shown in (w.id, "wk-live", client.queue, job.id, "call [tests.jobs:*]", "1/3"):
        assert shown in html, shown
    assert f'action="/workers/{w.id}/quiet"' in html and f'action="/workers/{w.id}/stop"' in html

    form = {"csrf": csrf_of(html), "next": "/workers"}
    quiet = await dash.post(f"/workers/{w.id}/quiet", data=form)
    assert quiet.status_code == 303 and quiet.headers["location"] == "/workers?done=worker-quiet"
    await _until(functools.partial(_state, client, w.id, "quiet"))
    html = (await dash.get("/workers")).text
    assert "wk-quiet" in html and f'action="/workers/{w.id}/quiet"' not in html

    await client.cancel(job.id)
    stop = await dash.post(f"/workers/{w.id}/stop", data=form)
    assert stop.headers["location"] == "/workers?done=worker-stop"
    await _until(functools.partial(_state, client, w.id, "offline"))
    html = (await dash.get("/workers")).text
    assert "wk-offline" in html and "stopped in the last hour" in html
    assert f'action="/workers/{w.id}/stop"' not in html  # nothing to stop any more
    gone = await dash.post(f"/workers/{w.id}/stop", data=form)
    assert gone.headers["location"] == "/workers?done=worker-gone"


async def _running(client: Client, worker_id: str, job_id: str) -> bool:
    return any(w.id == worker_id and job_id in w.running for w in await client.workers())


@pytest.mark.redis_only
async def test_the_workers_list_is_live(client: Client, worker: WorkerFactory) -> None:
    async with live_http(create_app(client)) as http:
        page = await http.get("/workers")
        assert 'data-stream="/workers/events"' in page.text
        async with http.stream("GET", "/workers/events") as response:
            seen: list[str] = []
            started: Worker | None = None
            async with asyncio.timeout(20):
                async for msg in messages(response):
                    assert msg["event"] == "fragment"
                    seen.append(msg["data"]["html"])
                    if started is None:
                        started = await worker(lease_ttl=1.0)  # a later list shows it
                    elif started.id in seen[-1]:
                        break
    assert len(seen) >= 2 and "wk-live" in seen[-1]


@pytest.mark.redis_only
async def test_the_dead_letters_list_is_live(client: Client, worker: WorkerFactory) -> None:
    await worker(modules=["tests.jobs"])
    app = create_app(client)
    async with live_http(app) as http, http.stream("GET", "/dead/events") as response:
        seen: list[str] = []
        job: Job | None = None
        async with asyncio.timeout(20):
            async for msg in messages(response):
                seen.append(msg["data"]["html"])
                if job is None:
                    job = await client.enqueue("call", {"fn": "tests.jobs:fail"}, max_retries=0)
                    with pytest.raises(JobFailed):
                        await client.wait(job.id, timeout=10)
                elif job.id in seen[-1]:
                    break
    assert "boom" in seen[-1]


async def test_a_quiet_worker_no_longer_serves_its_queue(
    client: Client, worker: WorkerFactory
) -> None:
    """For the overview's warning, `redisjobs health` and the workers gauge, a quiet worker is
    not one that serves: jobs wait and nothing will take them."""
    metrics = pytest.importorskip("redisjobs.metrics", reason="the metrics extra")
    w = await worker(lease_ttl=1.0, concurrency=3)
    assert await client.signal_worker(w.id, "quiet")
    await _until(functools.partial(_state, client, w.id, "quiet"))
    await client.enqueue("call", {"fn": "tests.jobs:add", "args": [1, 2]})  # nothing takes it
    summary = await Summaries(client, max_age=0).get(client.queue)
    assert summary.workers == 0 and summary.slots == 0
    assert summary.warning is not None and "no live worker" in summary.warning
    families = {f.name: f for f in await metrics.worker_families(client, [client.queue])}
    (sample,) = [
        s for s in families["redisjobs_workers"].samples if s.labels["queue"] == client.queue
    ]
    assert sample.value == 0
