"""The JSON API over ASGI: enqueue, read, list, cancel, follow; every error readable."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import msgpack
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from redisjobs import Client
from redisjobs.dashboard import create_api
from redisjobs.keys import JOB_ID_RULE
from tests.conftest import WorkerFactory
from tests.jobs import echo, progress

from .conftest import BASE, AppFactory


def _sse(text: str) -> list[dict[str, Any]]:
    """The messages of an event stream: {event, id, data} each."""
    out = []
    for block in text.split("\n\n"):
        msg: dict[str, Any] = {"event": "message", "id": None}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name == "data":
                msg["data"] = json.loads(value)
            elif name in ("event", "id"):
                msg[name] = value
        if "data" in msg:
            out.append(msg)
    return out


async def test_enqueue_and_read_back(client: Client, dash: httpx.AsyncClient) -> None:
    body = {"kind": "call", "payload": {"fn": "echo", "args": [[1, 2.5, "é", None, True]]}}
    response = await dash.post(f"/api/queues/{client.queue}/jobs", json=body)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "pending" and job["kind"] == "call" and job["queue"] == client.queue
    assert job["payload"] == body["payload"]
    assert response.headers["location"] == f"/api/jobs/{job['id']}?queue={client.queue}"
    stored = await client.get(job["id"])
    assert stored is not None and stored.payload == body["payload"]  # JSON -> msgpack, same value

    for path in (f"/api/jobs/{job['id']}", response.headers["location"]):
        got = await dash.get(path)
        assert got.status_code == 200 and got.json()["payload"] == body["payload"]


async def test_enqueue_options(client: Client, dash: httpx.AsyncClient) -> None:
    options = {"job_id": "order-42", "delay": 60, "max_retries": 3, "timeout": 5, "result_ttl": 60}
    body = {"kind": "http", "payload": None, "options": options}
    first = await dash.post(f"/api/queues/{client.queue}/jobs", json=body)
    assert first.status_code == 202 and first.json()["status"] == "scheduled"
    again = await dash.post(f"/api/queues/{client.queue}/jobs", json=body)
    assert again.status_code == 202  # the same job, untouched, answered as a duplicate
    assert again.json() == {**first.json(), "duplicate": True}
    assert first.json()["id"] == "order-42" and first.json()["max_retries"] == 3
    job = await client.get("order-42")
    assert job is not None and job.max_retries == 3 and job.timeout == 5
    at = await dash.post(
        f"/api/queues/{client.queue}/jobs",
        json={"kind": "call", "options": {"at": 4102444800, "retry_backoff": None}},
    )
    assert at.json()["scheduled_at"] == "2100-01-01T00:00:00+00:00"


async def test_priority_is_taken_and_shown(client: Client, dash: httpx.AsyncClient) -> None:
    url = f"/api/queues/{client.queue}/jobs"
    urgent = await dash.post(url, json={"kind": "call", "options": {"priority": 3}})
    assert urgent.status_code == 202 and urgent.json()["priority"] == 3
    stored = await client.get(urgent.json()["id"])
    assert stored is not None and stored.priority == 3
    plain = await dash.post(url, json={"kind": "call"})
    assert plain.json()["priority"] == 100
    for bad in (-1, 2**21 + 1, 1.5, "1"):
        refused = await dash.post(url, json={"kind": "call", "options": {"priority": bad}})
        assert refused.status_code == 422 and "priority" in refused.json()["error"]


async def test_rules_are_taken_and_duplicates_said(client: Client, dash: httpx.AsyncClient) -> None:
    url = f"/api/queues/{client.queue}/jobs"
    opts = {"unique": "until_done", "unique_ttl": 60, "keep_completed": {"age": 60, "count": 5}}
    body = {"kind": "call", "payload": {"n": 1}, "options": {**opts, "idempotency_ttl": 600}}
    first = await dash.post(url, json=body)
    again = await dash.post(url, json=body)
    assert first.status_code == again.status_code == 202
    assert not first.json()["duplicate"] and again.json()["duplicate"]
    assert again.json()["id"] == first.json()["id"]
    raw: Any = await client.redis.hgetall(client.keys().job(first.json()["id"]))
    assert raw[b"completed_keep"] == b"5" and raw[b"idempotency_ttl"] == b"600000"
    keyed = await dash.post(url, json={"kind": "call", "options": {"limit_key": "tenant-a"}})
    assert keyed.status_code == 202
    raw = await client.redis.hget(client.keys().job(keyed.json()["id"]), "limit_key")
    assert raw == b"tenant-a"
    bad: list[dict[str, Any]] = [
        {"unique": "sometimes"},
        {"unique": "until_done", "unique_key": "a b"},
        {"unique_ttl": 5},
        {"keep_failed": {"count": 0}},
        {"keep_failed": {"age": None}},
        {"keep_failed": {"count": 1.5}},
        {"keep_completed": -1},
        {"keep_completed": "1h"},
        {"idempotency_ttl": 0},
        {"limit_key": "-a"},
        {"limit_key": 5},
    ]
    for options in bad:
        refused = await dash.post(url, json={"kind": "call", "options": options})
        assert refused.status_code == 422, options


async def test_batch(client: Client, dash: httpx.AsyncClient) -> None:
    jobs = [{"kind": "call", "payload": i} for i in range(5)]
    response = await dash.post(f"/api/queues/{client.queue}/jobs:batch", json={"jobs": jobs})
    assert response.status_code == 202
    assert [j["payload"] for j in response.json()["jobs"]] == list(range(5))
    assert (await client.stats())["pending"] == 5
    bad = [*jobs, {"kind": ""}]
    refused = await dash.post(f"/api/queues/{client.queue}/jobs:batch", json={"jobs": bad})
    assert refused.status_code == 422 and "jobs[5].kind" in refused.json()["error"]
    assert (await client.stats())["pending"] == 5  # all or none


async def test_a_full_queue_is_429_with_retry_after(
    client: Client, dash: httpx.AsyncClient
) -> None:
    await client.redis.hset(client.keys().limits, "max_pending", 1)
    jobs = f"/api/queues/{client.queue}/jobs"
    first = await dash.post(jobs, json={"kind": "call", "options": {"job_id": "only"}})
    assert first.status_code == 202
    for path, body in (
        (jobs, {"kind": "call"}),
        (jobs + ":batch", {"jobs": [{"kind": "call"}, {"kind": "call"}]}),
    ):
        refused = await dash.post(path, json=body)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert "is full: 1 jobs waiting, max_pending 1" in refused.json()["error"]
    again = await dash.post(jobs, json={"kind": "call", "options": {"job_id": "only"}})
    assert again.status_code == 202  # a re-send of a known id is not new work
    assert (await client.stats())["enqueued"] == 1


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "body.kind must be a string"),
        ({"kind": 3}, "body.kind must be a string"),
        ([], "body must be a JSON object"),
        ({"kind": "call", "extra": 1}, "unknown field(s): extra"),
        ({"kind": "call", "options": {"retries": 3}}, "unknown option 'retries'"),
        ({"kind": "call", "options": {"max_retries": -1}}, "max_retries must be between 0"),
        ({"kind": "call", "options": {"max_retries": 1.5}}, "max_retries must be a whole number"),
        ({"kind": "call", "options": {"delay": "soon"}}, 'delay must be a number, got "soon"'),
        ({"kind": "call", "options": {"timeout": True}}, "timeout must be a number"),
        ({"kind": "call", "options": {"retry_jitter": 2}}, "retry_jitter must be between 0 and 1"),
        ({"kind": "call", "options": {"job_id": "a:b"}}, f"options.job_id must be {JOB_ID_RULE}"),
        ({"kind": "call", "options": []}, "body.options must be an object"),
    ],
)
async def test_invalid_job_is_422(
    client: Client, dash: httpx.AsyncClient, body: Any, words: str
) -> None:
    response = await dash.post(f"/api/queues/{client.queue}/jobs", json=body)
    assert response.status_code == 422
    assert words in response.json()["error"]
    assert (await client.stats())["enqueued"] == 0


async def _keyspace(client: Client) -> list[bytes]:
    return [k async for k in client.redis.scan_iter(match=client.keys().prefix + "*")]


@pytest.mark.parametrize(
    "hostile", ["victim:log", "a*", "[a]", "{q}", "-x", ".x", "a/b", "a b", "a\n", "", "a" * 201, 7]
)
async def test_a_hostile_job_id_to_enqueue_is_422_and_writes_nothing(
    client: Client, dash: httpx.AsyncClient, hostile: Any
) -> None:
    one = {"kind": "call", "options": {"job_id": hostile}}
    for path, body in (("jobs", one), ("jobs:batch", {"jobs": [{"kind": "call"}, one]})):
        response = await dash.post(f"/api/queues/{client.queue}/{path}", json=body)
        assert response.status_code == 422, (path, response.text)
        assert f"job_id must be {JOB_ID_RULE}" in response.json()["error"]
    assert await _keyspace(client) == []


@pytest.mark.parametrize(
    "hostile", ["victim:log", "a*", "[a]", "{q}", "-x", ".x", "a b", "a" * 201]
)
async def test_a_hostile_job_id_in_a_path_is_422(
    client: Client, dash: httpx.AsyncClient, hostile: str
) -> None:
    for method, path in (("GET", ""), ("GET", "/events"), ("POST", "/cancel")):
        response = await dash.request(method, f"/api/jobs/{quote(hostile, safe='')}{path}")
        assert response.status_code == 422, (method, path, response.text)
        assert response.json() == {"error": f"job id must be {JOB_ID_RULE}"}
    assert await _keyspace(client) == []


async def test_json_that_msgpack_cannot_hold(client: Client, dash: httpx.AsyncClient) -> None:
    body = (
        b'{"kind": "call", "payload": [1180591620717411303424, -9223372036854775808, "\\ud800x"]}'
    )
    response = await dash.post(
        f"/api/queues/{client.queue}/jobs",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 202
    assert response.json()["payload"] == [1.1805916207174113e21, -(2**63), "\ufffdx"]


async def test_malformed_requests(client: Client, http: AppFactory) -> None:
    dash = http(max_body_bytes=64 * 1024)
    url = f"/api/queues/{client.queue}/jobs"
    bad_json = await dash.post(url, content=b"{nope", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]
    nan = await dash.post(
        url, content=b'{"kind": "x", "payload": NaN}', headers={"content-type": "application/json"}
    )
    assert nan.status_code == 400
    form = await dash.post(url, data={"kind": "call"})
    assert form.status_code == 415
    big = await dash.post(url, json={"kind": "call", "payload": "x" * 70_000})
    assert big.status_code == 413 and "over 65536 bytes" in big.json()["error"]
    queue = await dash.post("/api/queues/bad name/jobs", json={"kind": "call"})
    assert queue.status_code == 422 and "invalid queue name" in queue.json()["error"]


async def test_streamed_body_over_the_cap(client: Client, http: AppFactory) -> None:
    dash = http(max_body_bytes=4096)

    async def chunks() -> Any:
        yield b'{"kind": "call", "payload": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = await dash.post(
        f"/api/queues/{client.queue}/jobs",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413


async def test_payload_over_the_client_cap(url: str, queue: str) -> None:
    async with Client(url, queue=queue, max_payload_bytes=1024) as client:
        transport = httpx.ASGITransport(app=create_api(client))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as api:
            response = await api.post(
                f"/queues/{queue}/jobs", json={"kind": "call", "payload": "x" * 2000}
            )
            assert response.status_code == 413 and "over the 1024 cap" in response.json()["error"]


async def test_list_jobs(client: Client, dash: httpx.AsyncClient) -> None:
    await client.enqueue_many([("call", i) for i in range(7)])
    await client.enqueue("call", None, delay=60)
    url = f"/api/queues/{client.queue}/jobs"
    page = (await dash.get(url, params={"limit": 5})).json()
    assert len(page["jobs"]) == 5 and page["cursor"] == 5
    rest = (await dash.get(url, params={"limit": 5, "cursor": 5})).json()
    assert len(rest["jobs"]) == 3 and rest["cursor"] is None
    scheduled = (await dash.get(url, params={"status": "scheduled"})).json()
    assert [j["status"] for j in scheduled["jobs"]] == ["scheduled"]
    for params in ({"status": "nope"}, {"limit": 0}, {"limit": "x"}, {"cursor": -1}):
        assert (await dash.get(url, params=params)).status_code == 422
    assert (await dash.get("/api/queues/never-used/jobs")).json() == {"jobs": [], "cursor": None}


async def test_queues(client: Client, dash: httpx.AsyncClient) -> None:
    await client.enqueue("call", None)
    queues = (await dash.get("/api/queues")).json()["queues"]
    mine = next(q for q in queues if q["name"] == client.queue)
    assert mine["counts"]["pending"] == 1 and mine["workers"] == 0 and mine["warning"]


async def test_get_job_errors(client: Client, dash: httpx.AsyncClient) -> None:
    missing = await dash.get("/api/jobs/nope")
    assert missing.status_code == 404 and missing.json() == {"error": "no job 'nope' in any queue"}
    newline = await dash.post("/api/jobs/a%0Ab/cancel")  # no route matches it
    assert newline.status_code == 404 and newline.headers["content-type"] == "application/json"
    assert (await dash.get("/api/jobs/a:b")).status_code == 422
    bad_queue = await dash.get("/api/jobs/nope", params={"queue": "bad name"})
    assert bad_queue.status_code == 422


async def test_cancel(client: Client, dash: httpx.AsyncClient) -> None:
    job = await client.enqueue("call", None)
    response = await dash.post(f"/api/jobs/{job.id}/cancel")
    assert response.status_code == 202
    assert response.json()["outcome"] == "cancelled"
    assert response.json()["job"]["status"] == "cancelled"
    assert response.json()["job"]["failure"] == "cancel"
    again = await dash.post(f"/api/jobs/{job.id}/cancel", params={"queue": client.queue})
    assert again.status_code == 409 and "already finished" in again.json()["error"]
    assert (await dash.post("/api/jobs/nope/cancel")).status_code == 404


async def test_bytes_come_back_as_base64(
    client: Client, worker: WorkerFactory, dash: httpx.AsyncClient
) -> None:
    await worker(functions=[echo])
    job = await client.enqueue("call", {"fn": "echo", "args": [b"\x00\xff"]})
    await client.wait(job.id, timeout=10)
    got = (await dash.get(f"/api/jobs/{job.id}")).json()
    assert got["result"] == {"$bytes": "AP8="} and got["status"] == "completed"


async def test_events_of_a_finished_job(
    client: Client, worker: WorkerFactory, dash: httpx.AsyncClient
) -> None:
    await worker(functions=[progress])
    job = await client.enqueue("call", {"fn": "progress", "args": {"steps": 3}})
    await client.wait(job.id, timeout=10)
    response = await dash.get(f"/api/jobs/{job.id}/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    messages = _sse(response.text)
    types = [m["data"]["type"] for m in messages if m["event"] == "message"]
    assert types[:2] == ["enqueued", "started"] and types[-1] == "completed"
    assert set(types[2:-1]) == {"progress"}  # (set_progress is throttled: 1 to 3 of them)
    assert all(m["id"] for m in messages if m["event"] == "message")
    assert messages[-1]["event"] == "end" and messages[-1]["data"]["status"] == "completed"
    # Resuming after the second event gives the rest only.
    second = {"last-event-id": messages[1]["id"]}
    rest = _sse((await dash.get(f"/api/jobs/{job.id}/events", headers=second)).text)
    assert [m["data"]["type"] for m in rest if m["event"] == "message"] == types[2:]
    assert (await dash.get("/api/jobs/nope/events")).status_code == 404


async def test_bearer_token(client: Client, http: AppFactory) -> None:
    dash = http(api_token="s3cret-token")
    url = f"/api/queues/{client.queue}/jobs"
    denied = await dash.post(url, json={"kind": "call"})
    assert denied.status_code == 401 and denied.headers["www-authenticate"].startswith("Bearer")
    assert denied.json() == {"error": "authentication required"}
    wrong = {"authorization": "Bearer nope-nope"}
    assert (await dash.post(url, json={"kind": "call"}, headers=wrong)).status_code == 401
    ok = {"authorization": "Bearer s3cret-token"}
    assert (await dash.post(url, json={"kind": "call"}, headers=ok)).status_code == 202


async def test_cross_site_post_refused(client: Client, dash: httpx.AsyncClient) -> None:
    url = f"/api/queues/{client.queue}/jobs"
    evil = {"origin": "https://evil.example"}
    response = await dash.post(url, json={"kind": "call"}, headers=evil)
    assert response.status_code == 403 and response.json() == {
        "error": "cross-site request refused"
    }
    same = {"origin": BASE}
    assert (await dash.post(url, json={"kind": "call"}, headers=same)).status_code == 202


async def test_api_mounted_on_its_own(client: Client) -> None:
    outer = Starlette(routes=[Mount("/jobs-api", app=create_api(client, api_token="tok-tok-tok"))])
    transport = httpx.ASGITransport(app=outer)
    headers = {"authorization": "Bearer tok-tok-tok"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=headers) as api:
        created = await api.post(f"/jobs-api/queues/{client.queue}/jobs", json={"kind": "call"})
        assert created.status_code == 202
        assert created.headers["location"].startswith("/jobs-api/jobs/")
        spec = (await api.get("/jobs-api/openapi.json")).json()
        assert spec["openapi"] == "3.1.0" and spec["servers"] == [{"url": "/jobs-api"}]


async def test_a_job_enqueued_over_http_runs(
    client: Client, worker: WorkerFactory, dash: httpx.AsyncClient
) -> None:
    await worker(functions=[echo])
    body = {"kind": "call", "payload": {"fn": "echo", "args": [{"from": "curl"}]}}
    job = (await dash.post(f"/api/queues/{client.queue}/jobs", json=body)).json()
    assert await client.wait(job["id"], timeout=10) == {"from": "curl"}
    async with asyncio.timeout(5):
        got = (await dash.get(f"/api/jobs/{job['id']}")).json()
    assert got["result"] == {"from": "curl"}


EXTENDED = {
    "when": datetime(2026, 12, 4, 9, 30, 0, 250000, tzinfo=timezone(timedelta(hours=-5))),
    "naive": datetime(2026, 12, 4, 9, 30),
    "day": date(2026, 12, 4),
    "price": Decimal("-1.50"),
    "nan": Decimal("NaN"),
    "id": uuid.UUID(int=1),
    "pair": (1, ("a", b"\x00")),
    "tags": {"b", "a", "c"},
    "mixed": {1, "a"},
    "frozen": frozenset({3, 1, 2}),
    "keyed": {(1, 2): "tuple key", date(2020, 1, 2): "date key"},
    "other": msgpack.ExtType(5, b"\x01"),
}
EXTENDED_JSON = {
    "when": "2026-12-04T14:30:00.250000+00:00",
    "naive": "2026-12-04T09:30:00",
    "day": "2026-12-04",
    "price": "-1.50",
    "nan": "NaN",
    "id": "00000000-0000-0000-0000-000000000001",
    "pair": [1, ["a", {"$bytes": "AA=="}]],
    "tags": ["a", "b", "c"],
    "frozen": [1, 2, 3],
    "keyed": {"(1, 2)": "tuple key", "2020-01-02": "date key"},
    "other": {"$ext": 5, "$bytes": "AQ=="},
}


async def test_payloads_and_results_of_every_type_render(
    client: Client, worker: WorkerFactory, dash: httpx.AsyncClient
) -> None:
    await worker(functions=[echo])
    job = await client.enqueue("call", {"fn": "echo", "args": [EXTENDED]})
    await client.wait(job.id, timeout=10)
    got = await dash.get(f"/api/jobs/{job.id}")
    assert got.status_code == 200
    for shown in (got.json()["payload"]["args"][0], got.json()["result"]):
        mixed = shown.pop("mixed")  # 1 and "a" do not sort: in the set's own order
        assert shown == EXTENDED_JSON and sorted(mixed, key=str) == [1, "a"]
    listed = await dash.get(f"/api/queues/{client.queue}/jobs")
    assert listed.status_code == 200 and listed.json()["jobs"][0]["result"]["day"] == "2026-12-04"
    events = _sse((await dash.get(f"/api/jobs/{job.id}/events")).text)
    [completed] = [m["data"] for m in events if m["data"].get("type") == "completed"]
    assert completed["data"]["result"]["price"] == "-1.50"
    page = await dash.get(f"/queues/{client.queue}/jobs/{job.id}")
    assert page.status_code == 200
    assert "2026-12-04T14:30:00.250000+00:00" in page.text and "&#34;-1.50&#34;" in page.text


async def test_a_payload_malformed_under_an_extension_code_is_shown_as_the_jobs_error(
    client: Client, dash: httpx.AsyncClient
) -> None:
    job = await client.enqueue("call", {"fn": "echo"}, delay=3600)
    bad = msgpack.packb(msgpack.ExtType(66, b"not a number"))
    await client.redis.hset(client.keys().job(job.id), "payload", bad)
    got = await dash.get(f"/api/jobs/{job.id}")
    assert got.status_code == 200 and got.json()["payload"] is None
    assert "ext 66 (Decimal) is malformed" in got.json()["error"]
    page = await dash.get(f"/queues/{client.queue}/jobs/{job.id}")
    assert page.status_code == 200 and "ext 66 (Decimal) is malformed" in page.text


async def test_purge_drain_and_obliterate(
    client: Client, worker: WorkerFactory, dash: httpx.AsyncClient
) -> None:
    q = client.queue
    w = await worker(functions=[echo])
    done = await client.enqueue_many([("call", {"fn": "echo", "args": [n]}) for n in range(3)])
    for job in done:
        assert await client.wait(job.id, timeout=10) is not None
    await client.enqueue_many([{"kind": "call", "payload": {}, "delay": 60} for _ in range(2)])

    young = await dash.post(f"/api/queues/{q}/purge?status=completed&older_than=3600")
    assert young.status_code == 200, young.text
    assert young.json() == {"queue": q, "status": "completed", "purged": 0}
    purged = await dash.post(f"/api/queues/{q}/purge?status=completed")
    assert purged.json() == {"queue": q, "status": "completed", "purged": 3}
    drained = await dash.post(f"/api/queues/{q}/drain")
    assert drained.status_code == 200 and drained.json() == {"queue": q, "drained": 2}
    refused = await dash.post(f"/api/queues/{q}/obliterate")
    assert refused.status_code == 409 and w.id in refused.json()["error"]
    await client.enqueue("call", {}, delay=60)
    forced = await dash.post(f"/api/queues/{q}/obliterate?force=true")
    assert forced.json() == {"queue": q, "obliterated": 1}
    assert q not in await client.queues()

    for bad in (
        f"/api/queues/{q}/purge?status=running",
        f"/api/queues/{q}/purge?older_than=-1",
        f"/api/queues/{q}/purge?older_than=1.5e3",
        f"/api/queues/{q}/obliterate?force=yes",
        "/api/queues/no%20spaces/drain",
    ):
        response = await dash.post(bad)
        assert response.status_code == 422, bad
        assert response.json()["error"]
