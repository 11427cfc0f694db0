"""Prometheus metrics: the dashboard's /metrics over ASGI, and `worker --metrics-port` over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("prometheus_client", reason="the metrics extra is not installed")
pytest.importorskip("starlette", reason="the dashboard extra is not installed")

from prometheus_client.parser import text_string_to_metric_families

from redisjobs import Client, ExecContext, JobCancelled, JobFailed
from redisjobs.dashboard import create_app
from redisjobs.metrics import enable_job_durations, metrics_route
from redisjobs.testing import RedisServer, free_port, unique_queue
from tests import jobs
from tests.conftest import WorkerFactory

ROOT = Path(__file__).resolve().parent.parent

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str, queue: str) -> Samples:
    """Every sample of `queue` as (name, sorted labels without queue) -> value."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("queue") != queue:
                continue
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "queue"))
            out[(s.name, labels)] = s.value
    return out


def fn(name: str) -> str:
    return f"tests.jobs:{name}"


async def test_dashboard_metrics_after_some_jobs(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    enable_job_durations()
    await worker(modules=["tests.jobs"], concurrency=4)
    done = [await client.enqueue("call", {"fn": fn("add"), "args": [i, 1]}) for i in range(3)]
    bad = await client.enqueue("call", {"fn": fn("fail")})
    await client.enqueue("call", {"fn": fn("add"), "args": [1, 1]}, delay=3600)  # scheduled
    for i, job in enumerate(done):
        assert await client.wait(job.id, timeout=10) == i + 1
    with pytest.raises(Exception, match="boom"):
        await client.wait(bad.id, timeout=10)

    app = create_app(client, basic_auth="ops:secret", routes=[metrics_route(client)])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as http:
        assert (await http.get("/metrics")).status_code == 401  # the pages' credentials
        response = await http.get("/metrics", auth=("ops", "secret"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    m = parse(response.text, queue)

    assert m[("redisjobs_jobs_enqueued_total", ())] == 5
    assert m[("redisjobs_jobs_completed_total", ())] == 3
    assert m[("redisjobs_jobs_failed_total", ())] == 1
    assert m[("redisjobs_jobs_retried_total", ())] == 0
    assert m[("redisjobs_jobs_reclaimed_total", ())] == 0
    assert m[("redisjobs_queue_jobs", (("status", "completed"),))] == 3
    assert m[("redisjobs_queue_jobs", (("status", "failed"),))] == 1
    assert m[("redisjobs_queue_jobs", (("status", "scheduled"),))] == 1
    assert m[("redisjobs_queue_jobs", (("status", "pending"),))] == 0
    assert m[("redisjobs_queue_dead_jobs", ())] == 1
    assert m[("redisjobs_queue_oldest_pending_age_seconds", ())] == 0
    assert m[("redisjobs_workers", ())] == 1
    assert m[("redisjobs_worker_slots", ())] == 4
    assert m[("redisjobs_worker_slots_busy", ())] == 0
    assert m[("redisjobs_worker_hung_threads", ())] == 0
    ok = (("kind", "call"), ("name", fn("add")), ("outcome", "completed"))
    assert m[("redisjobs_job_duration_seconds_count", ok)] == 3
    assert m[("redisjobs_job_duration_seconds_bucket", (ok[0], ("le", "+Inf"), *ok[1:]))] == 3
    failed = (("kind", "call"), ("name", fn("fail")), ("outcome", "failed"))
    assert m[("redisjobs_job_duration_seconds_count", failed)] == 1


class Mine:
    """An executor of a kind of its own, which names no function."""

    kind = "mine"

    async def run(self, *, job_id: str, payload: Any, ctx: ExecContext) -> Any:
        return payload


async def test_durations_are_named_by_the_function_the_worker_resolved(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    enable_job_durations()
    await worker(functions={"adder": jobs.add}, modules=["tests.jobs"], executors=[Mine()])
    payloads = [
        ("call", {"fn": "adder", "args": [1, 2]}),  # registered under a name of its own
        ("call", {"fn": fn("add"), "args": [1, 2]}),  # defined in an allowed module
        ("call", {"fn": "os:system", "args": ["true"]}),  # refused: not allowed here
        ("call", {"fn": fn("no_such_function")}),  # refused: the module defines none
        ("mine", {"fn": "a name an attacker chose"}),  # another kind: only its kind
    ]
    for kind, payload in payloads:
        job = await client.enqueue(kind, payload)
        with contextlib.suppress(JobFailed):
            await client.wait(job.id, timeout=10)
    m = parse(await _metrics(client), queue)
    counts = {
        (dict(labels)["kind"], dict(labels)["name"], dict(labels)["outcome"]): value
        for (sample, labels), value in m.items()
        if sample == "redisjobs_job_duration_seconds_count"
    }
    assert counts == {
        ("call", "adder", "completed"): 1,
        ("call", fn("add"), "completed"): 1,
        ("call", "call", "failed"): 2,  # a name no worker resolved never becomes a label
        ("mine", "mine", "completed"): 1,
    }


async def _metrics(client: Client) -> str:
    app = create_app(client, routes=[metrics_route(client)])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as http:
        return (await http.get("/metrics")).text


async def test_oldest_pending_age_and_busy_slots(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    app = create_app(client, routes=[metrics_route(client)])
    waiting = await client.enqueue("call", {"fn": fn("add"), "args": [1, 2]})
    await asyncio.sleep(0.05)  # Redis's clock moves on; the age is measured with it
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as http:
        m = parse((await http.get("/metrics")).text, queue)
        assert m[("redisjobs_queue_jobs", (("status", "pending"),))] == 1
        assert 0.04 <= m[("redisjobs_queue_oldest_pending_age_seconds", ())] < 10
        assert m[("redisjobs_workers", ())] == 0  # no live worker serves it: 0, not absent
        assert m[("redisjobs_worker_slots", ())] == 0

        await worker(modules=["tests.jobs"], concurrency=3, lease_ttl=1.0)
        await client.wait(waiting.id, timeout=10)
        running = await client.enqueue("call", {"fn": fn("sleep"), "args": [30]})
        for _ in range(200):  # the registry's `held` is written by the heartbeat
            m = parse((await http.get("/metrics")).text, queue)
            if m.get(("redisjobs_worker_slots_busy", ())) == 1:
                break
            await asyncio.sleep(0.05)
        assert m[("redisjobs_worker_slots_busy", ())] == 1
        assert m[("redisjobs_queue_jobs", (("status", "running"),))] == 1
        await client.cancel(running.id)
        with pytest.raises(JobCancelled):
            await client.wait(running.id, timeout=10)


async def test_throttled_jobs_and_this_process(
    client: Client, worker: WorkerFactory, queue: str, url: str
) -> None:
    """Jobs held back by their limit key's rate are counted (not the lease calls alone), a
    queue without limits reports 0, and the process collectors are there."""
    await client.set_limit(key="*", rate=1, per=3600, burst=1)
    add = {"kind": "call", "payload": {"fn": fn("add"), "args": [1, 1]}}
    held = await client.enqueue_many([{**add, "limit_key": "k"} for _ in range(4)])
    free = await client.enqueue("call", {"fn": fn("add"), "args": [2, 2]})
    async with Client(url, queue=unique_queue("plain")) as other:
        await other.enqueue("call", {"fn": fn("add"), "args": [2, 2]})
        await worker(modules=["tests.jobs"], concurrency=2)
        assert await client.wait(free.id, timeout=10) == 4
        await client.wait(held[0].id, timeout=10)  # the one start the rate allows this hour
        text = await _metrics(client)
        m = parse(text, queue)
        assert m[("redisjobs_queue_throttled_jobs", ())] == 3
        assert parse(text, other.queue)[("redisjobs_queue_throttled_jobs", ())] == 0
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "python_info"} <= names
    assert any(name.startswith("python_gc_") for name in names)


@pytest.mark.slow
def test_worker_metrics_port_over_http(redis_server: RedisServer, tmp_path: Path) -> None:
    queue = unique_queue("metrics")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "worker.err", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "redisjobs", "worker", "--redis", redis_server.url,
             "--queue", queue, "--functions", "tests.jobs", "--metrics-port", str(port)],
            cwd=ROOT, env=env, stderr=err,
        )  # fmt: skip
    try:

        async def produce() -> None:
            async with Client(redis_server.url, queue=queue) as c:
                jobs = [
                    await c.enqueue("call", {"fn": fn("add"), "args": [i, i]}) for i in range(4)
                ]
                for job in jobs:
                    await c.wait(job.id, timeout=20)

        asyncio.run(produce())
        text = ""
        for _ in range(100):
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        m = parse(text, queue)
        assert m[("redisjobs_jobs_completed_total", ())] == 4
        assert m[("redisjobs_workers", ())] == 1
        ok = (("kind", "call"), ("name", fn("add")), ("outcome", "completed"))
        assert m[("redisjobs_job_duration_seconds_count", ok)] == 4
        assert httpx.get(f"http://127.0.0.1:{port}/nope", timeout=5).status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, (tmp_path / "worker.err").read_text()
