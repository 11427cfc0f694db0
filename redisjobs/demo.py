"""``redisjobs demo``: a producer, workers and a live progress view in one process.

On the embedded backend by default (nothing to install), or on a real Redis when ``--url`` or
``$REDIS_URL`` is given. Jobs report progress, one in three fails on its first attempt and is
retried with backoff, and the view follows everything through the queue's live events.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from typing import Any

from .client import Client
from .connection import resolve_url
from .events import FINAL_EVENTS, Event
from .executors import ExecContext
from .testing import unique_queue
from .worker import Worker

BAR = 24


async def render_video(ctx: ExecContext, name: str, steps: int, flaky: bool) -> dict[str, object]:
    """The demo's job: `steps` steps of work with progress, flaky ones fail once."""
    for i in range(steps):
        await asyncio.sleep(random.uniform(0.05, 0.2))
        await ctx.set_progress((i + 1) * 100 / steps, f"step {i + 1}/{steps}")
        if flaky and ctx.attempt == 1 and i == steps // 2:
            raise RuntimeError("encoder crashed (transient)")
    return {"name": name, "frames": steps * 24}


class View:
    """Job lines redrawn in place on a terminal; one line per event elsewhere."""

    def __init__(self, names: dict[str, str], live: bool) -> None:
        self.names = names
        self.state = {jid: ("pending", 0.0, "") for jid in names}
        self.live = live
        self._drawn = 0

    def apply(self, ev: Event) -> None:
        """Update a job's line from one of its events."""
        status, progress, note = self.state.get(ev.job_id, ("pending", 0.0, ""))
        if ev.type == "progress":
            progress = float(ev.data.get("progress", progress))
        elif ev.type == "started":
            status, note = "running", f"attempt {ev.attempt} on {ev.data.get('worker', '?')[-6:]}"
        elif ev.type == "retrying":
            status, note = "retrying", str(ev.data.get("error"))
        elif ev.type in FINAL_EVENTS:
            status = ev.type
            note = str(ev.data.get("result") or ev.data.get("error") or "")
            progress = 100.0 if ev.type == "completed" else progress
        self.state[ev.job_id] = (status, progress, note)
        if not self.live and ev.type != "progress":
            print(f"{self.names[ev.job_id]:<10} {ev.type:<10} {note}")

    def draw(self) -> None:
        """Redraw every line (terminal only)."""
        if not self.live:
            return
        out = [f"\x1b[{self._drawn}F"] if self._drawn else []
        for jid, name in self.names.items():
            status, progress, note = self.state[jid]
            filled = int(progress / 100 * BAR)
            bar = "█" * filled + "·" * (BAR - filled)
            out.append(f"\x1b[2K{name:<10} {bar} {progress:5.1f}%  {status:<10} {note[:40]}\n")
        sys.stdout.write("".join(out))
        sys.stdout.flush()
        self._drawn = len(self.names)


async def _follow(client: Client, view: View, ready: asyncio.Event) -> None:
    events = client.events()
    first = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)
    ready.set()
    ev = await first
    while True:
        view.apply(ev)
        if all(s[0] in FINAL_EVENTS for s in view.state.values()):
            return
        ev = await anext(events)


def _specs(jobs: int) -> list[dict[str, Any]]:
    """The demo's jobs: videos of 5 to 12 steps, every third one flaky (it fails, then retries)."""
    return [
        {
            "kind": "call",
            "payload": {
                "fn": "render_video",
                "args": {
                    "name": f"video-{i + 1}",
                    "steps": random.randint(5, 12),
                    "flaky": i % 3 == 1,
                },
            },
            "max_retries": 2,
            "retry_delay": 0.3,
        }
        for i in range(jobs)
    ]


async def run_demo(url: str | None, *, jobs: int = 12, workers: int = 2) -> int:
    """Run the demo; returns the exit code (0 when every job completed)."""
    url = resolve_url(url)
    queue = unique_queue("demo")
    print(
        f"redisjobs demo: {jobs} jobs, {workers} workers, queue {queue!r} on {url.split('@')[-1]}"
    )
    started = time.monotonic()
    pool = [
        Worker(url, queue=queue, functions=[render_video], concurrency=3, handle_signals=False)
        for _ in range(workers)
    ]
    async with Client(url, queue=queue) as client:
        for w in pool:
            await w.__aenter__()
        names = {}
        view = View({}, live=sys.stdout.isatty())
        ready = asyncio.Event()
        specs = _specs(jobs)
        follower = asyncio.create_task(_follow(client, view, ready))
        await ready.wait()
        for job, spec in zip(await client.enqueue_many(specs), specs, strict=True):
            names[job.id] = spec["payload"]["args"]["name"]
        view.names = names
        view.state = {jid: ("pending", 0.0, "") for jid in names}
        while not follower.done():
            view.draw()
            await asyncio.sleep(0.1)
        view.draw()
        await follower
        stats = await client.stats()
        for w in pool:
            await w.__aexit__(None, None, None)
    took = time.monotonic() - started
    print(
        f"done in {took:.1f} s: {stats['completed']} completed, {stats['retried']} retried, "
        f"{stats['failed']} failed"
    )
    return 0 if stats["completed"] == jobs else 1
