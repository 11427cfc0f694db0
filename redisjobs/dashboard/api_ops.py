"""The API's operator actions (see :mod:`.api`): the workers and their quiet and stop, a job's
retry, run-now and delete, a queue's pause and dead letters, and bulk actions on chosen jobs.

Every one is also a button of the dashboard; both call the same :class:`~redisjobs.Client`
methods, and :mod:`.openapi_ops` documents these routes.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..client import Client
from ..history import HISTORY_MINUTES
from ..job import Job, JobStatus
from ..workerinfo import SIGNALS
from . import bulk, charts, data
from .present import job_json, worker_json
from .validation import MAX_LIST, WORKER_ID, Invalid, count, job_id, queue_name, read_json


def _flag(text: str | None, name: str) -> bool:
    if text not in (None, "true", "false"):
        raise Invalid(f"{name} must be true or false")
    return text == "true"


class Operations:
    """The operator actions of :class:`~.api.Api`."""

    client: Client

    async def _find(self, request: Request) -> Job:
        wanted = job_id(str(request.path_params["job_id"]))
        queue = request.query_params.get("queue")
        where = queue_name(queue) if queue is not None else None
        job = await data.find_job(self.client, wanted, where)
        if job is None:
            raise HTTPException(
                404, f"no job {wanted!r} in {f'queue {where!r}' if where else 'any queue'}"
            )
        return job

    async def workers(self, request: Request) -> Response:
        """``GET /workers``: the live and quiet workers (``gone=true``: lost and stopped too)."""
        gone = _flag(request.query_params.get("gone"), "gone")
        found = await self.client.workers(gone=gone)
        return JSONResponse({"workers": [worker_json(w) for w in found]})

    async def signal(self, request: Request) -> Response:
        """``POST /workers/{worker_id}/quiet|stop``: 202 once the signal is left for it."""
        worker = str(request.path_params["worker_id"])
        if not WORKER_ID.match(worker):
            raise Invalid("worker_id must be 1-200 of A-Z a-z 0-9 _ . : @ + = -")
        signal = request.url.path.rsplit("/", 1)[1]
        assert signal in SIGNALS  # the routes name them
        if not await self.client.signal_worker(worker, signal):
            raise HTTPException(404, f"no live worker {worker!r}")
        return JSONResponse({"worker": worker, "signal": signal}, status_code=202)

    async def retry(self, request: Request) -> Response:
        """``POST /jobs/{job_id}/retry``: a failed or cancelled job runs again; 409 otherwise."""
        job = await self._find(request)
        if not await self.client.retry(job.id, queue=job.queue):
            raise HTTPException(409, f"job {job.id} is {job.status.value}, not failed or cancelled")
        return await self._now(job)

    async def run_now(self, request: Request) -> Response:
        """``POST /jobs/{job_id}/run-now``: a scheduled job becomes pending; 409 otherwise."""
        job = await self._find(request)
        if not await self.client.run_now(job.id, queue=job.queue):
            raise HTTPException(409, f"job {job.id} is {job.status.value}, not scheduled")
        return await self._now(job)

    async def delete(self, request: Request) -> Response:
        """``DELETE /jobs/{job_id}``: a finished job is deleted now; 409 while it has not
        finished."""
        job = await self._find(request)
        if not await self.client.remove(job.id, queue=job.queue):
            raise HTTPException(409, f"job {job.id} is {job.status.value}: it has not finished")
        return JSONResponse({"deleted": job.id, "queue": job.queue})

    async def _now(self, job: Job) -> Response:
        current = await self.client.get(job.id, queue=job.queue)
        return JSONResponse(job_json(current or job))

    async def pause(self, request: Request) -> Response:
        """``POST /queues/{queue}/pause|resume``: whether it is paused now, and whether this
        call changed it."""
        queue = queue_name(request.path_params["queue"])
        verb = request.url.path.rsplit("/", 1)[1]
        switch = self.client.pause if verb == "pause" else self.client.resume
        changed = await switch(queue)
        return JSONResponse({"queue": queue, "paused": verb == "pause", "changed": changed})

    async def dead(self, request: Request) -> Response:
        """``GET /queues/{queue}/dead``: a page of the queue's dead letters, newest first."""
        queue = queue_name(request.path_params["queue"])
        q = request.query_params
        limit = count(q.get("limit"), "limit", 50, 1, MAX_LIST)
        cursor = count(q.get("cursor"), "cursor", 0, 0, 10**12)
        page = await self.client.list_jobs(
            JobStatus.FAILED, queue=queue, limit=limit, cursor=cursor
        )
        (counts,) = await self.client.job_counts([queue])
        jobs = [job_json(j) for j in page.jobs]
        body = {"queue": queue, "count": counts.counts["dead"], "jobs": jobs, "cursor": page.cursor}
        return JSONResponse(body)

    async def retry_dead(self, request: Request) -> Response:
        """``POST /queues/{queue}/dead:retry``: every dead letter of the queue runs again."""
        queue = queue_name(request.path_params["queue"])
        return JSONResponse(
            {"queue": queue, "retried": await self.client.retry_failed(queue=queue)}
        )

    async def history(self, request: Request) -> Response:
        """``GET /queues/{queue}/history`` (or ``/history``, every queue summed): the
        charts' columns over the last ``minutes`` (1-1440, default 60)."""
        minutes = count(request.query_params.get("minutes"), "minutes", 60, 1, HISTORY_MINUTES)
        if "queue" in request.path_params:
            queue = queue_name(request.path_params["queue"])
            return JSONResponse(await charts.queue_series(self.client, queue, minutes))
        return JSONResponse(await charts.overall_series(self.client, minutes))

    async def bulk(self, request: Request) -> Response:
        """``POST /queues/{queue}/jobs:bulk``: retry, cancel, delete or run now chosen jobs."""
        queue = queue_name(request.path_params["queue"])
        body = await read_json(request)
        if not isinstance(body, dict) or set(body) != {"action", "ids"}:
            raise Invalid('the body must be {"action": …, "ids": […]}')
        action, ids = body["action"], body["ids"]
        if action not in bulk.ACTIONS:
            raise Invalid(f"action must be one of {', '.join(bulk.ACTIONS)}")
        if not isinstance(ids, list) or not 1 <= len(ids) <= bulk.MAX_IDS:
            raise Invalid(f"ids must be a list of 1-{bulk.MAX_IDS} job ids")
        checked = [job_id(value, f"ids[{i}]") for i, value in enumerate(ids)]
        done, skipped = await bulk.bulk(self.client, queue, action, checked)
        return JSONResponse({"queue": queue, "action": action, "done": done, "skipped": skipped})
