"""The buttons of the dashboard's pages: cancel, retry and delete a job; retry, purge, drain,
obliterate, pause and resume a queue.

Each is a POST form carrying a CSRF token that must match a SameSite=Strict cookie;
:class:`~.security.Guard` has already refused cross-site and read-only requests by the time a
handler runs. Each answers with a redirect back to the page the button was on (or a fallback),
whose ``done`` parameter names the notice to show.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Router

from ..cleaning import final_status
from ..client import Client
from ..errors import QueueInUse
from ..job import Job
from ..names import check_queue_name, is_job_id
from . import bulk, data

CSRF_COOKIE = "rj_csrf"
MAX_FORM_BYTES = 16 * 1024
NOTICES = {
    "cancelled": "The job was cancelled.",
    "cancel-requested": "Cancel requested: the worker stops the job and records it.",
    "cancel-final": "The job had already finished: nothing to cancel.",
    "retried": "The job is back in its queue.",
    "not-failed": "The job is not failed (any more): nothing was changed.",
    "removed": "The job was deleted.",
    "not-final": "The job has not finished: nothing was deleted.",
    "retried-all": "{n} failed jobs are back in their queue.",
    "purged": "{n} finished jobs were deleted.",
    "drained": "{n} waiting jobs were dropped.",
    "obliterated": "The queue was deleted, with its {n} jobs.",
    "in-use": "Live workers serve this queue: stop them before obliterating it.",
    "paused": "The queue is paused: its workers finish what they run and start nothing new.",
    "resumed": "The queue is resumed: its workers start jobs again.",
    "ran-now": "The job is pending: it runs as soon as a worker is free.",
    "not-scheduled": "The job is not scheduled (any more): nothing was changed.",
    "bulk-retry": "{n} selected jobs are back in their queue ({m} skipped: not failed or "
    "cancelled).",
    "bulk-cancel": "{n} selected jobs were cancelled, running ones asked to stop ({m} skipped: "
    "already finished).",
    "bulk-run-now": "{n} selected jobs are pending now ({m} skipped: not scheduled).",
    "bulk-delete": "{n} selected jobs were deleted ({m} skipped: not finished).",
    "worker-quiet": "Asked the worker to go quiet: it takes no more jobs from its next heartbeat.",
    "worker-stop": "Asked the worker to stop: it finishes its jobs and leaves, from its next "
    "heartbeat.",
    "worker-gone": "No live worker has that id (any more): nothing was sent.",
}


def queue_of(request: Request) -> str:
    """The queue named in the path (404 for a name no queue can have)."""
    name = str(request.path_params["queue"])
    try:
        return check_queue_name(name)
    except ValueError:
        raise HTTPException(404, f"no queue {name!r}") from None


class Actions:
    """The action handlers of :class:`~.views.Pages`, and the plumbing they share with it."""

    client: Client
    router: Router

    def url(self, request: Request, name: str, **params: Any) -> str:
        """The path of page `name`, wherever this app is mounted."""
        root = str(request.scope.get("root_path", ""))
        return root + str(self.router.url_path_for(name, **params))

    async def _form(self, request: Request) -> dict[str, str]:
        """The urlencoded form of a POST (a field given twice: its last value), after checking
        its CSRF token against the cookie."""
        return dict(await self._pairs(request))

    async def _pairs(self, request: Request) -> list[tuple[str, str]]:
        """:meth:`_form` as its fields in order, repeated ones included."""
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, "form too large")
        pairs = parse_qsl(body.decode("utf-8", "replace"))
        form = dict(pairs)
        cookie = request.cookies.get(CSRF_COOKIE, "")
        given = form.get("csrf", "")
        if not cookie or not hmac.compare_digest(cookie.encode(), given.encode()):
            raise HTTPException(
                403, "the form's security token is missing or stale: reload the page"
            )
        return pairs

    def _back(
        self, request: Request, form: dict[str, str], fallback: str, **query: Any
    ) -> Response:
        nxt = form.get("next", "")
        # Only a path of our own: never an open redirect to another site.
        target = nxt if nxt.startswith("/") and not nxt.startswith("//") else fallback
        url = URL(target).remove_query_params(["done", "n", "m"]).include_query_params(**query)
        return RedirectResponse(str(url), status_code=303)

    async def _job(self, request: Request) -> Job:
        queue = queue_of(request)
        job = await data.find_job(self.client, str(request.path_params["job_id"]), queue)
        if job is None:
            raise HTTPException(404, "no such job (it never existed, or it expired)")
        return job

    # -- one job --------------------------------------------------------------------------------

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
        return await self._verb(request, self.client.retry, "retried", "not-failed")

    async def run_now(self, request: Request) -> Response:
        """Run a scheduled job now."""
        return await self._verb(request, self.client.run_now, "ran-now", "not-scheduled")

    async def _verb(
        self, request: Request, verb: Callable[..., Awaitable[bool]], done: str, refused: str
    ) -> Response:
        """Apply `verb` to the job of the path; back with notice `done`, or `refused` when the
        job was not in a status it applies to."""
        form = await self._form(request)
        job = await self._job(request)
        ok = await verb(job.id, queue=job.queue)
        fallback = self.url(request, "job", queue=job.queue, job_id=job.id)
        return self._back(request, form, fallback, done=done if ok else refused)

    async def bulk_action(self, request: Request) -> Response:
        """Retry, cancel, run now or delete the jobs ticked on a queue's page."""
        pairs = await self._pairs(request)
        form, name = dict(pairs), queue_of(request)
        ids = [v for k, v in pairs if k == "ids" and is_job_id(v)]
        action = form.get("action", "")
        if action not in bulk.ACTIONS:
            raise HTTPException(400, f"no such action {action!r}")
        done, skipped = await bulk.bulk(self.client, name, action, ids[: bulk.MAX_IDS])
        fallback = self.url(request, "queue", queue=name)
        code = f"bulk-{action}"
        return self._back(request, form, fallback, done=code, n=len(done), m=len(skipped))

    async def remove(self, request: Request) -> Response:
        """Delete a finished job now."""
        form = await self._form(request)
        job = await self._job(request)
        ok = await self.client.remove(job.id, queue=job.queue)
        fallback = self.url(request, "queue", queue=job.queue)
        if form.get("next", "").startswith(
            self.url(request, "job", queue=job.queue, job_id=job.id)
        ):
            form.pop("next")  # the job's own page is gone
        return self._back(request, form, fallback, done="removed" if ok else "not-final")

    # -- a whole queue --------------------------------------------------------------------------

    async def retry_all(self, request: Request) -> Response:
        """Run every failed job of a queue again."""
        form = await self._form(request)
        name = queue_of(request)
        n = await self.client.retry_failed(queue=name)
        return self._back(request, form, self.url(request, "dead"), done="retried-all", n=n)

    async def purge(self, request: Request) -> Response:
        """Delete every job of a queue in one final status (in the path)."""
        form = await self._form(request)
        name = queue_of(request)
        try:
            status = final_status(str(request.path_params["status"]))
        except ValueError as exc:
            raise HTTPException(404, str(exc)) from None
        n = await self.client.purge(name, status=status)
        return self._back(request, form, self.url(request, "queue", queue=name), done="purged", n=n)

    async def drain(self, request: Request) -> Response:
        """Drop the waiting, pending and scheduled jobs of a queue."""
        form = await self._form(request)
        name = queue_of(request)
        n = await self.client.drain(name)
        fallback = self.url(request, "queue", queue=name)
        return self._back(request, form, fallback, done="drained", n=n)

    async def obliterate(self, request: Request) -> Response:
        """Delete every key of a queue, unless live workers serve it."""
        form = await self._form(request)
        name = queue_of(request)
        try:
            n = await self.client.obliterate(name)
        except QueueInUse:
            fallback = self.url(request, "queue", queue=name)
            return self._back(request, form, fallback, done="in-use")
        # The queue's page is gone with it: back to the overview.
        return self._back(request, {}, self.url(request, "overview"), done="obliterated", n=n)

    async def pause(self, request: Request) -> Response:
        """Pause a queue (its ``…/pause`` route) or resume it (``…/resume``)."""
        form, name = await self._form(request), queue_of(request)
        verb = request.url.path.rsplit("/", 1)[1]
        await (self.client.resume(name) if verb == "resume" else self.client.pause(name))
        return self._back(request, form, self.url(request, "queue", queue=name), done=verb + "d")
