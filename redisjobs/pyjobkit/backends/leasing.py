"""Pyjobkit's worker-side ``QueueBackend`` calls, each on redisjobs' own lease transitions.

A claim is the ``start`` script (the job leases to `worker_id`, its fencing token is the
record's ``version``); a lease extension is ``heartbeat``; success, failure and timeout are
``complete`` and ``fail``, fenced by the version (``expected_version``, else the job's current
lease); ``retry`` is a failure that comes back after its delay; ``reap_expired`` takes over the
jobs whose lease ran out and gives them back to the queue. A fenced call that finds the lease
moved on raises :class:`OptimisticLockError` and changes nothing.

Without an ``expected_version``, ``succeed``, ``fail`` and ``timeout`` also finish a job that
no worker claimed (the ``finish_waiting`` script: taken out of the queue, its outcome recorded,
never run), and ``retry`` runs a failed or cancelled job again (at once: the delay is a running
job's).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ...job import Job, JobStatus
from ...serialization import unpackb
from .._ids import uuid_of
from ..contracts import OptimisticLockError

if TYPE_CHECKING:
    from ...client import Client

__all__ = ["ClaimedJob", "LeaseCalls"]

ClaimedJob = dict[str, Any]
"""A claimed job: ``id``, ``kind``, ``payload``, ``timeout_s``, ``lease_until``, ``version``,
``attempts``."""


class LeaseCalls:
    """The claim and outcome calls of a backend that owns a client (see :class:`StoreBackend`)."""

    queue: str
    lease_ttl_s: float
    if TYPE_CHECKING:

        async def client(self) -> Client:
            """The backend's connected client."""

    async def claim_batch(self, worker_id: uuid.UUID | str, *, limit: int = 1) -> list[ClaimedJob]:
        """Lease up to `limit` jobs that are due to `worker_id`, in priority order."""
        client = await self.client()
        taken = await client.claim(str(worker_id), int(limit), queue=self.queue)
        now = await client.server_time()
        until = datetime.fromtimestamp(now + self.lease_ttl_s, UTC)
        return [
            {
                "id": uuid_of(d.job_id),
                "kind": d.kind,
                "payload": unpackb(d.payload),
                "timeout_s": d.timeout_ms / 1000 if d.timeout_ms > 0 else None,
                "lease_until": until,
                "version": d.lease,
                "attempts": d.attempt,
            }
            for d in taken
        ]

    async def mark_running(self, job_id: uuid.UUID | str, worker_id: uuid.UUID | str) -> None:
        """Nothing to do: a claimed job is running from its claim on."""

    async def _job(self, job_id: uuid.UUID | str) -> Job:
        job = await (await self.client()).get(uuid_of(job_id).hex, queue=self.queue)
        if job is None:
            raise KeyError(job_id)
        return job

    async def _by_hand(self, job: Job, expected: int | None, outcome: str, value: Any) -> bool:
        """Finish `job` as `outcome` if no worker claimed it and no version was expected;
        whether it did.

        Raises:
            OptimisticLockError: a worker claimed it (or it ended) meanwhile.
        """
        if expected is not None or job.status not in _WAITING:
            return False
        client = await self.client()
        answer = await client.finish_waiting(job.id, outcome, value, queue=self.queue)
        if answer != "done":
            raise OptimisticLockError(f"finish failed for {job.id}: it is {answer} now")
        return True

    async def extend_lease(
        self,
        job_id: uuid.UUID | str,
        worker_id: uuid.UUID | str,
        ttl_s: float,
        *,
        expected_version: int | None = None,
    ) -> None:
        """Extend `worker_id`'s lease on the job by `ttl_s` from now; a job that `worker_id`
        does not hold is left alone, as in Pyjobkit.

        Raises:
            OptimisticLockError: `expected_version` was given and the job does not run under it
                (or its lease moved on meanwhile).
            KeyError: no such job.
        """
        job = await self._job(job_id)
        if expected_version is not None:
            _lease(job, job_id, expected_version)
        if job.status != JobStatus.RUNNING or job.worker != str(worker_id):
            return
        client = await self.client()
        held = await client.extend_lease(job.id, job.worker, job.lease, ttl_s, queue=self.queue)
        if not held and expected_version is not None:
            raise OptimisticLockError(f"extend_lease failed for {job_id}: the lease moved on")

    async def succeed(
        self, job_id: uuid.UUID | str, result: Any, *, expected_version: int | None = None
    ) -> None:
        """Record the job's result (it ends ``success``).

        Raises:
            OptimisticLockError: the job does not run under that version.
        """
        job = await self._job(job_id)
        if await self._by_hand(job, expected_version, "completed", result):
            return
        jid, worker, lease = _lease(job, job_id, expected_version)
        client = await self.client()
        if not await client.complete_run(jid, worker, lease, result, queue=self.queue):
            raise OptimisticLockError(f"finish failed for {job_id}: the lease moved on")

    async def _fail(
        self,
        job_id: uuid.UUID | str,
        error: str,
        mode: str,
        expected: int | None,
        defer: float | None,
    ) -> str:
        job = await self._job(job_id)
        if defer is None and await self._by_hand(job, expected, mode, error):
            return "failed"
        jid, worker, lease = _lease(job, job_id, expected)
        client = await self.client()
        outcome = await client.fail_run(
            jid, worker, lease, error, mode=mode, defer=defer, queue=self.queue
        )
        if outcome == "stale":
            raise OptimisticLockError(f"finish failed for {job_id}: the lease moved on")
        return outcome

    async def fail(
        self, job_id: uuid.UUID | str, reason: Any, *, expected_version: int | None = None
    ) -> None:
        """Fail the job for good, `reason` (a mapping such as ``{"error": ...}``) its error.

        Raises:
            OptimisticLockError: the job does not run under that version.
        """
        error = reason.get("error", reason) if isinstance(reason, Mapping) else reason
        await self._fail(job_id, str(error), "fatal", expected_version, None)

    async def timeout(
        self, job_id: uuid.UUID | str, *, expected_version: int | None = None
    ) -> None:
        """End the run as timed out (retried while the job has attempts left)."""
        await self._fail(job_id, "timeout", "timeout", expected_version, None)

    async def retry(self, job_id: uuid.UUID | str, *, delay: float) -> None:
        """Put the running job back to run again after `delay` seconds (an attempt is used; a
        job without attempts left fails instead); a failed or cancelled job runs again at once,
        and a job that waits to run is left waiting."""
        job = await self._job(job_id)
        if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            await (await self.client()).retry(job.id, queue=self.queue)
        elif job.status == JobStatus.RUNNING:
            await self._fail(job_id, "retry requested", "error", None, delay)

    async def reap_expired(self) -> int:
        """Give every job whose lease ran out back to the queue; returns how many."""
        return await (await self.client()).reap(self.lease_ttl_s, queue=self.queue)


_WAITING = (JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.WAITING)


def _lease(job: Job, job_id: uuid.UUID | str, expected: int | None) -> tuple[str, str, int]:
    """`job`'s (id, worker, lease) when it runs under `expected` (or any) version.

    Raises:
        OptimisticLockError: it does not run, or not under that version.
    """
    running = job.status == JobStatus.RUNNING and job.worker is not None
    if not running or (expected is not None and job.lease != expected):
        raise OptimisticLockError(f"{job_id}: version {expected} does not hold the job")
    return job.id, str(job.worker), job.lease
