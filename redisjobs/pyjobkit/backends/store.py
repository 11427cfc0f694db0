"""What both backends share: the connection they own, and Pyjobkit's ``QueueBackend`` calls on
it that a producer makes (enqueue, get, cancel, depth), each one redisjobs client call."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ...client import Client
from ...job import Job, JobStatus
from ...options import DEFAULT_PRIORITY
from .._ids import uuid_of
from ..contracts import QueueBackend
from ..types import JobRecord
from ..types import JobStatus as Status
from .leasing import LeaseCalls

__all__ = ["STATUS", "StoreBackend", "checked_batch", "record_of"]

_ID_NAMESPACE = uuid.UUID("6d1c5d58-7c0e-4b7b-9d8e-1f6a0c3e2b9a")

STATUS: dict[JobStatus, Status] = {
    JobStatus.WAITING: "queued",
    JobStatus.PENDING: "queued",
    JobStatus.SCHEDULED: "queued",
    JobStatus.RUNNING: "running",
    JobStatus.COMPLETED: "success",
    JobStatus.FAILED: "failed",  # "timeout" when the run outlived its timeout_s
    JobStatus.CANCELLED: "cancelled",
}
"""redisjobs status -> Pyjobkit status."""


class StoreBackend(LeaseCalls, QueueBackend):
    """A queue of a redisjobs store, and the client that talks to it (made on first use).

    Args:
        url: the store's URL (``redis://...``, ``memory://name``).
        queue: the queue the engine enqueues to and its workers serve.
        lease_ttl_s: seconds without a heartbeat before another worker takes a job over.
    """

    def __init__(self, url: str, *, queue: str = "default", lease_ttl_s: float = 30) -> None:
        if lease_ttl_s <= 0:
            raise ValueError("lease_ttl_s must be positive")
        self.url = url
        self.queue = queue
        self.lease_ttl_s = lease_ttl_s
        self._client: Client | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, queue={self.queue!r})"

    async def client(self) -> Client:
        """The backend's connected client."""
        if self._client is None:
            self._client = await Client(self.url, queue=self.queue).connect()
        return self._client

    async def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # -- producing --------------------------------------------------------------------------------

    def job_spec(
        self,
        *,
        kind: str,
        payload: Any,
        priority: int = DEFAULT_PRIORITY,
        scheduled_for: datetime | None = None,
        max_attempts: int = 3,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """The redisjobs job spec of Pyjobkit's enqueue arguments.

        The id of a job with an `idempotency_key` derives from the key and the queue, so that
        enqueueing it again while it exists is a re-send that writes nothing.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        job_id = (
            uuid.uuid5(_ID_NAMESPACE, f"{self.queue}\0{idempotency_key}")
            if idempotency_key is not None
            else uuid.uuid4()
        )
        # Pyjobkit retries after 1, 2, 4 ... seconds.
        return {
            "kind": kind,
            "payload": payload,
            "job_id": job_id.hex,
            "at": scheduled_for,
            "priority": priority,
            "max_retries": max_attempts - 1,
            "retry_delay": 1.0,
            "retry_backoff": 2.0,
            "timeout": timeout_s,
        }

    async def enqueue(self, **job: Any) -> uuid.UUID:
        """Add a job (:meth:`job_spec`'s arguments); returns its id."""
        return (await self.write([self.job_spec(**job)]))[0]

    async def enqueue_many(self, jobs: Iterable[Mapping[str, Any]]) -> list[uuid.UUID]:
        """Add many jobs (mappings of :meth:`job_spec`'s arguments, the payload ``{}`` when not
        given) in one round trip; nothing is written when one is refused.

        Raises:
            ValueError: a job without a kind, or one idempotency key given twice.
        """
        batch = checked_batch(jobs)
        return await self.write([self.job_spec(**{"payload": {}, **job}) for job in batch])

    async def write(self, specs: list[dict[str, Any]]) -> list[uuid.UUID]:
        """Enqueue redisjobs job specs; their ids as UUIDs."""
        written = await (await self.client()).enqueue_many(specs)
        return [uuid_of(j.id) for j in written]

    # -- reading and cancelling -------------------------------------------------------------------

    async def find(self, job_id: uuid.UUID | str) -> Job | None:
        """The redisjobs job, or None (never enqueued, or expired after its result TTL)."""
        return await (await self.client()).get(uuid_of(job_id).hex)

    async def get(self, job_id: uuid.UUID | str) -> JobRecord:
        """The job as a Pyjobkit record.

        Raises:
            KeyError: no such job.
        """
        job = await self.find(job_id)
        if job is None:
            raise KeyError(job_id)
        return await self._record(job)

    async def _record(self, job: Job) -> JobRecord:
        """The record of `job`, with the deadline of its lease while it runs."""
        record = record_of(job)
        if job.status == JobStatus.RUNNING:
            client = await self.client()
            until = await client.lease_deadline(job.id, self.lease_ttl_s, queue=self.queue)
            record["lease_until"] = None if until is None else datetime.fromtimestamp(until, UTC)
        return record

    async def cancel(self, job_id: uuid.UUID | str) -> bool:
        """Cancel a queued or running job; False when it had already ended."""
        return await (await self.client()).cancel(uuid_of(job_id).hex)

    async def is_cancelled(self, job_id: uuid.UUID | str) -> bool:
        """True once a cancel of the job was requested (or it ended cancelled)."""
        job = await self.find(job_id)
        return job is not None and (job.cancel_requested or job.status == JobStatus.CANCELLED)

    async def queue_depth(self) -> int:
        """Jobs waiting to run now."""
        stats = await (await self.client()).stats()
        return int(stats.get("pending", 0))

    async def check_connection(self) -> None:
        """Raise if the store cannot be reached."""
        await (await self.client()).ping()

    # -- the queue as a whole ---------------------------------------------------------------------

    async def all_jobs(
        self, status: Status | None = None, limit: int | None = None
    ) -> list[JobRecord]:
        """The queue's jobs (of one Pyjobkit status), newest first, `limit` at most."""
        client, found = await self.client(), []
        for ours in _STATUSES.get(status, []) if status is not None else [None]:
            cursor: int | None = 0
            while cursor is not None:
                page = await client.list_jobs(ours, queue=self.queue, limit=500, cursor=cursor)
                found += [await self._record(job) for job in page.jobs]
                cursor = page.cursor
        if status is not None:
            found = [record for record in found if record["status"] == status]
        found.sort(key=lambda record: record["created_at"], reverse=True)
        return found if limit is None else found[: max(0, limit)]

    async def count(self, status: Status | None = None) -> int:
        """How many jobs the queue has (of one Pyjobkit status)."""
        return len(await self.all_jobs(status))

    async def clear(self) -> None:
        """Delete every job of the queue."""
        await (await self.client()).obliterate(self.queue, force=True)

    async def purge_finished(
        self, older_than: float | timedelta | None = None, statuses: Iterable[str] | None = None
    ) -> int:
        """Delete finished jobs (``success``, ``failed``, ``timeout``, ``cancelled``, or those
        of `statuses`) that ended `older_than` seconds (or a timedelta) ago or earlier (None:
        every one); returns how many."""
        age = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        wanted = set(statuses or ("success", "failed", "timeout", "cancelled"))
        client, deleted = await self.client(), 0
        for ours in {s for name in wanted for s in _STATUSES.get(name, [])}:
            if ours in _FINAL:
                deleted += await client.purge(self.queue, status=ours, older_than=age)
        return deleted


_STATUSES: dict[str | None, list[JobStatus]] = {}
for _ours, _theirs in STATUS.items():
    _STATUSES.setdefault(_theirs, []).append(_ours)
_STATUSES["timeout"] = [JobStatus.FAILED]
_FINAL = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}


def checked_batch(jobs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The jobs of an ``enqueue_many``, each with a kind and no idempotency key twice.

    Raises:
        ValueError: a job without a kind, or one idempotency key given twice.
    """
    batch, keys = list(jobs), set()
    for n, job in enumerate(batch):
        if "kind" not in job:
            raise ValueError(f"enqueue_many[{n}]: 'kind' is required")
        key = job.get("idempotency_key")
        if key is not None and key in keys:
            raise ValueError(f"enqueue_many[{n}]: duplicate idempotency_key {key!r} in the batch")
        keys.add(key)
    return batch


_ENDED_BADLY = ("failed", "timeout", "cancelled")


def record_of(job: Job) -> JobRecord:
    """A redisjobs job as a Pyjobkit record."""
    status = STATUS[job.status]
    if job.status == JobStatus.FAILED and job.failure == "timeout":
        status = "timeout"
    running = job.status == JobStatus.RUNNING
    return {
        "id": uuid_of(job.id),
        "kind": job.kind,
        "status": status,
        "payload": job.payload,
        # Pyjobkit keeps why a job ended without success as its result
        "result": {"error": job.error} if status in _ENDED_BADLY else job.result,
        "error": job.error,
        "priority": job.priority,
        "attempts": job.attempt,
        "max_attempts": job.max_retries + 1,
        "timeout_s": job.timeout,
        "scheduled_for": job.scheduled_at,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.completed_at,
        "leased_by": job.worker if running else None,
        "lease_until": None,  # a running job's: see StoreBackend.get
        "version": job.lease,
        # the flag goes when the job ends: a cancelled job was asked to
        "cancel_requested": job.cancel_requested or job.status == JobStatus.CANCELLED,
        "progress": job.progress,
    }
