"""The operator's views and actions in headless Chromium: bulk retry of 50 failed jobs, pause
from the page, a chart that moves while a worker runs, quiet from the Workers page; each view
saved as a screenshot and checked by axe-core (vendored) for serious accessibility violations.

The browser and its arguments are :mod:`.browsing`'s (Debian's ``chromium``, skipped where it or
the ``playwright`` package is missing).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from redis.typing import EncodableT

from redisjobs import Client, JobFailed, Worker
from redisjobs.dashboard import create_app
from redisjobs.history import MINUTE_MS
from redisjobs.testing import RedisServer

from .browsing import needs_chromium, new_page
from .conftest import serving

pytestmark = needs_chromium
AXE = Path(__file__).parent / "vendor" / "axe" / "axe.min.js"
SERIOUS = ("serious", "critical")


async def _until(check: Any, timeout: float = 20.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.05)
    return found


def _worker(url: str, queue: str, **options: Any) -> Worker:
    options.setdefault("modules", ["tests.jobs"])
    return Worker(url, queue=queue, handle_signals=False, poll_interval=0.05, **options)


async def _failed(client: Client, queue: str, n: int) -> list[str]:
    """`n` jobs of `queue` that failed for good (run by a worker that stops after)."""
    rows = [
        {"kind": "call", "payload": {"fn": "tests.jobs:fail", "args": [f"upstream {i} down"]},
         "max_retries": 0}
        for i in range(n)
    ]  # fmt: skip
    jobs = await client.enqueue_many(rows, queue=queue)
    async with _worker(client.backend.url, queue, concurrency=16):
        for job in jobs:
            with pytest.raises(JobFailed):
                await client.wait(job.id, queue=queue, timeout=20)
    return [j.id for j in jobs]


async def test_bulk_retry_of_50_failed_jobs(
    private_redis: RedisServer, browser: Any, shots: Path
) -> None:
    queue = "billing"
    async with Client(private_redis.url, queue=queue) as client:
        ids = await _failed(client, queue, 50)
        async with serving(create_app(client)) as base:
            view = await new_page(browser, 1280, 900)
            page = view.page
            await page.goto(f"{base}/queues/{queue}?status=failed")
            assert await page.locator("tr[data-job]").count() == 50
            assert await page.locator("td.error-cell", has_text="upstream 7 down").count() == 1
            await page.screenshot(path=shots / "queue-failed.png", full_page=True)
            await page.check("[data-pick-all]")
            await _until(lambda: _text(page, "[data-selected]", "50 selected:"))
            await page.click("#bulk button[value=retry]")  # its confirm() is accepted
            await page.wait_for_selector("text=50 selected jobs are back in their queue")
            statuses = [(await client.get(i)).status.value for i in ids]  # type: ignore[union-attr]
            assert statuses == ["pending"] * 50
            assert view.errors == []


async def _text(page: Any, selector: str, wanted: str) -> bool:
    return bool(await page.locator(selector).inner_text() == wanted)


async def test_pause_and_resume_from_the_page(private_redis: RedisServer, browser: Any) -> None:
    queue = "exports"
    async with Client(private_redis.url, queue=queue) as client:
        await client.enqueue("call", {"fn": "tests.jobs:add", "args": [1, 2]})
        async with serving(create_app(client)) as base:
            view = await new_page(browser, 1280, 900)
            await view.page.goto(f"{base}/queues/{queue}")
            await view.page.click(".head-actions button:has-text('Pause')")
            await view.page.wait_for_selector("h1 .badge:has-text('paused')")
            assert await client.is_paused()
            await view.page.click(".head-actions button:has-text('Resume')")
            await view.page.wait_for_selector("text=The queue is resumed")
            assert not await client.is_paused()
            assert view.errors == []


async def test_a_chart_moves_while_a_worker_runs(
    private_redis: RedisServer, browser: Any, shots: Path
) -> None:
    queue = "thumbnails"
    async with Client(private_redis.url, queue=queue) as client:
        slow = {"kind": "call", "payload": {"fn": "tests.jobs:sleep", "args": [0.05]}}
        await client.enqueue_many([slow] * 600)
        await _earlier_hour(client)
        async with _worker(private_redis.url, queue, concurrency=2, lease_ttl=1.5):
            # its first registry refresh notes this minute: the charts start from that note
            await _until(lambda: client.history())
            async with serving(create_app(client)) as base:
                view = await new_page(browser, 1280, 900)
                page = view.page
                await page.goto(f"{base}/queues/{queue}")
                await page.wait_for_selector('#live[data-state="live"]')
                assert await page.locator("[data-chart] canvas").count() == 3  # drawn
                live = await _until(lambda: _live_values(page, 3))
                assert len(set(live)) >= 3 and max(live) > 0, live  # the live point moves
                await page.screenshot(path=shots / "queue.png", full_page=True)
                for minutes in ("360", "1440"):
                    await page.click(f"[data-range='{minutes}']")
                    pressed = page.locator(f"[data-range='{minutes}'][aria-pressed=true]")
                    await pressed.wait_for()
                assert view.errors == []


async def _earlier_hour(client: Client) -> None:
    """The 45 minutes before this one, as busy workers would have noted them, and the queue's
    counters as those workers would have left them (so the screenshot shows an hour)."""
    minute = int(await client.server_time() * 1000) // MINUTE_MS * MINUTE_MS
    done = failed = 0
    for m in range(45, 0, -1):
        done += 900 + 500 * ((m * 7) % 5)
        failed += (m * 3) % 7
        t = minute - m * MINUTE_MS
        note: dict[EncodableT, EncodableT] = {"t": t + 4000, "enqueued": done}
        note |= {"completed": done - failed, "failed": failed, "retried": 0, "cancelled": 0}
        note |= {"waiting": 0, "pending": 300 + 40 * (m % 9), "scheduled": 12, "running": 2}
        note["latency"] = 2000 + 300 * (m % 9)
        await client.redis.xadd(client.keys().history, note, id=f"{t}-0")
    stats = client.keys().stats  # started with enqueued: the pending count stays as it is
    for name, value in (("enqueued", done), ("started", done), ("completed", done - failed)):
        await client.redis.hincrby(stats, name, value)
    await client.redis.hincrby(stats, "failed", failed)


async def _live_values(page: Any, n: int) -> list[float]:
    """The chart's live point (processed per minute) as it changes, once `n` values showed."""
    values: list[float] = []
    async with asyncio.timeout(20):
        while len(set(values)) < n:
            text = await page.get_attribute("[data-history]", "data-live")
            if text:
                values.append(float(text))
            await asyncio.sleep(0.3)
    return values


async def test_quiet_a_worker_from_the_workers_page(
    private_redis: RedisServer, browser: Any, shots: Path
) -> None:
    queue = "mail"
    async with (
        Client(private_redis.url, queue=queue) as client,
        _worker(private_redis.url, queue, lease_ttl=1.5) as w,
    ):
        await _until(lambda: _alive(client, w.id))
        async with serving(create_app(client)) as base:
            view = await new_page(browser, 1280, 900)
            page = view.page
            await page.goto(f"{base}/workers")
            await page.wait_for_selector('#live[data-state="live"]')
            row = page.locator(f'tr[data-worker="{w.id}"]')
            await row.locator("button:has-text('Quiet')").click()
            await page.wait_for_selector("text=Asked the worker to go quiet")
            # the page follows: the row turns quiet without a reload, its Quiet button gone
            await page.locator(f'tr[data-worker="{w.id}"][data-state="quiet"]').wait_for()
            assert await row.locator("button:has-text('Quiet')").count() == 0
            assert not w.ready
            await page.screenshot(path=shots / "workers.png", full_page=True)
            assert view.errors == []


async def _alive(client: Client, worker_id: str) -> bool:
    return any(w.id == worker_id for w in await client.workers())


async def test_every_view_passes_axe(private_redis: RedisServer, browser: Any, shots: Path) -> None:
    """Every view, light and dark, has no serious or critical accessibility violation."""
    queue = "a11y"
    async with Client(private_redis.url, queue=queue) as client:
        await _failed(client, queue, 2)
        later = await client.enqueue("call", {"fn": "tests.jobs:add", "args": [1, 2]}, delay=600)
        await client.schedule("hourly", "call", {"fn": "tests.jobs:add"}, every=3600, queue=queue)
        await client.set_limit(queue, key="acme", rate=5, per=60)
        async with (
            _worker(private_redis.url, queue, lease_ttl=1.5),
            serving(create_app(client)) as base,
        ):
            await _until(lambda: client.history(queue))
            paths = {
                "overview": "/",
                "queue": f"/queues/{queue}",
                "scheduled": f"/queues/{queue}?status=scheduled",
                "job": f"/queues/{queue}/jobs/{later.id}",
                "workers": "/workers",
                "dead-letters": "/dead",
                "schedules": "/schedules",
                "limits": "/limits",
            }
            for scheme in ("light", "dark"):
                view = await new_page(browser, 1280, 900, color_scheme=scheme, bypass_csp=True)
                for name, path in paths.items():
                    await view.page.goto(base + path)
                    await view.page.wait_for_load_state("networkidle")
                    if scheme == "light" and name in ("schedules", "limits"):
                        await view.page.screenshot(path=shots / f"{name}.png", full_page=True)
                    if scheme == "dark" and name == "overview":
                        await view.page.screenshot(path=shots / "overview-dark.png", full_page=True)
                    bad = await _axe(view.page)
                    assert bad == [], f"{name} ({scheme}): {bad}"
                assert view.errors == []


async def _axe(page: Any) -> list[str]:
    """The serious and critical violations axe-core finds on the page, as text."""
    await page.add_script_tag(path=str(AXE))  # the context bypasses the CSP to take it
    results = await page.evaluate("async () => await axe.run(document)")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results["violations"]
        if v["impact"] in SERIOUS
    ]
