"""The pages over ASGI: every view renders, the buttons work, and nothing gets through escaped."""

from __future__ import annotations

import asyncio

import httpx

from redisjobs import Client
from redisjobs.dashboard import create_app
from redisjobs.testing import free_port
from tests.conftest import WorkerFactory
from tests.jobs import add, echo, fail, until_cancelled

from .conftest import BASE, AppFactory, csrf_of

XSS = "<script>alert('x')</script>"


async def _finish(client: Client, job_id: str, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while True:
            job = await client.get(job_id)
            if job is not None and job.status.is_final:
                return
            await asyncio.sleep(0.02)


async def _populated(client: Client, worker: WorkerFactory) -> dict[str, str]:
    """A queue with a completed, a dead, a pending and a scheduled job; returns their ids."""
    await worker(functions=[echo, fail])
    done = await client.enqueue("call", {"fn": "echo", "args": [{"html": XSS}]})
    dead = await client.enqueue("call", {"fn": "fail", "args": [XSS]})
    await _finish(client, done.id)
    await _finish(client, dead.id)
    pending = await client.enqueue(XSS, {"note": XSS}, queue=f"{client.queue}-idle")
    later = await client.enqueue("call", {"fn": "echo", "args": [1]}, delay=3600)
    return {"done": done.id, "dead": dead.id, "pending": pending.id, "later": later.id}


def _html(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert XSS not in response.text
    return response.text


async def test_every_view_renders_and_escapes(
    client: Client, worker: WorkerFactory, dash: httpx.AsyncClient
) -> None:
    ids = await _populated(client, worker)
    q, idle = client.queue, f"{client.queue}-idle"

    overview = _html(await dash.get("/"))
    assert f'data-queue="{q}"' in overview and f'data-queue="{idle}"' in overview
    assert "pending and no live worker serves this queue" in overview  # the idle queue

    page = _html(await dash.get(f"/queues/{q}"))
    assert ids["done"] in page and ids["later"] in page
    for status in ("completed", "failed", "scheduled"):
        assert _html(await dash.get(f"/queues/{q}?status={status}")).count('<tr data-job="') == 1
    kind = _html(await dash.get(f"/queues/{idle}", params={"kind": XSS}))
    assert ids["pending"] in kind and "&lt;script&gt;" in kind

    job = _html(await dash.get(f"/queues/{q}/jobs/{ids['done']}"))
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in job  # the result, escaped
    assert "completed" in job and "Events" in job and "data-stream" not in job
    failed = _html(await dash.get(f"/queues/{q}/jobs/{ids['dead']}"))
    assert "RuntimeError" in failed and "Retry" in failed and "Delete" in failed
    waiting = _html(await dash.get(f"/queues/{idle}/jobs/{ids['pending']}"))
    assert "data-stream=" in waiting and "Cancel job" in waiting
    detail = await dash.get(f"/queues/{q}/jobs/{ids['dead']}/detail")
    assert detail.status_code == 200 and "RuntimeError" in detail.text and XSS not in detail.text

    workers = _html(await dash.get("/workers"))
    assert "1 live" in workers or ">1</b> live" in workers
    dead = _html(await dash.get("/dead"))
    assert ids["dead"] in dead and "Retry all" in dead
    assert ids["dead"] in _html(await dash.get("/dead", params={"queue": q}))


async def test_static_assets(dash: httpx.AsyncClient) -> None:
    css = await dash.get("/static/dashboard.css")
    js = await dash.get("/static/dashboard.js")
    assert css.status_code == js.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "javascript" in js.headers["content-type"]


async def test_missing_things_are_404_pages(client: Client, dash: httpx.AsyncClient) -> None:
    job = await client.enqueue("call", None)
    await client.redis.rpush(client.keys().job_log(job.id), "a log line")
    for path in (
        "/queues/never-used",
        "/queues/bad%20name",
        f"/queues/{client.queue}/jobs/nope",
        f"/queues/{client.queue}/jobs/{job.id}:log",  # another key of the job, not a job
        f"/jobs?id={job.id}:log",
        "/jobs?id=nope",
        "/no/such/page",
    ):
        response = await dash.get(path)
        assert response.status_code == 404, path
        assert "<h1>404</h1>" in response.text


async def test_search_by_id(client: Client, dash: httpx.AsyncClient) -> None:
    job = await client.enqueue("call", None)
    found = await dash.get("/jobs", params={"id": job.id})
    assert found.status_code == 303
    assert found.headers["location"] == f"/queues/{client.queue}/jobs/{job.id}"
    in_queue = await dash.get(f"/queues/{client.queue}", params={"id": job.id})
    assert in_queue.headers["location"] == f"/queues/{client.queue}/jobs/{job.id}"


async def test_queue_filters_and_pages(client: Client, dash: httpx.AsyncClient) -> None:
    await client.enqueue_many([("a", i) for i in range(60)] + [("b", i) for i in range(5)])
    q = f"/queues/{client.queue}"
    first = await dash.get(q)
    assert first.text.count('<tr data-job="') == 50 and "cursor=50" in first.text
    second = await dash.get(q, params={"cursor": 50})
    assert second.text.count('<tr data-job="') == 15 and "Newer" in second.text
    only_b = await dash.get(q, params={"kind": "b"})
    assert only_b.text.count('<tr data-job="') == 5


async def test_cancel_button(
    client: Client, worker: WorkerFactory, dash: httpx.AsyncClient
) -> None:
    await worker(functions=[until_cancelled])
    job = await client.enqueue("call", {"fn": "until_cancelled"})
    async with asyncio.timeout(10):
        while (await client.get(job.id)).status != "running":  # type: ignore[union-attr]
            await asyncio.sleep(0.02)
    page = await dash.get(f"/queues/{client.queue}/jobs/{job.id}")
    form = {"csrf": csrf_of(page.text), "next": f"/queues/{client.queue}"}
    response = await dash.post(f"/queues/{client.queue}/jobs/{job.id}/cancel", data=form)
    assert response.status_code == 303
    assert response.headers["location"] == f"/queues/{client.queue}?done=cancel-requested"
    await _finish(client, job.id)
    assert (await client.get(job.id)).status == "cancelled"  # type: ignore[union-attr]
    shown = await dash.get(response.headers["location"])
    assert "Cancel requested" in shown.text


async def test_forms_need_the_token_and_our_origin(client: Client, dash: httpx.AsyncClient) -> None:
    job = await client.enqueue("call", None, delay=3600)
    url = f"/queues/{client.queue}/jobs/{job.id}/cancel"
    token = csrf_of((await dash.get(f"/queues/{client.queue}/jobs/{job.id}")).text)
    assert (await dash.post(url, data={})).status_code == 403
    assert (await dash.post(url, data={"csrf": "forged" * 8})).status_code == 403
    evil = {"origin": "https://evil.example"}
    assert (await dash.post(url, data={"csrf": token}, headers=evil)).status_code == 403
    referer = {"referer": "https://evil.example/page"}
    assert (await dash.post(url, data={"csrf": token}, headers=referer)).status_code == 403
    assert (
        await dash.post(url, data={"csrf": token}, headers={"origin": "null"})
    ).status_code == 403
    assert (await client.get(job.id)).status == "scheduled"  # type: ignore[union-attr]
    ours = {"origin": BASE}
    assert (await dash.post(url, data={"csrf": token}, headers=ours)).status_code == 303
    assert (await client.get(job.id)).status == "cancelled"  # type: ignore[union-attr]


async def test_open_redirect_refused(client: Client, dash: httpx.AsyncClient) -> None:
    job = await client.enqueue("call", None)
    token = csrf_of((await dash.get(f"/queues/{client.queue}/jobs/{job.id}")).text)
    url = f"/queues/{client.queue}/jobs/{job.id}/cancel"
    response = await dash.post(url, data={"csrf": token, "next": "//evil.example/x"})
    assert response.headers["location"].startswith(f"/queues/{client.queue}/jobs/{job.id}?")


async def test_read_only_hides_and_refuses(client: Client, http: AppFactory) -> None:
    dash = http(read_only=True)
    job = await client.enqueue("call", None)
    page = await dash.get(f"/queues/{client.queue}/jobs/{job.id}")
    assert page.status_code == 200 and 'method="post"' not in page.text and "read-only" in page.text
    assert 'method="post"' not in (await dash.get(f"/queues/{client.queue}")).text
    for action in ("cancel", "retry", "remove"):
        refused = await dash.post(f"/queues/{client.queue}/jobs/{job.id}/{action}", data={})
        assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
    for action in ("dead/retry", "purge/failed", "drain", "obliterate"):
        assert (await dash.post(f"/queues/{client.queue}/{action}")).status_code == 405
    api = await dash.post(f"/api/queues/{client.queue}/jobs", json={"kind": "call"})
    assert api.status_code == 405 and api.json()["error"].startswith("read-only")
    assert (await client.get(job.id)).status == "pending"  # type: ignore[union-attr]


async def test_basic_auth(client: Client, http: AppFactory) -> None:
    dash = http(basic_auth="ops:s3cret")
    denied = await dash.get("/")
    assert denied.status_code == 401 and denied.headers["www-authenticate"].startswith("Basic")
    assert (await dash.get("/", auth=("ops", "wrong"))).status_code == 401
    assert (await dash.get("/", auth=("nobody", "s3cret"))).status_code == 401
    assert (await dash.get("/static/dashboard.css")).status_code == 401
    assert (await dash.get("/", auth=("ops", "s3cret"))).status_code == 200
    # The API takes the same credentials when it has no token of its own.
    assert (await dash.get("/api/queues")).status_code == 401
    assert (await dash.get("/api/queues", auth=("ops", "s3cret"))).status_code == 200


async def test_token_guards_the_pages_too(http: AppFactory) -> None:
    dash = http(api_token="t0ken-for-tests")
    assert (await dash.get("/")).status_code == 401
    assert (await dash.get("/", auth=("anyone", "t0ken-for-tests"))).status_code == 200
    bearer = {"authorization": "Bearer t0ken-for-tests"}
    assert (await dash.get("/", headers=bearer)).status_code == 200
    assert (await dash.get("/api/queues", headers=bearer)).status_code == 200
    # ...but the API wants the token as a bearer token, not as a password.
    assert (await dash.get("/api/queues", auth=("anyone", "t0ken-for-tests"))).status_code == 401


async def test_dead_letters_retry_and_purge(
    client: Client, worker: WorkerFactory, dash: httpx.AsyncClient
) -> None:
    await worker(functions=[fail])
    jobs = await client.enqueue_many([("call", {"fn": "fail"}) for _ in range(4)])
    for job in jobs:
        await _finish(client, job.id)
    q = client.queue
    token = csrf_of((await dash.get("/dead")).text)
    back = {"csrf": token, "next": f"/dead?queue={q}"}

    one = await dash.post(f"/queues/{q}/jobs/{jobs[0].id}/retry", data=back)
    assert one.headers["location"] == f"/dead?queue={q}&done=retried"
    await _finish(client, jobs[0].id)  # it fails again: the worker still runs `fail`
    assert (await client.get(jobs[0].id)).attempt == 1  # type: ignore[union-attr]

    gone = await dash.post(f"/queues/{q}/jobs/{jobs[1].id}/remove", data=back)
    assert gone.headers["location"] == f"/dead?queue={q}&done=removed"
    assert await client.get(jobs[1].id) is None
    again = await dash.post(f"/queues/{q}/jobs/{jobs[2].id}/remove", data=back)
    assert again.status_code == 303
    assert (await dash.post(f"/queues/{q}/jobs/{jobs[2].id}/remove", data=back)).status_code == 404

    everything = await dash.post(f"/queues/{q}/purge/failed", data=back)
    assert everything.headers["location"] == f"/dead?queue={q}&done=purged&n=2"
    page = await dash.get(everything.headers["location"])
    assert "2 finished jobs were deleted" in page.text and "No dead letters" in page.text


async def test_queue_buttons_purge_drain_and_obliterate(
    client: Client, worker: WorkerFactory, dash: httpx.AsyncClient
) -> None:
    q = client.queue
    w = await worker(functions=[add])
    done = await client.enqueue_many([("call", {"fn": "add", "args": [1, 2]}) for _ in range(3)])
    for job in done:
        await _finish(client, job.id)
    await client.enqueue_many([{"kind": "call", "payload": {}, "delay": 60} for _ in range(2)])
    page = await dash.get(f"/queues/{q}")
    for button in ("Purge failed", "Purge completed", "Drain", "Obliterate"):
        assert button in page.text
    back = {"csrf": csrf_of(page.text), "next": f"/queues/{q}"}

    purged = await dash.post(f"/queues/{q}/purge/completed", data=back)
    assert purged.headers["location"] == f"/queues/{q}?done=purged&n=3"
    assert (await dash.post(f"/queues/{q}/purge/running", data=back)).status_code == 404
    drained = await dash.post(f"/queues/{q}/drain", data=back)
    assert drained.headers["location"] == f"/queues/{q}?done=drained&n=2"
    assert "2 waiting jobs were dropped" in (await dash.get(drained.headers["location"])).text
    refused = await dash.post(f"/queues/{q}/obliterate", data=back)
    assert refused.headers["location"] == f"/queues/{q}?done=in-use"
    assert q in await client.queues()
    w.stop(now=True)
    await w.__aexit__(None, None, None)
    await client.enqueue("call", {})
    gone = await dash.post(f"/queues/{q}/obliterate", data=back)
    assert gone.headers["location"] == "/?done=obliterated&n=1"
    assert q not in await client.queues()
    assert (await dash.post(f"/queues/{q}/drain", data={"next": "/"})).status_code == 403


async def test_retry_all(client: Client, worker: WorkerFactory, dash: httpx.AsyncClient) -> None:
    w = await worker(functions=[fail])
    jobs = await client.enqueue_many([("call", {"fn": "fail"}) for _ in range(3)])
    for job in jobs:
        await _finish(client, job.id)
    w.stop(now=True)
    await w.__aexit__(None, None, None)
    token = csrf_of((await dash.get("/dead")).text)
    response = await dash.post(f"/queues/{client.queue}/dead/retry", data={"csrf": token})
    assert response.headers["location"] == "/dead?done=retried-all&n=3"
    for job in jobs:
        assert (await client.get(job.id)).status == "pending"  # type: ignore[union-attr]


async def test_form_body_cap(client: Client, http: AppFactory) -> None:
    dash = http(max_body_bytes=2048)
    job = await client.enqueue("call", None)
    url = f"/queues/{client.queue}/jobs/{job.id}/cancel"
    response = await dash.post(url, content=b"csrf=" + b"x" * 4096)
    assert response.status_code == 413


async def test_redis_gone_is_a_503_page(queue: str) -> None:
    client = Client(f"redis://127.0.0.1:{free_port()}/0", queue=queue)  # nothing listens
    transport = httpx.ASGITransport(app=create_app(client))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as dash:
        response = await dash.get("/")
        assert response.status_code == 503 and "cannot reach Redis" in response.text
        api = await dash.get("/api/queues")
        assert api.status_code == 503 and "cannot reach Redis" in api.json()["error"]
