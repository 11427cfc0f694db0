"""End to end in headless Chromium: Debian's ``chromium``, driven by Playwright.

Playwright drives the browser the system has (``executable_path``); it never downloads one. The
tests skip, saying why, where that browser or the ``playwright`` package is missing; CI installs
both (``.ci/run``). Each view is also saved as a screenshot: into ``$REDISJOBS_SCREENSHOTS`` when
set, else the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from redisjobs import Client, Worker
from redisjobs.dashboard import create_app
from redisjobs.testing import RedisServer
from tests.jobs import Greeter, echo, fail, progress, until_cancelled

from .browsing import async_api, needs_chromium, new_page
from .conftest import serving

pytestmark = needs_chromium


async def _until(check: Any, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def _status(client: Client, job_id: str, queue: str) -> str:
    job = await client.get(job_id, queue=queue)
    return job.status.value if job else "gone"


async def _scene(url: str, client: Client) -> tuple[list[Worker], str]:
    """Queues in every state a person would look at; returns the workers and a running job."""
    q = {name: name for name in ("emails", "reports", "thumbnails")}  # (the module's own Redis)
    emails = Worker(url, queue=q["emails"], functions=[echo, progress], executors=[Greeter()],
                    concurrency=8, handle_signals=False, poll_interval=0.05)  # fmt: skip
    reports = Worker(url, queue=q["reports"], functions=[fail], concurrency=4,
                     handle_signals=False, poll_interval=0.05)  # fmt: skip
    workers = [emails, reports]
    for w in workers:
        await w.__aenter__()
    done = await client.enqueue_many(
        [("call", {"fn": "echo", "args": [{"to": f"user{i}@example.com"}]}) for i in range(9)]
        + [("greet", {"name": "Ada"}), ("greet", {"name": "<script>alert(1)</script>"})],
        queue=q["emails"],
    )
    for message in ("upstream timed out after 30 s", "KeyError: 'customer_id'", "disk full"):
        await client.enqueue(
            "call", {"fn": "fail", "args": [message]}, queue=q["reports"], max_retries=0
        )
    running = await client.enqueue(
        "call", {"fn": "progress", "args": {"steps": 200, "pause": 0.25}}, queue=q["emails"]
    )
    await client.enqueue(
        "call", {"fn": "progress", "args": {"steps": 200, "pause": 0.3}}, queue=q["emails"]
    )
    await client.enqueue("call", {"fn": "echo", "args": ["later"]}, queue=q["emails"], delay=3600)
    await client.enqueue_many(
        [("call", {"fn": "resize", "args": [f"img{i}.png", 640]}) for i in range(6)],
        queue=q["thumbnails"],
    )
    for job in done:
        await _until(lambda j=job: _done(client, j.id, q["emails"]))
    await _until(lambda: _progress_over(client, running.id, q["emails"], 8))
    return workers, running.id


async def _done(client: Client, job_id: str, queue: str) -> bool:
    return await _status(client, job_id, queue) == "completed"


async def _progress_over(client: Client, job_id: str, queue: str, value: float) -> bool:
    job = await client.get(job_id, queue=queue)
    return job is not None and job.progress > value


async def _stop(workers: list[Worker]) -> None:
    for w in workers:
        w.stop(now=True)
        await w.__aexit__(None, None, None)


async def test_every_view_renders_cleanly(
    private_redis: RedisServer, browser: Any, shots: Path
) -> None:
    url = private_redis.url
    async with Client(url) as client:
        workers, running = await _scene(url, client)
        try:
            emails = "emails"
            async with serving(create_app(client)) as base:
                view = await new_page(browser)
                page = view.page
                await page.goto(base + "/")
                await page.wait_for_selector('#live[data-state="live"]')
                assert await page.locator(".card").count() == 3
                assert await page.locator(".card .warning:visible").count() == 1  # thumbnails
                await page.screenshot(path=shots / "overview.png", full_page=True)

                await page.click(f'.card[data-queue="{emails}"] h2 a')
                await page.wait_for_selector('#live[data-state="live"]')
                assert await page.locator("tr[data-job]").count() >= 12
                await page.screenshot(path=shots / "queue.png", full_page=True)

                await page.goto(f"{base}/queues/{emails}/jobs/{running}")
                await page.wait_for_selector('#live[data-state="live"]')
                await _until(lambda: _moved(page))  # the bar is moving on its own
                await page.screenshot(path=shots / "job.png", full_page=True)

                await page.click("text=Workers")
                assert await page.locator("table.workers tbody tr").count() == 2
                await page.screenshot(path=shots / "workers.png", full_page=True)

                await page.click("text=Dead letters")
                assert await page.locator("tr[data-job]").count() == 3
                failed = page.locator("td.error-cell", has_text="upstream timed out after 30 s")
                assert await failed.count() == 1
                called = page.locator("td.call", has_text="fail('upstream timed out after 30 s')")
                assert await called.count() == 1  # each job led by its call
                await page.screenshot(path=shots / "dead-letters.png", full_page=True)
                assert view.errors == []

                narrow = await new_page(browser, width=390, height=844)
                await narrow.page.goto(base + "/")
                await narrow.page.wait_for_selector('#live[data-state="live"]')
                width = await narrow.page.evaluate("document.documentElement.scrollWidth")
                assert width <= 390  # no sideways scrolling on a phone
                await narrow.page.screenshot(path=shots / "overview-narrow.png", full_page=True)
                await narrow.page.goto(f"{base}/queues/{emails}")
                await narrow.page.screenshot(path=shots / "queue-narrow.png", full_page=True)
                assert narrow.errors == []
        finally:
            await _stop(workers)


async def _moved(page: Any) -> bool:
    first = float(await page.eval_on_selector('progress[data-field="progress"]', "e => e.value"))
    await asyncio.sleep(0.4)
    return (
        float(await page.eval_on_selector('progress[data-field="progress"]', "e => e.value"))
        > first
    )


async def _bar(page: Any) -> float | None:
    try:
        value = await page.eval_on_selector('progress[data-field="progress"]', "e => e.value")
    except async_api.Error:  # the page is navigating (it reloads itself when the job ends)
        return None
    return float(value)


async def test_progress_bar_moves_live_to_100(
    private_redis: RedisServer, browser: Any, shots: Path
) -> None:
    url = private_redis.url
    queue = f"live-{os.urandom(3).hex()}"
    async with Client(url, queue=queue) as client:
        job = await client.enqueue("call", {"fn": "progress", "args": {"steps": 10, "pause": 0.3}})
        async with serving(create_app(client)) as base:
            view = await new_page(browser)
            await view.page.goto(f"{base}/queues/{queue}/jobs/{job.id}")
            await view.page.wait_for_selector('#live[data-state="live"]')
            assert await _bar(view.page) == 0
            worker = Worker(url, queue=queue, functions=[progress], handle_signals=False)
            await worker.__aenter__()
            try:
                seen: list[float] = []
                async with asyncio.timeout(20):
                    while not seen or seen[-1] < 100:
                        value = await _bar(view.page)
                        if value is not None and (not seen or value != seen[-1]):
                            seen.append(value)
                            if value == 50:
                                await view.page.screenshot(path=shots / "job-running.png")
                        await asyncio.sleep(0.03)
                await _until(lambda: _is(client, job.id, queue, "completed"))
            finally:
                await _stop([worker])
            # Every step showed on the page while the job ran, without a reload.
            assert seen == sorted(seen) and len([v for v in seen if 0 < v < 100]) >= 5, seen
            badge = view.page.locator('h1 [data-field="status"]')
            await _until(lambda: _text_is(badge, "completed"))
            # The stream's `end` shows the page as the server renders a finished job: a reload
            # 0.4 s after it, which takes the Cancel button away (the Result can show before,
            # in the detail the `completed` event refreshed).
            cancel = "form button:has-text('Cancel job')"
            await view.page.wait_for_selector(cancel, state="detached")
            await view.page.wait_for_selector("h2:has-text('Result')")
            await view.page.screenshot(path=shots / "job-completed.png", full_page=True)
            assert view.errors == []


async def _text_is(locator: Any, text: str) -> bool:
    try:
        return bool(await locator.inner_text() == text)
    except async_api.Error:
        return False


async def test_cancel_from_the_page(private_redis: RedisServer, browser: Any) -> None:
    url = private_redis.url
    queue = f"cancel-{os.urandom(3).hex()}"
    async with Client(url, queue=queue) as client:
        worker = Worker(url, queue=queue, functions=[until_cancelled], handle_signals=False)
        await worker.__aenter__()
        try:
            job = await client.enqueue("call", {"fn": "until_cancelled"})
            await _until(lambda: _is(client, job.id, queue, "running"))
            async with serving(create_app(client)) as base:
                view = await new_page(browser)
                await view.page.goto(f"{base}/queues/{queue}/jobs/{job.id}")
                await view.page.wait_for_selector('#live[data-state="live"]')
                await view.page.click("button:has-text('Cancel job')")  # confirm() is accepted
                await _until(lambda: _is(client, job.id, queue, "cancelled"))
                badge = view.page.locator('h1 [data-field="status"]')
                await _until(lambda: _text_is(badge, "cancelled"))
                assert await view.page.locator("button:has-text('Cancel job')").count() == 0
                assert view.errors == []
        finally:
            await _stop([worker])


async def _is(client: Client, job_id: str, queue: str, status: str) -> bool:
    return await _status(client, job_id, queue) == status
