"""``redisjobs watch JOB``: a job's progress, live from its events, until it ends."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

from ..client import Client
from ..errors import JobNotFound
from ..events import Event
from ..job import FINAL_STATUSES, Job
from .common import connect, find_job
from .render import is_terminal, print_json_line, terminal_width, to_json

BAR = 30
RECHECK_SECONDS = 5.0
"""Re-read the job after this long without an event: a pub/sub reconnect may have lost one."""


@dataclass(slots=True)
class State:
    """What the view shows of a job."""

    id: str
    status: str
    progress: float
    message: str
    attempt: int
    result: Any = None
    error: str | None = None
    name: str = ""

    @classmethod
    def of(cls, job: Job) -> State:
        """The state as recorded in Redis."""
        return cls(
            job.id,
            job.status,
            job.progress,
            job.progress_message or "",
            job.attempt,
            job.result,
            job.error,
            job.name,
        )

    @property
    def final(self) -> bool:
        """Whether the job has ended."""
        return self.status in FINAL_STATUSES

    def apply(self, ev: Event) -> None:
        """Move on by one of the job's events."""
        if ev.type == "started":
            self.status, self.attempt = "running", ev.attempt
        elif ev.type == "progress":
            self.progress = float(ev.data.get("progress", self.progress))
            self.message = str(ev.data.get("message") or "")
        elif ev.type == "retrying":
            self.status, self.message = "retrying", f"after: {ev.data.get('error')}"
        elif ev.type == "reclaimed":
            self.status, self.message = "pending", "its worker died; it runs again"
        elif ev.type == "released":
            self.status, self.message = "pending", "its worker stopped; it runs again"
        elif ev.type == "ready":
            self.status, self.message = "pending", "the jobs it waited for completed"
        elif ev.type == "waiting":
            self.status, self.message = "waiting", "a job it waits for runs again"
        elif ev.type == "deferred":
            self.status, self.message = "scheduled", "rate limited; it runs again later"
        elif ev.type in FINAL_STATUSES:
            self.status = ev.type
            self.result, self.error = ev.data.get("result"), ev.data.get("error")


class View:
    """Shows a job's state: a bar redrawn in place on a terminal, else a line per change.

    Args:
        as_json: one JSON object per change instead (the last one has the result or error).
    """

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self.live = is_terminal() and not as_json
        self._last = ""

    def show(self, state: State) -> None:
        """Show `state` if it differs from what is shown."""
        text = to_json(asdict(state)) if self.as_json else self._line(state)
        if text == self._last:
            return
        self._last = text
        if self.live:
            sys.stdout.write("\r\x1b[2K" + text[: terminal_width() - 1])
            sys.stdout.flush()
        elif self.as_json:
            print_json_line(asdict(state))
        else:
            print(text, flush=True)

    def _line(self, state: State) -> str:
        line = f"{state.progress:5.1f}%  {state.status}  attempt {state.attempt}  {state.message}"
        if self.live:
            filled = int(state.progress / 100 * BAR)
            line = "█" * filled + "·" * (BAR - filled) + " " + line
        return line.rstrip()

    def end(self, state: State) -> None:
        """Show how the job ended: its result or its error."""
        if self.as_json:
            return  # the last line already has it
        if self.live:
            print()
        outcome = to_json(state.result) if state.status == "completed" else state.error
        print(f"{state.status}: {outcome}")


async def watch(args: argparse.Namespace) -> int:
    """Follow a job until it ends; exit status 0 when it completed, 1 otherwise."""
    async with connect(args.redis, args.command) as client:
        found = await find_job(client, args.job_id, args.queue)
        queue = found.queue
        if not args.json:  # what the job runs, once: it does not change while it is watched
            print(found.call_text(max(terminal_width() - 1, 20)), flush=True)
        # The log position before reading the job: following from it closes the gap between
        # that read and the follow, so no event is missed.
        cursor = await client.log_cursor(queue)
        state = await _state(client, args.job_id, queue)
        view = View(as_json=args.json)
        view.show(state)
        if not state.final:
            state = await _follow(client, queue, cursor, state, view)
    view.end(state)
    return 0 if state.status == "completed" else 1


async def _state(client: Client, job_id: str, queue: str) -> State:
    job = await client.get(job_id, queue=queue)
    if job is None:
        raise JobNotFound(f"job {job_id!r} no longer exists (expired after its result_ttl)")
    return State.of(job)


async def _follow(client: Client, queue: str, cursor: str, state: State, view: View) -> State:
    async with job_events(client, state.id, queue, cursor) as events:
        while not state.final:
            try:
                state.apply(await asyncio.wait_for(events.get(), RECHECK_SECONDS))
            except TimeoutError:
                state = await _state(client, state.id, queue)
            view.show(state)
    return state


@contextlib.asynccontextmanager
async def job_events(
    client: Client, job_id: str, queue: str, cursor: str
) -> AsyncIterator[asyncio.Queue[Event]]:
    """The job's events after `cursor` (a :meth:`Client.log_cursor`), live, put on a queue.

    A queue rather than the generator, so that waiting for the next event can time out
    without ending the generator (cancelling an `anext` closes it).
    """
    events: asyncio.Queue[Event] = asyncio.Queue()
    pump = asyncio.create_task(
        _pump(client.events(job_id, queue=queue, since=cursor), events), name="events"
    )
    try:
        yield events
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump


async def _pump(source: AsyncIterator[Event], sink: asyncio.Queue[Event]) -> None:
    async for ev in source:
        sink.put_nowait(ev)
