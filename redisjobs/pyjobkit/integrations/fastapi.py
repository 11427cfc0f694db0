"""Pyjobkit's REST API as a FastAPI router (the ``[fastapi]`` extra)::

    app.include_router(make_router(engine, dependencies=[Depends(auth)]), prefix="/api/v1")

``POST /jobs`` enqueues (202, ``{"job_id"}``), ``GET /jobs`` lists (``status``, ``limit``; 501
when the engine's backend has no ``all_jobs``),
``GET /jobs/{id}`` reads one (404 when unknown), ``POST /jobs/{id}/cancel`` asks for a cancel
(202; 404 when unknown), ``GET /healthz`` checks the backend (503 when unreachable). Bad input
gets FastAPI's 422. Payloads are returned without the face's internal markers.

redisjobs' own HTTP API and dashboard (``redisjobs dashboard``) offer far more; this router is
for applications that mount Pyjobkit's.
"""

# FastAPI reads the handlers' annotations when routes are added, and the request models are
# imported in the functions that add them: the annotations must be real objects, not strings,
# so this module does not use `from __future__ import annotations`.

import inspect
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..engine import Engine
from ..markers import strip_internal_payload

if TYPE_CHECKING:
    from fastapi import APIRouter

__all__ = ["FastAPIDependencyMissing", "make_router"]


class FastAPIDependencyMissing(RuntimeError):
    """fastapi (and pydantic) are not installed: ``pip install redisjobs[fastapi]``."""


def _shown(record: Any) -> dict[str, Any]:
    return {**record, "payload": strip_internal_payload(record.get("payload"))}


def make_router(
    engine: Engine, *, prefix: str = "", dependencies: Sequence[Any] | None = None
) -> Any:
    """A FastAPI ``APIRouter`` over `engine`; `dependencies` (such as ``Depends(auth)``) apply
    to every endpoint.

    Raises:
        FastAPIDependencyMissing: fastapi is not installed.
    """
    try:
        from fastapi import APIRouter

        from . import _rest_models  # noqa: F401 - pydantic is there too
    except ImportError as exc:
        raise FastAPIDependencyMissing(
            "the FastAPI integration needs fastapi and pydantic: pip install 'redisjobs[fastapi]'"
        ) from exc
    router = APIRouter(prefix=prefix, dependencies=list(dependencies or []))
    _queue_routes(router, engine)
    _job_routes(router, engine)
    return router


def _queue_routes(router: "APIRouter", engine: Engine) -> None:
    from fastapi import HTTPException

    from ._rest_models import EnqueueRequest, JobOut

    @router.post("/jobs", status_code=202)
    async def enqueue_job(req: EnqueueRequest) -> dict[str, uuid.UUID]:
        try:
            job_id = await engine.enqueue(**req.model_dump())
        except (TypeError, ValueError) as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        return {"job_id": job_id}

    @router.get("/jobs", response_model=list[JobOut])
    async def list_jobs(status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        all_jobs = getattr(engine.backend, "all_jobs", None)
        if all_jobs is None:
            raise HTTPException(status_code=501, detail="the backend cannot list jobs (all_jobs)")
        return [_shown(r) for r in await _listed(all_jobs, status, limit)]


async def _listed(all_jobs: Any, status: str | None, limit: int) -> list[Any]:
    """A backend's jobs (of `status`), `limit` at most; a backend whose ``all_jobs`` takes no
    filter (written for an older QueueBackend) is filtered here."""
    if {"status", "limit"} <= set(inspect.signature(all_jobs).parameters):
        return list(await all_jobs(status=status, limit=limit))
    records = [r for r in await all_jobs() if status is None or r.get("status") == status]
    return records[: max(0, limit)]


def _job_routes(router: "APIRouter", engine: Engine) -> None:
    from fastapi import HTTPException

    from ._rest_models import JobOut

    @router.get("/jobs/{job_id}", response_model=JobOut)
    async def get_job(job_id: uuid.UUID) -> dict[str, Any]:
        try:
            return _shown(await engine.get(job_id))
        except KeyError as exc:
            raise HTTPException(status_code=404, detail=f"job {job_id} not found") from exc

    @router.post("/jobs/{job_id}/cancel", status_code=202)
    async def cancel_job(job_id: uuid.UUID) -> dict[str, str]:
        await get_job(job_id)  # 404 for an unknown id, not a misleading 202
        await engine.cancel(job_id)
        return {"status": "cancellation_requested"}

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        try:
            await engine.check_connection()
        except Exception as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        return {"status": "ok"}
