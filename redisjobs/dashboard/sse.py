"""Server-Sent Events: the response type, and the streams the pages and the API follow.

Every stream is made of our own events: a queue's event log, followed live after a replay from
a cursor (``?since=`` on the first request, ``Last-Event-ID`` when the browser reconnects), so
a page that reconnects misses nothing the log still holds.

An event's SSE id is its log id, live or replayed, so a page resumes exactly after the last
event it saw. Consumers apply events idempotently (a progress value, a status) all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..cancelling import cancel_and_wait
from ..client import Client
from ..events import Event
from ..job import FINAL_STATUSES, Job
from .data import Summaries
from .present import event_json, job_json, to_json

PING_SECONDS = 15.0
"""An idle stream sends a comment this often: proxies keep it open, a dead peer shows up."""
RETRY_MS = 2_000
"""How long a browser waits before it reconnects a dropped stream."""
STATS_SECONDS = 1.0
"""A queue's counts are sent at most this often while its events keep coming."""
TICK_SECONDS = 5.0
"""Every stream of counts also sends them this often: workers come and go without events."""

FRAGMENT_SECONDS = 2.0
"""How often a list page's stream renders its list again (sent only when it changed)."""

_CURSOR = re.compile(r"^\d{1,20}(-\d{1,20})?$")
_END = object()
log = logging.getLogger("redisjobs.dashboard")


def message(data: Any, *, event: str | None = None, id: str | None = None) -> str:
    """One SSE message; `data` is sent as one line of JSON."""
    head = f"event: {event}\n" if event else ""
    if id is not None:
        head += f"id: {id}\n"
    return f"{head}data: {to_json(data)}\n\n"


def is_cursor(text: str) -> bool:
    """Whether `text` is a log id (``<ms>[-<seq>]``)."""
    return bool(_CURSOR.match(text))


def cursor(request: Request) -> str | None:
    """Where to resume: the browser's ``Last-Event-ID``, else ``?since=``; None when neither
    is a log id (``0`` replays the whole log)."""
    for value in (request.headers.get("last-event-id"), request.query_params.get("since")):
        if value and _CURSOR.match(value):
            return value
    return None


def event_id(ev: Event) -> str:
    """The SSE id of an event: its log id (``<ts>-0`` for an event that has none, which every
    event read from a log has: such an id resumes after the events of earlier milliseconds)."""
    return ev.id or f"{ev.ts}-0"


class EventStream(Response):
    """A ``text/event-stream`` response fed by an async iterator of :func:`message` strings.

    It ends when the iterator ends or the client goes away; the iterator is closed either way,
    which closes its tails of the event log. It does not rely on the server to notice a client that
    left: it watches for ``http.disconnect`` itself, and pings keep idle connections honest.
    """

    media_type = "text/event-stream"

    def __init__(self, source: AsyncGenerator[str, None], *, ping: float = PING_SECONDS) -> None:
        self.source = source
        self.ping = ping
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream until the source ends, the client disconnects or the server closes it."""
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        closing = asyncio.Event()
        _open.add(closing)
        pump = asyncio.create_task(self._pump(send))
        gone = asyncio.create_task(_disconnected(receive))
        closed = asyncio.create_task(closing.wait())
        tasks = (pump, gone, closed)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            _open.discard(closing)
            await cancel_and_wait(tasks)
            await self.source.aclose()
        ended = pump.done() and not pump.cancelled() and pump.exception() is None
        if ended or closing.is_set():
            with contextlib.suppress(OSError):  # the client may leave at this very moment
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, send: Send) -> None:
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=100)

        async def read() -> None:
            try:
                async for item in self.source:
                    await queue.put(item)
            except Exception as exc:  # Redis went away, say: end; the browser reconnects
                log.warning("event stream ended: %s", exc)
            await queue.put(_END)

        reader = asyncio.create_task(read())
        try:
            await self._send(send, f"retry: {RETRY_MS}\n\n")
            while True:
                try:
                    # Waiting on the queue, not on the iterator: a timeout here must not
                    # cancel the iterator halfway through a Redis read.
                    item = await asyncio.wait_for(queue.get(), self.ping)
                except TimeoutError:
                    await self._send(send, ": ping\n\n")
                    continue
                if item is _END:
                    return
                await self._send(send, str(item))
        finally:
            await cancel_and_wait([reader])

    @staticmethod
    async def _send(send: Send, text: str) -> None:
        await send({"type": "http.response.body", "body": text.encode(), "more_body": True})


_open: set[asyncio.Event] = set()
"""The streams being served in this process, each by the event that ends it."""


def close_streams() -> None:
    """End every open stream now, cleanly (a server that shuts down calls this first)."""
    for closing in list(_open):
        closing.set()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _Ended(Exception):
    """The job ended while the pub/sub connection was down (found by the recheck)."""


async def job_stream(client: Client, job: Job, since: str | None) -> AsyncGenerator[str, None]:
    """A job's events (replayed from `since`, else from its creation), until it ends.

    The last message is ``event: end`` with the job as it ended, so a reader knows the stream
    is over and has the result without another request.
    """
    created_ms = int(job.created_at.timestamp() * 1000)
    start = since or f"{max(created_ms - 1, 0)}-0"

    async def recheck() -> None:
        current = await client.get(job.id, queue=job.queue)
        if current is None or current.status.value in FINAL_STATUSES:
            raise _Ended

    if job.status.value not in FINAL_STATUSES:
        # Replaying from `start` covers an end that lands between our read and the follow.
        events = client.events(job.id, queue=job.queue, since=start, on_recheck=recheck)
        try:
            async for ev in events:
                yield message(event_json(ev), id=event_id(ev))
                if ev.type in FINAL_STATUSES:
                    break
        except _Ended:
            pass
        finally:
            await events.aclose()
    else:
        # Already over: what the log holds after `start`, then the end.
        async for ev in client.replay(job.id, queue=job.queue, since=start):
            yield message(event_json(ev), id=event_id(ev))
    final = await client.get(job.id, queue=job.queue)
    yield message(job_json(final or job, payload=False), event="end")


async def flow_stream(
    client: Client,
    refs: frozenset[str],
    since: str | None,
    unended: Callable[[], Awaitable[set[str]]],
) -> AsyncGenerator[str, None]:
    """The events of the jobs `refs` (``queue/id``: a flow's), replayed from `since`, until
    each job `unended` named has sent its final event and `unended` names none any more
    (a retry opens a job again); then ``event: end`` (no data of note).

    The end is told by the final events themselves, not by a read alone: a read can see a job
    ended before its event reached the stream, and the page would miss it. Each queue of
    `refs` is followed whole and its other jobs' events dropped.
    """
    fanin = _Fanin(client, since)
    try:
        await fanin.watch(sorted({ref.partition("/")[0] for ref in refs}))
        # Read once following: every later end has its event. Jobs the panel did not show
        # (a dependent added since) are not followed.
        waiting = await unended() & refs
        while waiting:
            ev = await fanin.get(TICK_SECONDS)
            ref = f"{ev.queue}/{ev.job_id}" if ev is not None else ""
            if ev is None or ref not in refs:
                continue
            yield message(event_json(ev), id=event_id(ev))
            if ev.type in FINAL_STATUSES:
                waiting.discard(ref)
                waiting = waiting or await unended() & refs
    finally:
        await fanin.aclose()
    yield message({}, event="end")


class _Fanin:
    """The events of several queues in one inbox: one follower task per queue.

    Args:
        client: where to follow.
        since: replay each queue's log from here first (None: from its end as it is now).
    """

    def __init__(self, client: Client, since: str | None) -> None:
        self.client = client
        self.since = since
        self.inbox: asyncio.Queue[Event] = asyncio.Queue(maxsize=10_000)
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def watch(self, names: list[str]) -> None:
        """Follow these queues too, from their logs' ends as they are when this returns."""
        for name in names:
            if name not in self.tasks:
                # Without a cursor, start at the log's end as it is now, read before returning:
                # whatever the caller sends next (counts) is older than every event that
                # follows, and the replay from here covers the moment until the follow begins.
                start = self.since or await self.client.log_cursor(name)
                self.tasks[name] = asyncio.create_task(self._follow(name, start))

    async def _follow(self, name: str, start: str) -> None:
        async for ev in self.client.events(queue=name, since=start):
            if not self.inbox.full():  # in a flood, counts catch up at the next tick
                self.inbox.put_nowait(ev)

    async def get(self, timeout: float) -> Event | None:
        """The next event, or None after `timeout` seconds; raises when a follower died."""
        for name, task in self.tasks.items():
            if task.done():  # its error ends the stream, and the browser reconnects
                task.result()
                raise RuntimeError(f"event follower of queue {name} ended")
        try:
            return await asyncio.wait_for(self.inbox.get(), max(timeout, 0))
        except TimeoutError:
            return None

    async def aclose(self) -> None:
        """Stop every follower (their tails of the log close with them)."""
        await cancel_and_wait(self.tasks.values())


async def summaries_stream(
    client: Client,
    summaries: Summaries,
    queues: list[str] | None,
    *,
    since: str | None = None,
    job_events: bool = False,
) -> AsyncGenerator[str, None]:
    """Live counts of some queues (None: of every queue, including new ones).

    Sends ``event: overview`` with every summary and the worker count at once and every
    :data:`TICK_SECONDS` (workers come and go without events), and ``event: stats`` with one
    queue's summary when its events say it changed, at most every :data:`STATS_SECONDS`. With
    `job_events`, the events themselves go out too, as plain messages with ids, replayed from
    `since` first.
    """
    fanin = _Fanin(client, since if job_events else None)
    loop = asyncio.get_running_loop()
    try:
        await fanin.watch(queues if queues is not None else await client.queues())
        yield await _overview(summaries, queues)
        dirty: dict[str, float] = {}  # queue -> when its latest event arrived
        next_stats, next_tick = loop.time(), loop.time() + TICK_SECONDS
        while True:
            due = min(next_stats, next_tick) if dirty else next_tick
            ev = await fanin.get(due - loop.time())
            if ev is not None:
                dirty[ev.queue] = time.monotonic()
                if job_events:
                    yield message(event_json(ev), id=event_id(ev))
            now = loop.time()
            if dirty and now >= next_stats:
                for name, seen in sorted(dirty.items()):
                    yield message((await summaries.get(name, seen)).json(), event="stats")
                dirty.clear()
                next_stats = now + STATS_SECONDS
            if now >= next_tick:
                if queues is None:
                    await fanin.watch(await client.queues())
                yield await _overview(summaries, queues)
                next_tick = now + TICK_SECONDS
    finally:
        await fanin.aclose()


async def _overview(summaries: Summaries, queues: list[str] | None) -> str:
    if queues is None:
        items = await summaries.all()
    else:
        items = [await summaries.get(name) for name in queues]
    workers = await summaries.workers()
    return message({"queues": [s.json() for s in items], "workers": len(workers)}, event="overview")


async def fragment_stream(
    render: Callable[[], Awaitable[str]], period: float = FRAGMENT_SECONDS
) -> AsyncGenerator[str, None]:
    """A page's ``live`` part, rendered every `period` seconds and sent (``event: fragment``,
    ``{"html": …}``) whenever it differs from the last one sent: the first at once."""
    last = None
    while True:
        html = await render()
        if html != last:
            yield message({"html": html}, event="fragment")
            last = html
        await asyncio.sleep(period)
