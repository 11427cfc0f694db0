"""Jobs are shown by what they run: lists lead with the call, the job page reads it in full,
and the API's jobs carry their name."""

from __future__ import annotations

import re

import httpx
import pytest

from redisjobs import Client, JobFailed
from redisjobs.dashboard import openapi
from redisjobs.jobtext import SHORT
from tests.conftest import WorkerFactory
from tests.jobs import fail

XSS = "<script>alert('x')</script>"
RESIZE = {"fn": "myapp.tasks:resize", "args": ["a.png"], "kwargs": {"width": 640}}
RESIZE_HTML = "myapp.tasks:resize(&#39;a.png&#39;, width=640)"


def _row(page: str, job_id: str) -> str:
    match = re.search(rf'<tr data-job="{job_id}">(.*?)</tr>', page, re.DOTALL)
    assert match, f"no row of {job_id}"
    return match.group(1)


def _cells(row: str) -> list[str]:
    return re.findall(r'<td class="([^"]*)"', row)


async def test_queue_list_leads_with_the_call_and_the_page_reads_it_whole(
    client: Client, dash: httpx.AsyncClient
) -> None:
    resize = await client.enqueue("call", RESIZE)
    long_args = ["x" * 200, list(range(50))]
    big = await client.enqueue("call", {"fn": "myapp.tasks:mix", "args": long_args})
    hostile = await client.enqueue("call", {"fn": "m:f", "args": [XSS]})
    hook = await client.enqueue(
        "http", {"url": "https://user:SECRET-PW@api.example.com/h?token=SECRET-TOKEN"}
    )

    page = (await dash.get(f"/queues/{client.queue}")).text
    assert XSS not in page and "&lt;script&gt;" in page  # arguments are escaped
    row = _row(page, resize.id)
    assert _cells(row)[:3] == ["pick", "call", "id small"]  # a tick box, the call, the id
    assert f"<code>{RESIZE_HTML}</code>" in row
    shown = re.search(r"<code>(myapp\.tasks:mix.*?)</code>", _row(page, big.id))
    assert shown and len(shown.group(1).replace("&#39;", "'")) <= SHORT
    assert "<code>http POST api.example.com/h</code>" in _row(page, hook.id)  # no secrets
    # (markers too long for the row's random CSRF token to spell by chance, as it did 'pw')
    assert "SECRET-PW" not in _row(page, hook.id) and "SECRET-TOKEN" not in _row(page, hook.id)
    assert "token=" not in _row(page, hook.id)
    assert hostile.id in page

    job = (await dash.get(f"/queues/{client.queue}/jobs/{big.id}")).text
    full = "myapp.tasks:mix(&#39;" + "x" * 200 + "&#39;, [0, 1, 2"
    assert f'<p class="job-call"><code>{full}' in job and "47, 48, 49])</code>" in job
    assert "<dt>Name</dt><dd><code>myapp.tasks:mix</code></dd>" in job
    assert "<title>myapp.tasks:mix · job" in job


async def test_dead_letters_lead_with_the_call(
    client: Client, worker: WorkerFactory, dash: httpx.AsyncClient
) -> None:
    await worker(functions=[fail])
    dead = await client.enqueue("call", {"fn": "fail", "args": ["disk full"]}, max_retries=0)
    with pytest.raises(JobFailed, match="disk full"):
        await client.wait(dead.id, timeout=10)
    row = _row((await dash.get("/dead")).text, dead.id)
    assert _cells(row)[:3] == ["call", "id small", "error-cell"]
    assert "<code>fail(&#39;disk full&#39;)</code>" in row


async def test_api_jobs_carry_their_name(client: Client, dash: httpx.AsyncClient) -> None:
    body = {"kind": "call", "payload": RESIZE}
    created = (await dash.post(f"/api/queues/{client.queue}/jobs", json=body)).json()
    assert created["name"] == "myapp.tasks:resize"
    assert (await dash.get(f"/api/jobs/{created['id']}")).json()["name"] == "myapp.tasks:resize"
    await client.enqueue("http", {"url": "https://example.com/"})
    listed = (await dash.get(f"/api/queues/{client.queue}/jobs")).json()["jobs"]
    assert sorted(j["name"] for j in listed) == ["http", "myapp.tasks:resize"]
    schema = openapi.document("/api")["components"]["schemas"]["Job"]
    assert schema["properties"]["name"]["type"] == "string" and "name" in schema["required"]
