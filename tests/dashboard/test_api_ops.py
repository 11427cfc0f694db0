"""The API's operator actions over ASGI: workers with quiet and stop, retry, run now, delete,
pause, dead letters and bulk actions, each checked against what Redis then holds."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from redisjobs import Client, JobFailed, Worker
from tests.conftest import WorkerFactory

FAIL = {"kind": "call", "payload": {"fn": "tests.jobs:fail"}, "options": {"max_retries": 0}}


async def _until(check: Any, timeout: float = 15.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.05)
    return found


async def _mine(dash: httpx.AsyncClient, queue: str) -> list[dict[str, Any]]:
    """The live workers of `queue` (the registry is the whole redis-server's)."""
    found = (await dash.get("/api/workers")).json()["workers"]
    return [w for w in found if queue in w["queues"]]


async def _dead_job(client: Client, url: str) -> str:
    """A job that failed for good (its worker stopped since)."""
    job = await client.enqueue("call", {"fn": "tests.jobs:fail"}, max_retries=0)
    async with Worker(url, queue=client.queue, modules=["tests.jobs"], handle_signals=False):
        with pytest.raises(JobFailed):
            await client.wait(job.id, timeout=10)
    return job.id


async def test_workers_quiet_and_stop(
    client: Client, dash: httpx.AsyncClient, worker: WorkerFactory
) -> None:
    w = await worker(modules=["tests.jobs"], lease_ttl=1.0)
    listed = await _mine(dash, client.queue)
    assert [(x["id"], x["state"], x["queues"]) for x in listed] == [(w.id, "live", [client.queue])]
    assert listed[0]["allowed"] == "call [tests.jobs:*]" and listed[0]["stopped_at"] is None

    quiet = await dash.post(f"/api/workers/{w.id}/quiet")
    assert quiet.status_code == 202 and quiet.json() == {"worker": w.id, "signal": "quiet"}

    async def state(wanted: str) -> bool:
        found = (await dash.get("/api/workers?gone=true")).json()["workers"]
        return any(x["id"] == w.id and x["state"] == wanted for x in found)

    await _until(lambda: state("quiet"))
    assert (await dash.post(f"/api/workers/{w.id}/stop")).status_code == 202
    await _until(lambda: state("offline"))
    assert await _mine(dash, client.queue) == []
    gone = await dash.post(f"/api/workers/{w.id}/stop")
    assert gone.status_code == 404 and "no live worker" in gone.json()["error"]
    assert (await dash.post("/api/workers/a%20b/quiet")).status_code == 422
    assert (await dash.get("/api/workers?gone=maybe")).status_code == 422


async def test_retry_delete_and_the_dead_letters(
    client: Client, dash: httpx.AsyncClient, url: str
) -> None:
    dead = await _dead_job(client, url)
    page = (await dash.get(f"/api/queues/{client.queue}/dead")).json()
    assert page["count"] == 1 and [j["id"] for j in page["jobs"]] == [dead]
    assert "boom" in page["jobs"][0]["error"]

    retried = await dash.post(f"/api/jobs/{dead}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    assert retried.json()["attempt"] == 0
    again = await dash.post(f"/api/jobs/{dead}/retry")
    assert again.status_code == 409 and "pending" in again.json()["error"]
    assert (await dash.delete(f"/api/jobs/{dead}")).status_code == 409  # not finished

    second = await _dead_job(client, url)  # the retried one failed again too
    assert (await dash.get(f"/api/queues/{client.queue}/dead")).json()["count"] == 2
    all_back = await dash.post(f"/api/queues/{client.queue}/dead:retry")
    assert all_back.json() == {"queue": client.queue, "retried": 2}
    await client.cancel(second)
    deleted = await dash.delete(f"/api/jobs/{second}?queue={client.queue}")
    assert deleted.json() == {"deleted": second, "queue": client.queue}
    assert await client.get(second) is None
    assert (await dash.get(f"/api/jobs/{second}")).status_code == 404


async def test_run_now(client: Client, dash: httpx.AsyncClient) -> None:
    job = await client.enqueue("call", {"fn": "tests.jobs:add", "args": [1, 2]}, delay=3600)
    now = await dash.post(f"/api/jobs/{job.id}/run-now")
    assert now.status_code == 200 and now.json()["status"] == "pending"
    assert (await client.job_counts([client.queue]))[0].counts["scheduled"] == 0
    assert (await dash.post(f"/api/jobs/{job.id}/run-now")).status_code == 409


async def test_pause_and_resume(client: Client, dash: httpx.AsyncClient) -> None:
    base = f"/api/queues/{client.queue}"
    first = await dash.post(f"{base}/pause")
    assert first.json() == {"queue": client.queue, "paused": True, "changed": True}
    assert (await dash.post(f"{base}/pause")).json()["changed"] is False
    assert await client.is_paused()
    assert (await dash.post(f"{base}/resume")).json() == {
        "queue": client.queue,
        "paused": False,
        "changed": True,
    }
    assert not await client.is_paused()


async def test_bulk_actions(client: Client, dash: httpx.AsyncClient) -> None:
    later = [
        (await client.enqueue("call", {"fn": "tests.jobs:add", "args": [i, 1]}, delay=3600)).id
        for i in range(3)
    ]
    pending = (await client.enqueue("call", {"fn": "tests.jobs:add", "args": [0, 1]})).id
    url = f"/api/queues/{client.queue}/jobs:bulk"

    ran = await dash.post(url, json={"action": "run-now", "ids": [*later, pending, later[0]]})
    assert ran.json() == {
        "queue": client.queue,
        "action": "run-now",
        "done": later,
        "skipped": [pending],  # not scheduled; the repeated id is done once
    }
    cancelled = await dash.post(url, json={"action": "cancel", "ids": [*later, pending]})
    assert cancelled.json()["done"] == [*later, pending]
    deleted = await dash.post(url, json={"action": "delete", "ids": [*later, "nope"]})
    assert deleted.json()["done"] == later and deleted.json()["skipped"] == ["nope"]
    assert [await client.get(i) for i in later] == [None] * 3

    for bad in (
        {"action": "explode", "ids": [pending]},
        {"action": "cancel", "ids": []},
        {"action": "cancel", "ids": ["../etc"]},
        {"action": "cancel"},
        {"action": "cancel", "ids": [pending] * 1001},
    ):
        refused = await dash.post(url, json=bad)
        assert refused.status_code == 422, (bad, refused.text)
