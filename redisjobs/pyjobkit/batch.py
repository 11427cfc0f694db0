"""Batch executors (Pyjobkit's ``pyjobkit.batch``): run many claimed jobs of one kind in one
call, such as one model pass over N inputs::

    class Embed(BatchExecutor):
        kind, max_batch_size = "embed", 32

        async def run_batch(self, jobs):
            return [{"vector": v} for v in await model.embed([j.payload for j in jobs])]

    rows = await engine.claim_batch(worker_id, limit=32)
    await dispatch_batch(engine, Embed(), rows, worker_id=worker_id)

Each job is finished under the version it was claimed with, so a job whose lease moved on
meanwhile is not overwritten (:class:`~redisjobs.pyjobkit.contracts.OptimisticLockError`).
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._ids import uuid_of
from .markers import strip_internal_payload

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["BatchExecutor", "BatchJob", "dispatch_batch"]

log = logging.getLogger("pyjobkit.batch")


@dataclass(frozen=True)
class BatchJob:
    """One job of a batch."""

    job_id: uuid.UUID
    payload: Any
    attempts: int
    version: int | None


class BatchExecutor(ABC):
    """An executor that runs jobs of its kind many at a time."""

    kind: str
    max_batch_size: int = 32

    @abstractmethod
    async def run_batch(self, jobs: Sequence[BatchJob]) -> list[Any]:
        """The results of `jobs`, in their order."""


async def dispatch_batch(
    engine: Engine,
    executor: BatchExecutor,
    rows: Sequence[Mapping[str, Any]],
    *,
    worker_id: uuid.UUID | str,
) -> None:
    """Run `executor` over claimed `rows` and finish each job: with its result, or, when the
    batch raised, failed with the error (all of them).

    Raises:
        ValueError: more rows than ``executor.max_batch_size``.
        RuntimeError: the executor returned another number of results than it got jobs.
    """
    if not rows:
        return
    if len(rows) > executor.max_batch_size:
        raise ValueError(
            f"batch of {len(rows)} exceeds executor.max_batch_size={executor.max_batch_size}"
        )
    jobs = [
        BatchJob(
            uuid_of(row["id"]),
            strip_internal_payload(row.get("payload")),
            int(row.get("attempts") or 0),
            row.get("version"),
        )
        for row in rows
    ]
    try:
        results = await executor.run_batch(jobs)
    except Exception as exc:
        log.warning("run_batch raised; failing %d job(s): %r", len(jobs), exc)
        for job in jobs:
            await engine.backend.fail(
                job.job_id, {"error": repr(exc)}, expected_version=job.version
            )
        return
    if len(results) != len(jobs):
        raise RuntimeError(f"run_batch returned {len(results)} results for {len(jobs)} jobs")
    for job, result in zip(jobs, results, strict=True):
        await engine.backend.succeed(job.job_id, result, expected_version=job.version)
