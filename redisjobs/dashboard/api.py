"""The JSON API for producers in any language (``/api``; mountable on its own).

Bodies are JSON; the server turns each payload into msgpack (JSON objects become maps, arrays
arrays, numbers ints or floats, strings str), so a job enqueued here is the same as one
enqueued by :meth:`redisjobs.Client.enqueue`. The cleaning operations (purge, drain,
obliterate) are bodiless POSTs with their options in the query. Every error is
``{"error": "<message>"}`` with its status: 400 unreadable JSON, 401 no credentials, 403 a
cross-site request, 404 no such job (for an enqueue: no job it depends on), 405 read-only, 409
the job already finished (obliterate: live workers serve the queue), 413 body or payload too
large, 415 not JSON, 422 a field that is not valid, 429 the queue is full (its
``max_pending``; with ``Retry-After``), 503 Redis unreachable. :mod:`.openapi` describes
exactly this; a test holds the two together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..client import Client
from ..errors import (
    ConnectionFailed,
    PayloadTooLarge,
    QueueFull,
    QueueInUse,
    SerializationError,
    UnknownDependency,
)
from ..job import FINAL_STATUSES, Job, JobStatus
from . import data, openapi, sse
from .api_ops import Operations
from .present import job_json
from .security import BodyLimit, Guard, SecurityHeaders
from .settings import DEFAULT_MAX_BODY_BYTES, Settings
from .validation import (
    MAX_AGE,
    MAX_BATCH,
    MAX_LIST,
    Invalid,
    JobSpec,
    count,
    job_spec,
    queue_name,
    read_json,
)

STATUSES = frozenset(s.value for s in JobStatus)

QUEUE_FULL_RETRY_AFTER = "1"
"""The Retry-After of a 429 (seconds). How soon a queue drains below its max_pending depends on
its workers, which this server does not know: one second is a floor that keeps a producer from
hammering, not an estimate; a producer backs off further as more 429s come."""


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Api(Operations):
    """The API's handlers, over one Client.

    Args:
        client: where jobs are written and read.
    """

    def __init__(self, client: Client) -> None:
        self.client = client

    async def _enqueue(self, queue: str, specs: list[JobSpec]) -> list[Job]:
        rows = [{"kind": s.kind, "payload": s.payload, **s.options} for s in specs]
        try:
            jobs = await self.client.enqueue_many(rows, queue=queue)
        except PayloadTooLarge as exc:
            raise HTTPException(413, str(exc)) from None
        except UnknownDependency as exc:  # a job it depends on: "no such job"
            raise HTTPException(404, str(exc)) from None
        except QueueFull as exc:
            raise HTTPException(
                429, str(exc), headers={"Retry-After": QUEUE_FULL_RETRY_AFTER}
            ) from None
        except (SerializationError, ValueError, TypeError) as exc:
            raise Invalid(f"cannot enqueue: {exc}") from None
        # Answer with the jobs as Redis holds them (its clock, its defaults), not as sent.
        stored = await self.client.get_many([j.id for j in jobs], queue=queue)
        for s, j in zip(stored, jobs, strict=True):
            if s is not None:
                s.duplicate = j.duplicate
        return [s or j for s, j in zip(stored, jobs, strict=True)]

    async def jobs(self, request: Request) -> Response:
        """``/queues/{queue}/jobs``: POST enqueues, GET lists."""
        if request.method == "POST":
            return await self.enqueue(request)
        return await self.list_jobs(request)

    async def enqueue(self, request: Request) -> Response:
        """``POST /queues/{queue}/jobs``: one job; 202 with it."""
        queue = queue_name(request.path_params["queue"])
        spec = job_spec(await read_json(request))
        (job,) = await self._enqueue(queue, [spec])
        location = f"{request.scope.get('root_path', '')}/jobs/{job.id}?queue={queue}"
        return JSONResponse(job_json(job), status_code=202, headers={"location": location})

    async def enqueue_batch(self, request: Request) -> Response:
        """``POST /queues/{queue}/jobs:batch``: many jobs, all or none; 202 with them."""
        queue = queue_name(request.path_params["queue"])
        body = await read_json(request)
        if (
            not isinstance(body, dict)
            or set(body) != {"jobs"}
            or not isinstance(body["jobs"], list)
        ):
            raise Invalid('the body must be {"jobs": [{"kind": …, "payload": …}, …]}')
        if not 1 <= len(body["jobs"]) <= MAX_BATCH:
            raise Invalid(f"a batch holds 1-{MAX_BATCH} jobs, got {len(body['jobs'])}")
        specs = [job_spec(raw, f"jobs[{i}]") for i, raw in enumerate(body["jobs"])]
        jobs = await self._enqueue(queue, specs)
        return JSONResponse({"jobs": [job_json(j) for j in jobs]}, status_code=202)

    async def list_jobs(self, request: Request) -> Response:
        """``GET /queues/{queue}/jobs``: a page of jobs, newest first."""
        queue = queue_name(request.path_params["queue"])
        q = request.query_params
        status = q.get("status")
        if status is not None and status not in STATUSES:
            raise Invalid(f"status must be one of {', '.join(sorted(STATUSES))}")
        limit = count(q.get("limit"), "limit", 50, 1, MAX_LIST)
        cursor = count(q.get("cursor"), "cursor", 0, 0, 10**12)
        page = await self.client.list_jobs(status, queue=queue, limit=limit, cursor=cursor)
        return JSONResponse({"jobs": [job_json(j) for j in page.jobs], "cursor": page.cursor})

    async def queues(self, request: Request) -> Response:
        """``GET /queues``: every queue with its counts, and the Redis nodes serving them."""
        summaries = data.Summaries(self.client, max_age=0)
        queues = [s.json() for s in await summaries.all()]
        nodes = [data.node_json(n) for n in await summaries.nodes()]
        facts = await summaries.facts()
        redis = None if facts is None else {**dataclasses.asdict(facts), "risks": facts.risks}
        return JSONResponse({"queues": queues, "nodes": nodes, "redis": redis})

    async def job(self, request: Request) -> Response:
        """``/jobs/{job_id}``: GET the job, from whichever queue holds it; DELETE a finished
        one."""
        if request.method == "DELETE":
            return await self.delete(request)
        return JSONResponse(job_json(await self._find(request)))

    async def job_tree(self, request: Request) -> Response:
        """``GET /jobs/{job_id}/tree``: the job with the jobs it waited for, nested."""
        job = await self._find(request)
        tree = await self.client.flow_tree(job.id, queue=job.queue)
        if tree is None:  # it expired between the two reads
            raise HTTPException(404, f"no job {job.id!r} in queue {job.queue!r}")
        return JSONResponse(tree.plain())

    async def job_events(self, request: Request) -> Response:
        """``GET /jobs/{job_id}/events``: its events as SSE, from the start, until it ends."""
        since = request.query_params.get("since")
        if since is not None and not sse.is_cursor(since):
            raise Invalid("since must be an event id such as 1700000000000-0 (or 0)")
        job = await self._find(request)
        return sse.EventStream(sse.job_stream(self.client, job, sse.cursor(request)))

    async def cancel(self, request: Request) -> Response:
        """``POST /jobs/{job_id}/cancel``: 202 when cancelled or asked to stop, 409 if over."""
        job = await self._find(request)
        if not await self.client.cancel(job.id, queue=job.queue):
            raise HTTPException(409, f"job {job.id} already finished ({job.status.value})")
        outcome = "requested" if job.status == JobStatus.RUNNING else "cancelled"
        current = await self.client.get(job.id, queue=job.queue) or job
        return JSONResponse({"outcome": outcome, "job": job_json(current)}, status_code=202)

    async def purge(self, request: Request) -> Response:
        """``POST /queues/{queue}/purge``: delete finished jobs of one status, by age."""
        queue = queue_name(request.path_params["queue"])
        q = request.query_params
        status = q.get("status", "failed")
        if status not in FINAL_STATUSES:
            raise Invalid("status must be one of cancelled, completed, failed")
        older_than = None
        if q.get("older_than") is not None:
            older_than = count(q.get("older_than"), "older_than", 0, 0, MAX_AGE)
        n = await self.client.purge(queue, status=status, older_than=older_than)
        return JSONResponse({"queue": queue, "status": status, "purged": n})

    async def drain(self, request: Request) -> Response:
        """``POST /queues/{queue}/drain``: drop the waiting, pending and
        scheduled jobs."""
        queue = queue_name(request.path_params["queue"])
        return JSONResponse({"queue": queue, "drained": await self.client.drain(queue)})

    async def obliterate(self, request: Request) -> Response:
        """``POST /queues/{queue}/obliterate``: delete every key of the queue; 409 while live
        workers serve it, unless ``force=true``."""
        queue = queue_name(request.path_params["queue"])
        force = request.query_params.get("force", "false")
        if force not in ("true", "false"):
            raise Invalid("force must be true or false")
        try:
            n = await self.client.obliterate(queue, force=force == "true")
        except QueueInUse as exc:
            raise HTTPException(409, str(exc)) from None
        return JSONResponse({"queue": queue, "obliterated": n})

    async def spec(self, request: Request) -> Response:
        """``GET /openapi.json``: the OpenAPI 3.1 document of this API."""
        return JSONResponse(openapi.document(str(request.scope.get("root_path", ""))))

    def routes(self) -> list[Route]:
        """The API's routes."""
        return [
            Route("/openapi.json", self.spec, methods=["GET"]),
            Route("/queues", self.queues, methods=["GET"]),
            # One route for both methods, so that a 405 there names both in its Allow header.
            Route("/queues/{queue}/jobs", self.jobs, methods=["GET", "POST"]),
            Route("/queues/{queue}/jobs:batch", self.enqueue_batch, methods=["POST"]),
            Route("/queues/{queue}/purge", self.purge, methods=["POST"]),
            Route("/queues/{queue}/drain", self.drain, methods=["POST"]),
            Route("/queues/{queue}/obliterate", self.obliterate, methods=["POST"]),
            Route("/queues/{queue}/jobs:bulk", self.bulk, methods=["POST"]),
            Route("/queues/{queue}/pause", self.pause, methods=["POST"]),
            Route("/queues/{queue}/resume", self.pause, methods=["POST"]),
            Route("/queues/{queue}/dead", self.dead, methods=["GET"]),
            Route("/queues/{queue}/dead:retry", self.retry_dead, methods=["POST"]),
            Route("/queues/{queue}/history", self.history, methods=["GET"]),
            Route("/history", self.history, methods=["GET"]),
            Route("/jobs/{job_id}", self.job, methods=["GET", "DELETE"]),
            Route("/jobs/{job_id}/events", self.job_events, methods=["GET"]),
            Route("/jobs/{job_id}/tree", self.job_tree, methods=["GET"]),
            Route("/jobs/{job_id}/cancel", self.cancel, methods=["POST"]),
            Route("/jobs/{job_id}/retry", self.retry, methods=["POST"]),
            Route("/jobs/{job_id}/run-now", self.run_now, methods=["POST"]),
            Route("/workers", self.workers, methods=["GET"]),
            Route("/workers/{worker_id}/quiet", self.signal, methods=["POST"]),
            Route("/workers/{worker_id}/stop", self.signal, methods=["POST"]),
        ]


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, str(exc.detail), exc.headers)


async def _redis_error(request: Request, exc: Exception) -> Response:
    message = str(exc) if isinstance(exc, ConnectionFailed) else f"Redis error: {exc}"
    return _error(503, message)


def create_api(
    client: Client,
    *,
    read_only: bool = False,
    basic_auth: str | tuple[str, str] | None = None,
    api_token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    allowed_hosts: Iterable[str] = (),
) -> Starlette:
    """The JSON API as an ASGI app of its own (:func:`create_app` mounts it at ``/api``).

    Args:
        client: where jobs are written and read (the caller opens and closes it).
        read_only: refuse every request that changes something with 405.
        basic_auth: ``"user:password"``, accepted (besides the token) when set.
        api_token: the bearer token every request must carry, when set.
        max_body_bytes: larger request bodies are refused with 413.
        allowed_hosts: Host names answered to besides ``localhost`` and the addresses the
            requests arrive at (names a proxy or DNS gives this server): ``name``,
            ``*.domain`` or ``*`` (any). Any other Host is refused with 400 (DNS rebinding).
    """
    settings = Settings.of(read_only, basic_auth, api_token, max_body_bytes, allowed_hosts)
    return api_app(client, settings)


def api_app(client: Client, settings: Settings) -> Starlette:
    """:func:`create_api` for settings already checked."""
    handlers: dict[Any, Any] = {
        HTTPException: _http_error,
        RedisError: _redis_error,
        ConnectionFailed: _redis_error,
    }
    return Starlette(
        routes=Api(client).routes(),
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(Guard, settings=settings, kind="api"),
            Middleware(BodyLimit, max_bytes=settings.max_body_bytes, json_errors=True),
        ],
        exception_handlers=handlers,
    )
