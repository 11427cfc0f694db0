"""Tasks of an App, end to end: typed enqueue, options, batches, results, the worker side."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from redisjobs import App, Client, JobFailed, JobStatus, Worker
from redisjobs.testing import unique_queue
from tests import tasks_app
from tests.tasks_app import area, boom, named, resize


@pytest.fixture(autouse=True)
async def _app_on(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Point the tests' module-level app at this test's Redis (as REDIS_URL would)."""
    if "url" not in request.fixturenames:
        yield
        return
    tasks_app.app.url = request.getfixturevalue("url")
    yield
    await tasks_app.app.aclose()


async def test_enqueue_and_result_inject_ctx(url: str, queue: str) -> None:
    async with Worker(url, queue=queue, app=tasks_app.app) as worker:
        assert worker.queues == [queue]
        job = await resize.options(queue=queue).enqueue("a.png", width=640)
        assert job.queue == queue and job.job.status is JobStatus.PENDING
        assert job.job.name == "tests.tasks_app:resize"
        assert job.job.call_text() == "tests.tasks_app:resize('a.png', width=640)"
        assert await job.result(timeout=10) == {"path": "a.png", "width": 640, "attempt": 1}
        snap = await job.get()
        assert snap is not None and snap.status is JobStatus.COMPLETED
        assert snap.payload == {
            "fn": "tests.tasks_app:resize",
            "args": ["a.png"],
            "kwargs": {"width": 640},
        }
        assert snap.max_retries == 2  # the task's default
        assert await job.status() is JobStatus.COMPLETED
        plain = await area.options(queue=queue).enqueue(3, height=4)
        assert await plain.result(timeout=10) == 12
        ided = await named.options(queue=queue).enqueue(text="x")
        assert await ided.result(timeout=10) == f"{ided.id}:x"


async def test_bad_arguments_write_nothing(url: str, queue: str) -> None:
    async with Client(url, queue=queue) as client:
        bound = resize.options(queue=queue)
        with pytest.raises(TypeError, match="missing a required argument: 'width'"):
            await bound.enqueue("a.png")  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="unexpected keyword argument 'height'"):
            await bound.enqueue("a.png", 1, height=2)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="too many positional"):
            await bound.enqueue("a.png", 1, 2)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="unknown task option"):
            resize.options(colour="red")
        with pytest.raises(TypeError, match="one job_id to many"):
            await resize.options(queue=queue, job_id="x").enqueue_many([("a", 1)])
        assert (await client.list_jobs()).jobs == []


async def test_options_override_the_task_defaults(url: str, queue: str) -> None:
    bound = resize.options(queue=queue, job_id="img-42", priority=10, delay=30, retries=5)
    job = await bound.enqueue("b.png", 320)
    again = await bound.enqueue("b.png", 320)  # the same id: nothing new is written
    assert job.id == again.id == "img-42"
    snap = await job.get()
    assert snap is not None
    assert (snap.status, snap.priority, snap.max_retries) == (JobStatus.SCHEDULED, 10, 5)
    assert await job.cancel() is True


async def test_enqueue_many_keeps_order_across_tasks_and_queues(url: str, queue: str) -> None:
    other = unique_queue()
    app = App(url, queue=queue)
    add_here = app.task(name="here.area")(tasks_app.area.fn)
    resize_there = app.task(name="there.resize", queue=other)(tasks_app.resize.fn)
    async with Worker(url, app=app) as worker:
        assert worker.queues == [queue, other]
        calls = [(1, 2), add_here.call(3, height=3), resize_there.call("c", 1), (5,)]
        jobs = await add_here.enqueue_many(calls)
        assert [j.queue for j in jobs] == [queue, queue, other, queue]
        results = [await j.result(timeout=10) for j in jobs]
        assert results == [2, 9, {"path": "c", "width": 1, "attempt": 1}, 10]
    await app.aclose()


async def test_failures_raise_as_client_wait_does(url: str, queue: str) -> None:
    async with Worker(url, queue=queue, app=tasks_app.app):
        job = await boom.options(queue=queue).enqueue("no luck")
        with pytest.raises(JobFailed, match="no luck"):
            await job.result(timeout=10)
        snap = await job.get()
        assert snap is not None and snap.attempt == 2  # the task's retries=1


async def test_a_worker_of_an_app_runs_its_tasks_only(url: str, queue: str) -> None:
    async with Worker(url, queue=queue, app=tasks_app.app), Client(url, queue=queue) as client:
        job = await client.enqueue("call", {"fn": "tests.tasks_app:helper"})
        with pytest.raises(JobFailed, match="not allowed on this worker"):
            await client.wait(job.id, timeout=10)
        job = await client.enqueue("call", {"fn": "custom.name", "kwargs": {"text": "t"}})
        assert await client.wait(job.id, timeout=10) == f"{job.id}:t"


async def test_calling_a_task_runs_it_here() -> None:
    assert await resize("a.png", 10) == {"path": "a.png", "width": 10, "attempt": 1}
    assert area(2, 5) == 10
    assert (await named(text="t")).startswith("local-")
    with pytest.raises(TypeError):
        area()  # type: ignore[call-arg]


def test_declaring_checks_names_and_options() -> None:
    app = App("memory://declare")

    def f(x: int) -> int:
        return x

    with pytest.raises(ValueError, match="no name a job can carry"):
        app.task(f)  # a nested function: no module:qualname a worker could register
    assert app.task(name="tests.g")(f).name == "tests.g"
    assert app.task(tasks_app.helper).name == "tests.tasks_app:helper"
    with pytest.raises(ValueError, match="already has a task"):
        app.task(name="tests.g")(f)
    with pytest.raises(ValueError, match="not a name a job can carry"):
        app.task(name="__import__")(f)
    with pytest.raises(ValueError, match="retry_backoff"):
        app.task(name="x.y", retry_backoff=0.5)(f)
    with pytest.raises(ValueError, match="isolation"):
        app.task(name="x.z", isolation="fork")(f)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="plain"):
        app.task(name="x.w", isolation="process")(tasks_app.resize.fn)
    with pytest.raises(ValueError, match=r"cannot be found by module and name|nested|top level"):
        app.task(name="x.v", isolation="process")(f)  # a child process could not import it
    assert sorted(app.tasks) == ["tests.g", "tests.tasks_app:helper"]


def test_one_app_across_event_loops(redis_url: str) -> None:
    """A service that runs asyncio.run per request: each loop gets a client of its own."""
    queue = unique_queue()
    app = App(redis_url, queue=queue)
    task = app.task(name="loops.area")(tasks_app.area.fn)
    ids = [asyncio.run(_enqueue(task)) for _ in range(3)]
    assert len(set(ids)) == 3

    async def count() -> int:
        async with Client(redis_url, queue=queue) as client:
            return len((await client.list_jobs()).jobs)

    assert asyncio.run(count()) == 3


async def _enqueue(task: Any) -> str:
    return str((await task.enqueue(2)).id)


def test_cli_worker_serves_an_app(redis_url: str) -> None:
    queue = unique_queue()
    tasks_app.app.url = redis_url
    env = {**os.environ, "APP_QUEUE": queue, "REDIS_URL": redis_url}
    cmd = [sys.executable, "-m", "redisjobs", "worker", "tests.tasks_app:app", "--burst"]

    async def enqueue() -> list[Any]:
        async with Client(redis_url, queue=queue):
            jobs = [await area.options(queue=queue).enqueue(i, height=2) for i in range(5)]
        return [j.id for j in jobs]

    ids = asyncio.run(enqueue())
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

    async def results() -> list[Any]:
        async with Client(redis_url, queue=queue) as client:
            return [await client.wait(i, timeout=5) for i in ids]

    assert asyncio.run(results()) == [0, 2, 4, 6, 8]
    bad = subprocess.run(
        [*cmd[:4], "tests.tasks_app:helper"], env=env, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "not a redisjobs.App" in bad.stderr


def test_enqueue_sync_from_threads_without_an_event_loop(redis_url: str) -> None:
    import threading

    queue = unique_queue()
    app = App(redis_url, queue=queue)
    task = app.task(name="sync.area")(tasks_app.area.fn)
    slow = app.task(name="sync.resize", retries=3)(tasks_app.resize.fn)
    results: list[int] = []

    async def serve(ready: threading.Event, stop: threading.Event) -> None:
        async with Worker(redis_url, app=app):
            ready.set()
            await asyncio.to_thread(stop.wait)

    ready, stop = threading.Event(), threading.Event()
    server = threading.Thread(target=asyncio.run, args=(serve(ready, stop),))
    server.start()
    try:
        assert ready.wait(10)

        def produce(n: int) -> None:
            jobs = [task.enqueue_sync(n, height=i) for i in range(5)]
            results.extend(job.result(timeout=10) for job in jobs)

        threads = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(results) == sorted(n * i for n in range(8) for i in range(5))
        job = slow.options(delay=30, job_id="sync-1").enqueue_sync("a.png", 1)
        snap = job.get()
        assert snap is not None and snap.status is JobStatus.SCHEDULED and snap.max_retries == 3
        assert job.status() is JobStatus.SCHEDULED and job.cancel() is True
        with pytest.raises(TypeError, match="missing a required argument"):
            task.enqueue_sync()
    finally:
        stop.set()
        server.join(30)
        app.close()
