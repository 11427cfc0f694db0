"""The HTML pages and the buttons on them (cancel, retry, purge).

Every page is rendered on the server with Jinja2's autoescaping; the one script file only
updates what the live streams report. The buttons are POST forms that carry a CSRF token
matching a SameSite=Strict cookie; :class:`~.security.Guard` has already refused cross-site and
read-only requests by the time a handler runs.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from ..client import Client
from ..job import Job, JobStatus
from ..names import check_queue_name
from . import data, present, sse
from .settings import Settings

CSRF_COOKIE = "rj_csrf"
PAGE_SIZE = 50
MAX_FORM_BYTES = 16 * 1024
NOTICES = {
    "cancelled": "The job was cancelled.",
    "cancel-requested": "Cancel requested: the worker stops the job and records it.",
    "cancel-final": "The job had already finished: nothing to cancel.",
    "retried": "The job is back in its queue.",
    "not-failed": "The job is not failed (any more): nothing was changed.",
    "purged": "The job was deleted.",
    "retried-all": "{n} failed jobs are back in their queue.",
    "purged-all": "{n} failed jobs were deleted.",
}
CANCELLABLE = frozenset({JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.RUNNING})


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
    )
    return env


def _queue_name(request: Request) -> str:
    name = str(request.path_params["queue"])
    try:
        return check_queue_name(name)
    except ValueError:
        raise HTTPException(404, f"no queue {name!r}") from None


def _int(text: str | None, default: int = 0) -> int:
    return int(text) if text and text.isdigit() and len(text) < 12 else default


@dataclass
class Pages:
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

    def url(self, request: Request, name: str, **params: Any) -> str:
        """The path of page `name`, wherever this app is mounted."""
        root = str(request.scope.get("root_path", ""))
        return root + str(self.router.url_path_for(name, **params))

    def render(
        self, request: Request, template: str, status_code: int = 200, **ctx: Any
    ) -> Response:
        """A page, with what every page needs; sets the CSRF cookie on first visit."""
        token = request.cookies.get(CSRF_COOKIE)
        fresh = token is None or len(token) < 20
        if fresh:
            token = secrets.token_urlsafe(32)
        notice = NOTICES.get(request.query_params.get("done", ""))
        ctx.setdefault("stream", None)
        html = self.env.get_template(template).render(
            request=request,
            url=lambda name, **p: self.url(request, name, **p),
            read_only=self.settings.read_only,
            csrf=token,
            notice=notice.format(n=_int(request.query_params.get("n"))) if notice else None,
            now=datetime.now(UTC),
            statuses=[s.value for s in JobStatus],
            **ctx,
        )
        response = HTMLResponse(html, status_code=status_code)
        if fresh:
            response.set_cookie(CSRF_COOKIE, str(token), httponly=True, samesite="strict")
        return response

    async def error(self, request: Request, exc: Exception) -> Response:
        """An HTTP error as a page."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return self.render(request, "error.html", status, page="error", detail=detail, code=status)

    async def _form(self, request: Request) -> dict[str, str]:
        """The urlencoded form of a POST, after checking its CSRF token against the cookie."""
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, "form too large")
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        cookie = request.cookies.get(CSRF_COOKIE, "")
        given = form.get("csrf", "")
        if not cookie or not hmac.compare_digest(cookie.encode(), given.encode()):
            raise HTTPException(
                403, "the form's security token is missing or stale: reload the page"
            )
        return form

    def _back(
        self, request: Request, form: dict[str, str], fallback: str, **query: Any
    ) -> Response:
        nxt = form.get("next", "")
        # Only a path of our own: never an open redirect to another site.
        target = nxt if nxt.startswith("/") and not nxt.startswith("//") else fallback
        url = URL(target).remove_query_params(["done", "n"]).include_query_params(**query)
        return RedirectResponse(str(url), status_code=303)

    async def _job(self, request: Request) -> Job:
        queue = _queue_name(request)
        job = await data.find_job(self.client, str(request.path_params["job_id"]), queue)
        if job is None:
            raise HTTPException(404, "no such job (it never existed, or it expired)")
        return job

    # -- pages ----------------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        """Every queue as a card, and the totals."""
        cards = await self.summaries.all()
        workers = await self.summaries.workers()
        return self.render(
            request,
            "overview.html",
            page="overview",
            cards=cards,
            workers=workers,
            stream=self.url(request, "overview_events"),
            rate_total=sum(c.rates["completed"] for c in cards),
        )

    async def queue(self, request: Request) -> Response:
        """One queue's jobs by status, paged, filtered by kind, searched by id."""
        name = _queue_name(request)
        if name not in await self.client.queues():
            raise HTTPException(404, f"no queue {name!r}: nothing was ever enqueued to it")
        q = request.query_params
        wanted = q.get("id", "").strip()
        if wanted:
            return RedirectResponse(self.url(request, "job", queue=name, job_id=wanted), 303)
        status = q.get("status") if q.get("status") in {s.value for s in JobStatus} else None
        kind = q.get("kind", "").strip() or None
        cursor = _int(q.get("cursor"))
        jobs, nxt = await data.list_jobs(
            self.client, name, status, kind=kind, cursor=cursor, limit=PAGE_SIZE
        )
        return self.render(
            request,
            "queue.html",
            page="queue",
            queue=name,
            card=await self.summaries.get(name),
            status=status,
            kind=kind,
            kinds=await data.job_kinds(self.client, name),
            jobs=jobs,
            cursor=cursor,
            next_cursor=nxt,
            prev_cursor=max(cursor - PAGE_SIZE, 0) if cursor and not kind else None,
            cancellable=CANCELLABLE,
            stream=self.url(request, "queue_events", queue=name)
            + f"?since={await self.client.log_cursor(name)}",
        )

    async def job(self, request: Request) -> Response:
        """One job: its state, payload, result or error, log lines and events."""
        job = await self._job(request)
        history = await self.client.job_history(job)
        return self.render(
            request,
            "job.html",
            page="job",
            job=job,
            queue=job.queue,
            history=history,
            logs=await self.client.logs(job.id, queue=job.queue),
            cancellable=job.status in CANCELLABLE,
            # A finished job has nothing more to stream (and its page must not reload itself).
            stream=self.url(request, "job_events", queue=job.queue, job_id=job.id)
            + f"?since={history.cursor}"
            if job.status in CANCELLABLE
            else None,
        )

    async def job_detail(self, request: Request) -> Response:
        """The parts of the job page that change as it runs (fetched by the page's script)."""
        job = await self._job(request)
        logs = await self.client.logs(job.id, queue=job.queue)
        html = self.env.get_template("_job_detail.html").render(
            job=job, logs=logs, read_only=self.settings.read_only
        )
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    async def find(self, request: Request) -> Response:
        """The page of a job named by id alone (the search box): its queue is looked up."""
        job_id = request.query_params.get("id", "").strip()
        job = await data.find_job(self.client, job_id) if job_id else None
        if job is None:
            raise HTTPException(404, f"no job {job_id!r} in any queue")
        return RedirectResponse(self.url(request, "job", queue=job.queue, job_id=job.id), 303)

    async def workers(self, request: Request) -> Response:
        """The live workers."""
        workers = await self.client.workers()
        return self.render(request, "workers.html", page="workers", workers=workers)

    async def schedules(self, request: Request) -> Response:
        """Every queue's schedules: when, next run, last run and its job."""
        found = await data.schedules(self.client)
        return self.render(request, "schedules.html", page="schedules", schedules=found)

    async def dead(self, request: Request) -> Response:
        """Jobs that failed for good, of one queue or of each queue."""
        queues = await self.client.queues()
        wanted = request.query_params.get("queue")
        shown = [wanted] if wanted in queues else queues
        cursor = _int(request.query_params.get("cursor"))
        sections = []
        for name in shown:
            limit = PAGE_SIZE if wanted else 10
            page = await self.client.list_jobs(
                JobStatus.FAILED, queue=name, limit=limit, cursor=cursor if wanted else 0
            )
            count = (await self.summaries.get(name)).counts["dead"]
            if page.jobs or wanted:
                sections.append((name, page.jobs, count, page.cursor))
        return self.render(
            request,
            "dead.html",
            page="dead",
            queues=queues,
            wanted=wanted if wanted in queues else None,
            sections=sections,
            cursor=cursor,
        )

    # -- live streams ---------------------------------------------------------------------------

    async def overview_events(self, request: Request) -> Response:
        """Counts of every queue, live."""
        return sse.EventStream(sse.summaries_stream(self.client, self.summaries, None))

    async def queue_events(self, request: Request) -> Response:
        """One queue's events and counts, live, replayed from the cursor."""
        name = _queue_name(request)
        source = sse.summaries_stream(
            self.client, self.summaries, [name], since=sse.cursor(request), job_events=True
        )
        return sse.EventStream(source)

    async def job_events(self, request: Request) -> Response:
        """One job's events, live, replayed from the cursor, until it ends."""
        job = await self._job(request)
        return sse.EventStream(sse.job_stream(self.client, job, sse.cursor(request)))

    # -- actions --------------------------------------------------------------------------------

    async def cancel(self, request: Request) -> Response:
        """Cancel a job (a running one is stopped by its worker)."""
        form = await self._form(request)
        job = await self._job(request)
        before = job.status
        done = await self.client.cancel(job.id, queue=job.queue)
        code = (
            "cancel-final"
            if not done
            else "cancel-requested"
            if before == "running"
            else "cancelled"
        )
        return self._back(
            request, form, self.url(request, "job", queue=job.queue, job_id=job.id), done=code
        )

    async def retry(self, request: Request) -> Response:
        """Run a failed job again."""
        form = await self._form(request)
        job = await self._job(request)
        ok = await self.client.retry(job.id, queue=job.queue)
        fallback = self.url(request, "job", queue=job.queue, job_id=job.id)
        return self._back(request, form, fallback, done="retried" if ok else "not-failed")

    async def purge(self, request: Request) -> Response:
        """Delete a failed job now."""
        form = await self._form(request)
        job = await self._job(request)
        ok = await self.client.purge(job.id, queue=job.queue)
        fallback = self.url(request, "dead") + f"?queue={job.queue}"
        if form.get("next", "").startswith(
            self.url(request, "job", queue=job.queue, job_id=job.id)
        ):
            form.pop("next")  # the job's own page is gone
        return self._back(request, form, fallback, done="purged" if ok else "not-failed")

    async def retry_all(self, request: Request) -> Response:
        """Run every failed job of a queue again."""
        form = await self._form(request)
        name = _queue_name(request)
        n = await self.client.retry_failed(queue=name)
        return self._back(request, form, self.url(request, "dead"), done="retried-all", n=n)

    async def purge_all(self, request: Request) -> Response:
        """Delete every failed job of a queue."""
        form = await self._form(request)
        name = _queue_name(request)
        n = await self.client.purge_failed(queue=name)
        return self._back(request, form, self.url(request, "dead"), done="purged-all", n=n)

    # -- routing --------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The pages, streams and actions, by name (templates link to them by name)."""
        get: list[tuple[str, Callable[[Request], Any], str]] = [
            ("/", self.overview, "overview"),
            ("/workers", self.workers, "workers"),
            ("/dead", self.dead, "dead"),
            ("/schedules", self.schedules, "schedules"),
            ("/jobs", self.find, "find_job"),
            ("/events", self.overview_events, "overview_events"),
            ("/queues/{queue}", self.queue, "queue"),
            ("/queues/{queue}/events", self.queue_events, "queue_events"),
            ("/queues/{queue}/jobs/{job_id}", self.job, "job"),
            ("/queues/{queue}/jobs/{job_id}/detail", self.job_detail, "job_detail"),
            ("/queues/{queue}/jobs/{job_id}/events", self.job_events, "job_events"),
        ]
        post: list[tuple[str, Callable[[Request], Any], str]] = [
            ("/queues/{queue}/jobs/{job_id}/cancel", self.cancel, "cancel"),
            ("/queues/{queue}/jobs/{job_id}/retry", self.retry, "retry"),
            ("/queues/{queue}/jobs/{job_id}/purge", self.purge, "purge"),
            ("/queues/{queue}/dead/retry", self.retry_all, "retry_all"),
            ("/queues/{queue}/dead/purge", self.purge_all, "purge_all"),
        ]
        static = StaticFiles(packages=[("redisjobs.dashboard", "static")])
        return [
            *(Route(p, e, methods=["GET", "HEAD"], name=n) for p, e, n in get),
            *(Route(p, e, methods=["POST"], name=n) for p, e, n in post),
            Mount("/static", app=static, name="static"),
        ]
