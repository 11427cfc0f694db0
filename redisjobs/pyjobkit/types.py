"""The shapes of values the Pyjobkit face hands out: job statuses and job records."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, TypedDict

__all__ = ["FailureReason", "JobRecord", "JobResult", "JobStatus", "LogStream"]

JobStatus = Literal["queued", "running", "success", "failed", "cancelled", "timeout"]
"""A job's status as Pyjobkit spells it (``timeout``: failed because a run outlived its
``timeout_s``)."""

LogStream = Literal["stdout", "stderr"]
"""The stream :meth:`~redisjobs.pyjobkit.contracts.ExecContext.log` writes to."""


class JobRecord(TypedDict):
    """A job as :meth:`~redisjobs.pyjobkit.Engine.get` returns it.

    ``leased_by`` is the id of the worker running it (a redisjobs worker id, not a UUID), None
    while it does not run; ``lease_until`` when its lease runs out unless that worker's next
    heartbeat extends it (on Redis's clock; None while it does not run); ``version`` is its
    lease, the fencing token that grows by one each time a worker takes the job; ``error`` and
    ``progress`` are redisjobs' own.
    """

    id: uuid.UUID
    kind: str
    status: JobStatus
    payload: Any
    result: Any
    error: str | None
    priority: int
    attempts: int
    max_attempts: int
    timeout_s: float | None
    scheduled_for: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    leased_by: str | None
    lease_until: datetime | None
    version: int
    cancel_requested: bool
    progress: float


class JobResult(TypedDict, total=False):
    """The conventional shape of an executor's result (any value is accepted)."""

    ok: bool
    error: str
    data: Any


class FailureReason(TypedDict, total=False):
    """Why a job failed: ``error`` a short identifier (``timeout``, ``cancelled``,
    ``exception``), the exception's type and message when one was raised."""

    error: str
    exception_type: str
    message: str
