"""The HTML pages (their buttons' handlers are :mod:`.actions`').

Every page is rendered on the server with Jinja2's autoescaping; the one script file only
updates what the live streams report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from ..client import Client
from ..job import Job, JobStatus
from ..schedule_spec import Schedule
from . import charts, data, flows, joblist, present, sse
from .actions import queue_of
from .livepages import LivePages, whole
from .settings import Settings

PAGE_SIZE = 50
CANCELLABLE = frozenset(
    {JobStatus.WAITING, JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.RUNNING}
)


def environment() -> jinja2.Environment:
    """The template environment: the package's templates, always autoescaped."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("redisjobs.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        ago=present.ago,
        duration=present.duration,
        rate=present.rate,
        number=present.number,
        pretty=present.pretty,
        iso=present.iso,
        ts_iso=lambda ms: present.iso(present.from_ms(ms)),
        ts_ago=lambda ms, now=None: present.ago(present.from_ms(ms), now),
        event_details=present.event_details,
        collapse_progress=present.collapse_progress,
        pct=present.percent,
        call=present.call,
        size=present.size,
    )
    return env


@dataclass
class Pages(LivePages):
    """The page handlers of one dashboard.

    Args:
        client: where everything is read and changed.
        settings: read-only mode (the buttons are hidden, the handlers never reached).
    """

    client: Client
    settings: Settings

    def __post_init__(self) -> None:
        self.env = environment()
        self.summaries = data.Summaries(self.client)
        self.router = Router(routes=self.routes())

    # -- plumbing -------------------------------------------------------------------------------

    async def error(self, request: Request, exc: Exception) -> Response:
        """An HTTP error as a page."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return self.render(request, "error.html", status, page="error", detail=detail, code=status)

    # -- pages ----------------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        """Every queue as a card, the totals, and the Redis nodes."""
        cards = await self.summaries.all()
        workers = await self.summaries.workers()
        return self.render(
            request,
            "overview.html",
            page="overview",
            cards=cards,
            workers=workers,
            nodes=await self.summaries.nodes(),
            facts=await self.summaries.facts(),
            stream=self.url(request, "overview_events"),
            rate_total=sum(c.rates["completed"] for c in cards),
        )

    async def queue(self, request: Request) -> Response:
        """One queue's jobs, by status or all of them by their last change, paged, filtered
        by name, kind, error and time, newest or oldest first; searched by id."""
        name = queue_of(request)
        if name not in await self.client.queues():
            raise HTTPException(404, f"no queue {name!r}: nothing was ever enqueued to it")
        q = request.query_params
        wanted = q.get("id", "").strip()
        if wanted:
            return RedirectResponse(self.url(request, "job", queue=name, job_id=wanted), 303)
        f = joblist.Filters.of(q)
        cursor = whole(q.get("cursor"))
        jobs, nxt = await joblist.page(self.client, name, f, cursor, PAGE_SIZE)
        names, kinds = await joblist.names(self.client, name)
        return self.render(
            request,
            "queue.html",
            page="queue",
            queue=name,
            card=await self.summaries.get(name),
            f=f,
            status=f.status,
            names=names,
            kinds=kinds,
            since_choices=joblist.SINCE,
            jobs=jobs,
            cursor=cursor,
            next_cursor=nxt,
            prev_cursor=max(cursor - PAGE_SIZE, 0) if cursor and not f.narrowing else None,
            cancellable=CANCELLABLE,
            paused=await self.client.is_paused(name),
            limits=len(await self.client.limits(name)),
            schedules=len(await self.client.schedules(name)),
            stream=self.url(request, "queue_events", queue=name)
            + f"?since={await self.client.log_cursor(name)}",
        )

    async def job(self, request: Request) -> Response:
        """One job: its state, payload, result or error, log lines, events and its flow."""
        job = await self._job(request)
        history = await self.client.job_history(job)
        flow = await flows.flow_view(self.client, job)
        # A finished job has nothing more to stream (and its page must not reload itself); a
        # job of a flow follows the flow's jobs until every one of them ended.
        live = bool(flow.unended()) if flow is not None else job.status in CANCELLABLE
        route = "job_events" if flow is None else "flow_events"
        return self.render(
            request,
            "job.html",
            page="job",
            job=job,
            queue=job.queue,
            history=history,
            logs=await self.client.logs(job.id, queue=job.queue),
            flow=flow,
            schedule=await self._schedule_of(job),
            cancellable=job.status in CANCELLABLE,
            stream=self.url(request, route, queue=job.queue, job_id=job.id)
            + f"?since={history.cursor}"
            if live
            else None,
        )

    async def _schedule_of(self, job: Job) -> Schedule | None:
        """The schedule that made `job`, while it exists."""
        if job.schedule_id is None:
            return None
        found = await self.client.schedules(job.queue)
        return next((s for s in found if s.id == job.schedule_id), None)

    async def job_detail(self, request: Request) -> Response:
        """The parts of the job page that change as it runs (fetched by the page's script)."""
        job = await self._job(request)
        logs = await self.client.logs(job.id, queue=job.queue)
        html = self.env.get_template("_job_detail.html").render(
            job=job,
            logs=logs,
            flow=await flows.flow_view(self.client, job),
            url=lambda name, **p: self.url(request, name, **p),
            read_only=self.settings.read_only,
        )
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    async def history(self, request: Request) -> Response:
        """The charts' data (JSON): of one queue (``/queues/{queue}/history``) or of every
        queue, over ``?minutes=`` (60, 360 or 1440)."""
        minutes = whole(request.query_params.get("minutes"), 60)
        minutes = minutes if minutes in charts.RANGES else 60
        if "queue" in request.path_params:
            body = await charts.queue_series(self.client, queue_of(request), minutes)
        else:
            body = await charts.overall_series(self.client, minutes)
        return JSONResponse(body, headers={"cache-control": "no-store"})

    async def find(self, request: Request) -> Response:
        """The page of a job named by id alone (the search box): its queue is looked up."""
        job_id = request.query_params.get("id", "").strip()
        job = await data.find_job(self.client, job_id) if job_id else None
        if job is None:
            raise HTTPException(404, f"no job {job_id!r} in any queue")
        return RedirectResponse(self.url(request, "job", queue=job.queue, job_id=job.id), 303)

    # -- live streams ---------------------------------------------------------------------------

    async def overview_events(self, request: Request) -> Response:
        """Counts of every queue, live."""
        return sse.EventStream(sse.summaries_stream(self.client, self.summaries, None))

    async def queue_events(self, request: Request) -> Response:
        """One queue's events and counts, live, replayed from the cursor."""
        name = queue_of(request)
        source = sse.summaries_stream(
            self.client, self.summaries, [name], since=sse.cursor(request), job_events=True
        )
        return sse.EventStream(source)

    async def job_events(self, request: Request) -> Response:
        """One job's events, live, replayed from the cursor, until it ends."""
        job = await self._job(request)
        return sse.EventStream(sse.job_stream(self.client, job, sse.cursor(request)))

    async def flow_events(self, request: Request) -> Response:
        """The events of the jobs a job's flow panel shows, live, replayed from the cursor,
        until every one of them ended."""
        job = await self._job(request)
        flow = await flows.flow_view(self.client, job)
        if flow is None:
            raise HTTPException(404, f"job {job.id} is part of no flow")

        async def unended() -> set[str]:
            again = await flows.flow_view(self.client, job)
            return again.unended() if again is not None else set()

        source = sse.flow_stream(self.client, flow.refs(), sse.cursor(request), unended)
        return sse.EventStream(source)

    # -- routing --------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The pages, streams and actions, by name (templates link to them by name)."""
        get: list[tuple[str, Callable[[Request], Any], str]] = [
            ("/", self.overview, "overview"),
            *self.live_routes(),
            ("/jobs", self.find, "find_job"),
            ("/events", self.overview_events, "overview_events"),
            ("/history", self.history, "history"),
            ("/queues/{queue}/history", self.history, "queue_history"),
            ("/queues/{queue}", self.queue, "queue"),
            ("/queues/{queue}/events", self.queue_events, "queue_events"),
            ("/queues/{queue}/jobs/{job_id}", self.job, "job"),
            ("/queues/{queue}/jobs/{job_id}/detail", self.job_detail, "job_detail"),
            ("/queues/{queue}/jobs/{job_id}/events", self.job_events, "job_events"),
            ("/queues/{queue}/jobs/{job_id}/flow-events", self.flow_events, "flow_events"),
        ]
        post: list[tuple[str, Callable[[Request], Any], str]] = [
            ("/queues/{queue}/jobs/{job_id}/cancel", self.cancel, "cancel"),
            ("/queues/{queue}/jobs/{job_id}/retry", self.retry, "retry"),
            ("/queues/{queue}/jobs/{job_id}/run-now", self.run_now, "run_now"),
            ("/queues/{queue}/bulk", self.bulk_action, "bulk"),
            ("/queues/{queue}/jobs/{job_id}/remove", self.remove, "remove"),
            ("/queues/{queue}/dead/retry", self.retry_all, "retry_all"),
            ("/queues/{queue}/purge/{status}", self.purge, "purge"),
            ("/queues/{queue}/drain", self.drain, "drain"),
            ("/queues/{queue}/obliterate", self.obliterate, "obliterate"),
            ("/queues/{queue}/pause", self.pause, "pause"),
            ("/queues/{queue}/resume", self.pause, "resume"),
            *self.live_actions(),
        ]
        static = StaticFiles(packages=[("redisjobs.dashboard", "static")])
        return [
            *(Route(p, e, methods=["GET", "HEAD"], name=n) for p, e, n in get),
            *(Route(p, e, methods=["POST"], name=n) for p, e, n in post),
            Mount("/static", app=static, name="static"),
        ]
