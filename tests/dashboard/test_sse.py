"""The live streams against a real uvicorn on a free port: events arrive as they happen."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import pytest
import redis

from redisjobs import Client
from redisjobs.dashboard import create_app, sse
from redisjobs.eventlog import BLOCK_MS, LINGER
from redisjobs.testing import log_followers
from tests.conftest import WorkerFactory
from tests.jobs import progress, until_cancelled

from .conftest import live_http


async def messages(response: httpx.Response) -> AsyncGenerator[dict[str, Any], None]:
    """The SSE messages of a streamed response as they arrive: {event, id, data}."""
    msg: dict[str, Any] = {"event": "message", "id": None}
    async for line in response.aiter_lines():
        if not line:
            if "data" in msg:
                yield msg
            msg = {"event": "message", "id": None}
            continue
        name, _, value = line.partition(": ")
        if name == "data":
            msg["data"] = json.loads(value)
        elif name in ("event", "id"):
            msg[name] = value


async def test_progress_arrives_while_the_job_runs(client: Client, worker: WorkerFactory) -> None:
    job = await client.enqueue("call", {"fn": "progress", "args": {"steps": 4, "pause": 0.3}})
    url = f"/api/jobs/{job.id}/events"
    async with live_http(create_app(client)) as http, http.stream("GET", url) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        seen: list[dict[str, Any]] = []
        live_progress = []
        async with asyncio.timeout(20):
            async for msg in messages(response):
                seen.append(msg)
                if msg["event"] == "message" and msg["data"]["type"] == "enqueued":
                    await worker(functions=[progress])  # only now does the job start
                if msg["event"] == "message" and msg["data"]["type"] == "progress":
                    now = await client.get(job.id)
                    assert now is not None
                    live_progress.append((msg["data"]["data"]["progress"], now.status.value))
                if msg["event"] == "end":
                    break
    assert [p for p, _ in live_progress] == [25.0, 50.0, 75.0, 100.0]
    # The first ones came while the job was still running: live, not a replay at the end.
    assert live_progress[0][1] == "running"
    assert seen[-1]["data"]["status"] == "completed" and seen[-2]["data"]["type"] == "completed"


async def test_queue_stream_sends_events_and_counts(client: Client) -> None:
    await client.enqueue("call", None)  # the queue exists before the page is opened
    async with live_http(create_app(client)) as http:
        url = f"/queues/{client.queue}/events"
        async with http.stream("GET", url) as response:
            got = messages(response)
            first = await anext(got)
            assert first["event"] == "overview"
            assert first["data"]["queues"][0]["counts"]["pending"] == 1
            job = await client.enqueue("call", None)
            async with asyncio.timeout(10):
                event = await anext(got)
                assert event["data"]["type"] == "enqueued" and event["data"]["job_id"] == job.id
                assert event["id"]
                stats = await anext(got)
            assert stats["event"] == "stats" and stats["data"]["counts"]["pending"] == 2


async def test_queue_stream_replays_from_the_cursor(client: Client) -> None:
    first = await client.enqueue("call", None)
    entries: Any = await client.redis.xrange(client.keys().log)
    cursor = entries[-1][0].decode()
    second = await client.enqueue("call", None)  # after the cursor: replayed
    async with live_http(create_app(client)) as http:
        url = f"/queues/{client.queue}/events?since={cursor}"
        async with http.stream("GET", url) as response:
            got = messages(response)
            async with asyncio.timeout(10):
                seen = [await anext(got), await anext(got)]
    replayed = [m["data"]["job_id"] for m in seen if m["event"] == "message"]
    assert replayed == [second.id] and first.id not in replayed


async def test_overview_stream_follows_every_queue(
    client: Client, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sse, "TICK_SECONDS", 0.3)
    other = f"{queue}-b"
    await client.enqueue("call", None)
    async with live_http(create_app(client)) as http, http.stream("GET", "/events") as response:
        got = messages(response)
        overview = await anext(got)
        assert {q["name"] for q in overview["data"]["queues"]} >= {queue}
        await client.enqueue("call", None)
        async with asyncio.timeout(10):
            stats = await anext(got)
            while stats["event"] == "overview":  # a tick may come first on a loaded machine
                stats = await anext(got)
        assert stats["event"] == "stats" and stats["data"]["name"] == queue
        await client.enqueue("call", None, queue=other)  # a new queue: seen at the tick
        async with asyncio.timeout(15):
            names: set[str] = set()
            while other not in names:
                msg = await anext(got)
                if msg["event"] == "overview":
                    names = {q["name"] for q in msg["data"]["queues"]}


async def test_job_page_stream_ends_with_the_job(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=[until_cancelled])
    job = await client.enqueue("call", {"fn": "until_cancelled"})
    async with live_http(create_app(client)) as http:
        url = f"/queues/{client.queue}/jobs/{job.id}/events?since=0"
        async with http.stream("GET", url) as response:
            types = []
            async with asyncio.timeout(15):
                async for msg in messages(response):
                    types.append(msg["data"].get("type", msg["event"]))
                    if msg["data"].get("type") == "started":
                        await client.cancel(job.id)
    assert types == ["enqueued", "started", "cancelled", "end"]


@pytest.mark.redis_only
async def test_a_closed_page_stops_reading_the_log(client: Client, url: str) -> None:
    job = await client.enqueue("call", None)
    probe = redis.Redis.from_url(url)
    try:
        async with live_http(create_app(client)) as http:
            # The reader is held open until the page closes: one left to the garbage collector
            # is finalized at once, and httpx closes the connection under it, so the stream
            # would end (and unsubscribe) before the count below is read.
            async with (
                http.stream("GET", f"/api/jobs/{job.id}/events") as response,
                contextlib.aclosing(messages(response)) as got,
            ):
                await anext(got)
                # its reader reads the log (its first read may follow the replayed event)
                async with asyncio.timeout(10):
                    while await asyncio.to_thread(log_followers, probe) != 1:
                        await asyncio.sleep(0.05)
            # The reader leaves once it has had no follower for LINGER s, within a read.
            async with asyncio.timeout(LINGER + BLOCK_MS / 1000 + 10):
                while await asyncio.to_thread(log_followers, probe):
                    await asyncio.sleep(0.1)
    finally:
        probe.close()
