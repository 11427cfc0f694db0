"""The pages that are lists read anew rather than followed by events: Workers, Dead letters,
Schedules and Limits, each live over a stream that sends its list again when it changed.

Each template marks its changing part ``{% block live %}``; the stream renders that block alone
(:meth:`LivePages.fragment`) every :data:`~.sse.FRAGMENT_SECONDS` and sends it when it differs
from the last one sent, so an idle page costs one read per period and no bandwidth.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..client import Client
from ..job import JobStatus
from ..workerinfo import SIGNALS
from . import data, sse
from .actions import CSRF_COOKIE, NOTICES, Actions
from .settings import Settings
from .validation import WORKER_ID

DEAD_PER_QUEUE = 10
"""Dead letters shown per queue on the page of every queue (a queue's own page pages them)."""
PAGE_SIZE = 50


def whole(text: str | None, default: int = 0) -> int:
    """A whole number of a query (`default` when it is not one)."""
    return int(text) if text and text.isdigit() and len(text) < 12 else default


Builder = Callable[[Request], Awaitable[dict[str, Any]]]
Endpoint = Callable[[Request], Awaitable[Response]]


class LivePages(Actions):
    """How :class:`~.views.Pages` renders, its list pages and their streams, and the workers'
    buttons."""

    client: Client
    settings: Settings
    env: jinja2.Environment
    summaries: data.Summaries

    def _context(self, request: Request, token: str, **ctx: Any) -> dict[str, Any]:
        """What every page needs, and `ctx`."""
        q = request.query_params
        notice = NOTICES.get(q.get("done", ""))
        ctx.setdefault("stream", None)
        return {
            "request": request,
            "url": lambda name, **p: self.url(request, name, **p),
            "read_only": self.settings.read_only,
            "csrf": token,
            "notice": notice.format(n=whole(q.get("n")), m=whole(q.get("m"))) if notice else None,
            "now": datetime.now(UTC),
            "statuses": [s.value for s in JobStatus],
            **ctx,
        }

    def render(
        self, request: Request, template: str, status_code: int = 200, **ctx: Any
    ) -> Response:
        """A page, with what every page needs; sets the CSRF cookie on first visit."""
        token = request.cookies.get(CSRF_COOKIE)
        fresh = token is None or len(token) < 20
        if fresh:
            token = secrets.token_urlsafe(32)
        html = self.env.get_template(template).render(self._context(request, str(token), **ctx))
        response = HTMLResponse(html, status_code=status_code)
        if fresh:
            response.set_cookie(CSRF_COOKIE, str(token), httponly=True, samesite="strict")
        return response

    def fragment(self, request: Request, template: str, **ctx: Any) -> str:
        """The ``live`` block of `template`, rendered as its page would render it."""
        token = request.cookies.get(CSRF_COOKIE, "")
        page = self.env.get_template(template)
        context = page.new_context(self._context(request, token, **ctx))
        return "".join(page.blocks["live"](context))

    def _builders(self) -> dict[str, Builder]:
        return {
            "workers": self._workers,
            "dead": self._dead,
            "schedules": self._schedules,
            "limits": self._limits,
        }

    def live_routes(self) -> list[tuple[str, Endpoint, str]]:
        """The GET routes: each page, and its stream."""
        routes: list[tuple[str, Endpoint, str]] = []
        for name in self._builders():
            routes.append((f"/{name}", self._page(name), name))
            routes.append((f"/{name}/events", self._events(name), f"{name}_events"))
        return routes

    def live_actions(self) -> list[tuple[str, Endpoint, str]]:
        """The POST routes: a worker's quiet and stop."""
        return [(f"/workers/{{worker_id}}/{s}", self.signal, f"{s}_worker") for s in SIGNALS]

    def _page(self, name: str) -> Endpoint:
        async def page(request: Request) -> Response:
            ctx = await self._builders()[name](request)
            query = f"?{request.url.query}" if request.url.query else ""
            stream = self.url(request, f"{name}_events") + query
            return self.render(request, f"{name}.html", page=name, stream=stream, **ctx)

        page.__doc__ = f"The {name} page."
        return page

    def _events(self, name: str) -> Endpoint:
        async def events(request: Request) -> Response:
            async def render() -> str:
                ctx = await self._builders()[name](request)
                return self.fragment(request, f"{name}.html", page=name, **ctx)

            return sse.EventStream(sse.fragment_stream(render))

        events.__doc__ = f"The {name} page's list, live."
        return events

    # -- what each page shows -------------------------------------------------------------------

    async def _workers(self, request: Request) -> dict[str, Any]:
        """Every worker known within the hour: live and quiet ones first, then lost, stopped."""
        order = {"live": 0, "quiet": 1, "lost": 2, "offline": 3}
        found = await self.client.workers(gone=True)
        found.sort(key=lambda w: (order[w.state], w.queues, w.id))
        return {"workers": found}

    async def _schedules(self, request: Request) -> dict[str, Any]:
        return {"schedules": await data.schedules(self.client)}

    async def _limits(self, request: Request) -> dict[str, Any]:
        return {"queues": await data.limits(self.client)}

    async def _dead(self, request: Request) -> dict[str, Any]:
        """Jobs that failed for good, of one queue (``?queue=``, paged) or of each queue."""
        queues = await self.client.queues()
        wanted = request.query_params.get("queue")
        shown = [wanted] if wanted in queues else queues
        cursor = whole(request.query_params.get("cursor"))
        sections = []
        for name in shown:
            page = await self.client.list_jobs(
                JobStatus.FAILED,
                queue=name,
                limit=PAGE_SIZE if wanted else DEAD_PER_QUEUE,
                cursor=cursor if wanted else 0,
            )
            count = (await self.summaries.get(name)).counts["dead"]
            if page.jobs or wanted:
                sections.append((name, page.jobs, count, page.cursor))
        return {
            "queues": queues,
            "wanted": wanted if wanted in queues else None,
            "sections": sections,
            "cursor": cursor,
        }

    # -- the workers' buttons -------------------------------------------------------------------

    async def signal(self, request: Request) -> Response:
        """Quiet or stop a worker (its ``…/quiet`` or ``…/stop`` route), through Redis."""
        form = await self._form(request)
        worker = str(request.path_params["worker_id"])
        if not WORKER_ID.match(worker):
            raise HTTPException(404, f"no worker {worker!r}")
        signal = request.url.path.rsplit("/", 1)[1]
        sent = await self.client.signal_worker(worker, signal)
        done = f"worker-{signal}" if sent else "worker-gone"
        return self._back(request, form, self.url(request, "workers"), done=done)
