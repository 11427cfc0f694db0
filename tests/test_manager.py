"""The JobManager face, as seed 000 documents it, on both backends."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from redisjobs import JobFailed, JobStatus, Worker
from redisjobs.manager import JobManager
from tests import jobs
from tests.conftest import log_events


@pytest.fixture
async def manager(url: str, queue: str) -> AsyncIterator[JobManager]:
    async with JobManager(max_workers=4, url=url, queue=queue) as m:
        yield m


async def process_video(video_path: str, output_path: str) -> dict[str, str]:
    await asyncio.sleep(0.01)
    return {"output": output_path}


async def test_submit_and_wait(manager: JobManager) -> None:
    job = await manager.submit(
        process_video, args={"video_path": "input.mp4", "output_path": "output.mp4"}
    )
    assert job.status == JobStatus.PENDING and job.id
    assert await manager.wait(job.id) == {"output": "output.mp4"}
    done = await manager.get(job.id)
    assert done is not None and done.status == JobStatus.COMPLETED
    assert done.started_at is not None and done.completed_at is not None


async def test_submit_with_a_priority(url: str, queue: str) -> None:
    async with JobManager(max_workers=1, url=url, queue=queue) as manager:
        busy = await manager.submit(jobs.sleep, args={"seconds": 0.3})
        low = await manager.submit(jobs.add, args={"a": 1, "b": 1}, priority=500)
        urgent = await manager.submit(jobs.add, args={"a": 2, "b": 2}, priority=1)
        assert (urgent.priority, low.priority, busy.priority) == (1, 500, 100)
        assert [await manager.wait(j.id, timeout=10) for j in (low, urgent)] == [2, 4]
        ran = [await manager.get(j.id) for j in (urgent, low)]
        assert ran[0] is not None and ran[1] is not None
        assert ran[0].started_at is not None and ran[1].started_at is not None
        assert ran[0].started_at <= ran[1].started_at


async def test_wait_with_timeout_raises_timeout_error(manager: JobManager) -> None:
    job = await manager.submit(jobs.sleep, args={"seconds": 5})
    with pytest.raises(TimeoutError):
        await manager.wait(job.id, timeout=0.1)
    assert await manager.cancel(job.id)


async def test_progress_from_inside_the_job(manager: JobManager) -> None:
    async def process_with_progress(data: list[int], job_id: str, manager: JobManager) -> Any:
        total = len(data)
        for i, _ in enumerate(data):
            await asyncio.sleep(0.005)
            await manager.update_progress(job_id, (i + 1) / total * 100)
        return {"processed": total}

    job = await manager.submit(process_with_progress, args={"data": list(range(10))})
    assert await manager.wait(job.id, timeout=5) == {"processed": 10}
    assert await manager.get_progress(job.id) == 100.0
    assert manager._client is not None
    events = await log_events(manager._client, job.id)
    progress = [e.data["progress"] for e in events if e.type == "progress"]
    assert progress and progress[-1] == 100  # throttled, and the last value always lands


async def test_callbacks_as_decorators_and_calls(manager: JobManager) -> None:
    seen: list[tuple[str, str, Any]] = []
    done = asyncio.Event()

    @manager.on_complete
    async def handle_complete(job_id: str, result: dict[str, Any]) -> None:
        seen.append(("complete", job_id, result))
        done.set()

    def handle_failure(job_id: str, error: Exception) -> None:
        seen.append(("failure", job_id, error))
        done.set()

    assert manager.on_failure(handle_failure) is handle_failure
    ok = await manager.submit(jobs.add, args={"a": 2, "b": 3})
    await asyncio.wait_for(done.wait(), 5)
    done.clear()
    bad = await manager.submit(jobs.fail, args={"message": "no luck"})
    await asyncio.wait_for(done.wait(), 5)
    assert seen[0] == ("complete", ok.id, 5)
    kind, job_id, error = seen[1]
    assert (kind, job_id) == ("failure", bad.id)
    assert isinstance(error, JobFailed) and "no luck" in str(error)


async def test_cancel(manager: JobManager) -> None:
    job = await manager.submit(jobs.sleep, args={"seconds": 30})
    async with asyncio.timeout(5):
        while (j := await manager.get(job.id)) is None or j.status != JobStatus.RUNNING:
            await asyncio.sleep(0.01)
    assert await manager.cancel(job.id) is True
    got = await manager.get(job.id)  # at once, as the seed shows it
    assert got is not None and got.status == JobStatus.CANCELLED
    with pytest.raises(JobFailed):
        await manager.wait(job.id, timeout=5)
    assert await manager.cancel(job.id) is False


async def test_retries_with_backoff(url: str, queue: str) -> None:
    calls: list[float] = []

    async def unreliable_task() -> str:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) < 3:
            raise RuntimeError("flaky")
        return "ok"

    async with JobManager(
        max_workers=4, max_retries=3, retry_delay=0.1, retry_backoff=2.0, url=url, queue=queue
    ) as manager:
        job = await manager.submit(unreliable_task)
        assert await manager.wait(job.id, timeout=10) == "ok"
        got = await manager.get(job.id)
        assert got is not None and got.attempt == 3
    assert calls[2] - calls[1] > calls[1] - calls[0]  # the second wait is the longer one


class VideoJobManager:
    """The seed's production example: bound methods as jobs and as handlers."""

    def __init__(self, url: str, queue: str) -> None:
        self.manager = JobManager(max_workers=2, max_retries=2, url=url, queue=queue)
        self.manager.on_complete(self.notify_user)
        self.manager.on_failure(self.handle_failure)
        self.notified: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def create_video(self, user_id: str, params: dict[str, Any]) -> str:
        job = await self.manager.submit(self.generate_video, args={"user_id": user_id, **params})
        return job.id

    async def generate_video(self, user_id: str, prompt: str, style: str) -> dict[str, str]:
        script = await self.generate_script(prompt)
        return {"video_url": f"https://cdn/{style}/{script}.mp4", "user_id": user_id}

    async def generate_script(self, prompt: str) -> str:
        await asyncio.sleep(0.01)
        return prompt.replace(" ", "-")

    async def notify_user(self, job_id: str, result: dict[str, Any]) -> None:
        await self.notified.put((job_id, result))

    async def handle_failure(self, job_id: str, error: Exception) -> None:
        await self.notified.put((job_id, error))


async def test_bound_methods_as_jobs_and_handlers(url: str, queue: str) -> None:
    videos = VideoJobManager(url, queue)
    try:
        job_id = await videos.create_video("u1", {"prompt": "a cat", "style": "anime"})
        done_id, result = await asyncio.wait_for(videos.notified.get(), 5)
        assert done_id == job_id
        assert result == {"video_url": "https://cdn/anime/a-cat.mp4", "user_id": "u1"}
    finally:
        await videos.manager.close()


async def test_batch_processing_runs_max_workers_at_once(url: str, queue: str) -> None:
    running = peak = 0

    def process_item(n: int) -> int:  # a plain function: it runs in a thread
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        import time

        time.sleep(0.05)
        running -= 1
        return n * n

    async with JobManager(max_workers=8, url=url, queue=queue) as manager:
        ids = [(await manager.submit(process_item, args={"n": n})).id for n in range(24)]
        results = [await manager.wait(job_id, timeout=10) for job_id in ids]
        assert results == [n * n for n in range(24)]
        assert 1 < peak <= 8
        assert len(await manager.list_jobs(JobStatus.COMPLETED)) == 24
        assert await manager.list_jobs(JobStatus.FAILED) == []


async def test_a_handler_that_raises_breaks_nothing(manager: JobManager) -> None:
    got: asyncio.Queue[str] = asyncio.Queue()

    @manager.on_complete
    def broken(job_id: str, result: Any) -> None:
        raise RuntimeError("handler bug")

    @manager.on_complete
    async def fine(job_id: str, result: Any) -> None:
        await got.put(job_id)

    first = await manager.submit(jobs.add, args={"a": 1, "b": 1})
    second = await manager.submit(jobs.add, args={"a": 1, "b": 2})
    assert {await asyncio.wait_for(got.get(), 5) for _ in range(2)} == {first.id, second.id}


async def test_no_url_runs_embedded_in_this_process() -> None:
    manager = JobManager(max_workers=2)
    assert manager.url.startswith("memory://")
    try:
        job = await manager.submit(lambda x: x * 2, args={"x": 21})
        assert await manager.wait(job.id, timeout=5) == 42
    finally:
        await manager.close()


@pytest.mark.redis_only
async def test_fleet_mode_leaves_importable_functions_to_workers(url: str, queue: str) -> None:
    async with JobManager(url=url, queue=queue, run_workers=False) as manager:
        completed: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        manager.on_complete(lambda job_id, result: completed.put_nowait((job_id, result)))
        with pytest.raises(ValueError, match="cannot run on workers in other processes"):
            await manager.submit(lambda: 1)
        job = await manager.submit(jobs.add, args={"a": 20, "b": 22})
        async with Worker(url, queue=queue, modules=["tests.jobs"], handle_signals=False):
            assert await asyncio.wait_for(completed.get(), 5) == (job.id, 42)
        assert (await manager.get(job.id)).status == JobStatus.COMPLETED  # type: ignore[union-attr]


def test_fleet_mode_needs_a_shared_redis() -> None:
    with pytest.raises(ValueError, match="needs a Redis URL"):
        JobManager(run_workers=False)


async def test_sync_functions_run_in_the_worker_own_bounded_threads(url: str, queue: str) -> None:
    release = threading.Event()

    def blocking(job_id: str, manager: JobManager) -> list[Any]:
        release.wait(10)
        return [threading.current_thread().name, job_id, isinstance(manager, JobManager)]

    async with JobManager(max_workers=2, url=url, queue=queue, timeout=0.3) as m:
        assert m._worker is not None
        stuck = await m.submit(blocking)
        with pytest.raises(JobFailed, match=r"timed out after 0\.3 s"):
            await m.wait(stuck.id, timeout=5)
        # Its thread still runs: the worker counts it, as for any call job.
        assert m._worker.hung_threads == 1
        release.set()
        async with asyncio.timeout(5):
            while m._worker.hung_threads:
                await asyncio.sleep(0.01)
        done = await m.submit(blocking)
        name, job_id, got_manager = await m.wait(done.id, timeout=5)
        assert name == f"redisjobs-call-{done.id}" and job_id == done.id and got_manager


async def test_submit_checks_arguments_before_enqueueing(manager: JobManager) -> None:
    async def job(data: list[int], job_id: str, manager: JobManager) -> int:
        return len(data)

    with pytest.raises(TypeError, match="missing a required argument: 'data'"):
        await manager.submit(job, args={})
    with pytest.raises(TypeError, match="unexpected keyword argument 'extra'"):
        await manager.submit(job, args={"data": [1], "extra": 2})
    assert await manager.list_jobs() == []
    done = await manager.submit(job, args={"data": [1, 2]})  # job_id and manager: the worker's
    assert await manager.wait(done.id, timeout=10) == 2


async def test_submit_a_task_of_an_app(manager: JobManager) -> None:
    from tests.tasks_app import area

    job = await manager.submit(area, args={"width": 3, "height": 5})
    assert await manager.wait(job.id, timeout=10) == 15
    stored = await manager.get(job.id)
    assert stored is not None and stored.payload["fn"] == "tests.tasks_app:area"
