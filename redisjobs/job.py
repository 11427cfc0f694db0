"""Pure data about jobs: statuses, the Job snapshot parsed from a job hash. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, get_args

from . import deps, jobtext
from .errors import SerializationError
from .options import DEFAULT_PRIORITY
from .serialization import unpackb


class JobStatus(StrEnum):
    """Where a job is in its life (docs/architecture.md, "Job states")."""

    WAITING = "waiting"
    """It waits for the jobs it depends on (``depends_on``) to end."""
    PENDING = "pending"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True for completed, failed and cancelled."""
        return self in _FINAL


_FINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
FINAL_STATUSES: frozenset[str] = frozenset(s.value for s in _FINAL)


FailureReason = Literal["timeout", "error", "fatal", "cancel", "dependency"]
"""Why a run ended without a result, kept in the job's ``failure`` field:

* ``timeout``: it outlived the job's `timeout` (retried while attempts are left);
* ``error``: it raised (retried while attempts are left);
* ``fatal``: it failed for good whatever attempts were left: a payload no worker can use
  (:class:`~redisjobs.errors.PayloadError`, ``CallRefused``), an unknown kind, an
  ``ExecutorError(retryable=False)``, an outcome Redis refused, a hash holding garbage, or runs
  that killed their workers ``max_deliveries`` times;
* ``cancel``: it was cancelled on request;
* ``dependency``: it never ran: a job it waited for failed or was cancelled (its error says
  which; see :data:`~redisjobs.deps.ParentPolicy`).
"""
_REASONS: dict[bytes, FailureReason] = {r.encode(): r for r in get_args(FailureReason)}


def ms_to_datetime(value: bytes | int | None) -> datetime | None:
    """Redis millisecond timestamp -> aware UTC datetime (None when absent or not a time)."""
    if value is None or value == b"":
        return None
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _number(value: bytes | None, kind: type[int] | type[float], default: int = 0) -> Any:
    """A numeric field, `default` when absent or garbage (a hash written by something else)."""
    try:
        return kind(value or default)
    except (ValueError, OverflowError):
        return kind(default)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def _relative(ref: str | None, queue: str) -> str | None:
    return None if ref is None else deps.relative(ref, queue)


def _failure(value: bytes | None) -> FailureReason | None:
    """The ``failure`` field; None when absent (no run failed, or the job was written before
    reasons were recorded) or not one of the reasons."""
    return None if value is None else _REASONS.get(value)


def _decode(raw: bytes | None) -> tuple[Any, str | None]:
    if raw is None:
        return None, None
    try:
        return unpackb(raw), None
    except SerializationError as exc:
        return None, str(exc)


@dataclass(slots=True)
class Job:
    """A snapshot of one job, as read from Redis.

    The first fields are the JobManager seed's `Job`; the rest are redisjobs' own.
    """

    id: str
    status: JobStatus
    created_at: datetime
    progress: float = 0.0
    result: Any = None
    error: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    queue: str = ""
    kind: str = ""
    payload: Any = None
    attempt: int = 0
    max_retries: int = 0
    timeout: float | None = None
    scheduled_at: datetime | None = None
    worker: str | None = None
    lease: int = 0
    progress_message: str | None = None
    failure: FailureReason | None = None
    """Why the last run that failed did (see :data:`FailureReason`); None when none failed."""
    priority: int = DEFAULT_PRIORITY
    """0..2**21, lower runs sooner; FIFO within a priority (default 100)."""
    depends_on: tuple[str, ...] = ()
    """The jobs it waits (or waited) for: ids of its own queue, ``queue/id`` of others. The
    ``parents`` of ``on_parent_failure``; in a flow, the children whose results its parent
    reads (``ctx.children_results()``)."""
    dependents: tuple[str, ...] = ()
    """The jobs waiting for it, as :attr:`depends_on` spells them (read by
    :meth:`redisjobs.Client.get`; empty in listings)."""
    has_dependents: bool = False
    """Whether jobs wait (or waited) for it; :attr:`dependents` names them once read."""
    flow: str | None = None
    """The id of the flow (a chain, a chord) it belongs to: its last job's, ``queue/id``
    when that is of another queue."""
    duplicate: bool = False
    """Set on a job an enqueue returned without writing it: one with that id existed (or its
    idempotency marker did), or another job held the unique lock (then this is that job)."""
    cancel_requested: bool = False
    """A cancel of it was asked for while it ran and the worker has not stopped it yet."""
    limit_key: str | None = None
    """Its limit key (rate limits, max_running and fair share are per key), None without."""

    @property
    def schedule_id(self) -> str | None:
        """The schedule that made it, as its id tells (``<schedule id>@<tick ms>``), or None."""
        made_by, at, tick = self.id.rpartition("@")
        return made_by if at and made_by and tick.isdigit() else None

    @property
    def name(self) -> str:
        """What the job runs: a ``call`` job's function name (its payload's ``fn``, as the
        producer wrote it), the kind for other kinds (or a ``call`` payload without a name)."""
        return jobtext.job_name(self.kind, self.payload)

    def call_text(self, limit: int = jobtext.SHORT) -> str:
        """The job's call as it reads, in at most `limit` characters:
        ``myapp.tasks:resize('a.png', width=640)`` for a ``call`` job (each argument's
        ``repr``, long ones elided), the kind and where the job goes for the others
        (``http POST api.example.com/hooks``). Never raises, whatever the payload holds.

        Args:
            limit: characters at most (:data:`~redisjobs.jobtext.SHORT` suits a list,
                :data:`~redisjobs.jobtext.LONG` a job's own page).
        """
        return jobtext.call_text(self.kind, self.payload, limit)

    @classmethod
    def from_hash(cls, queue: str, job_id: str, h: dict[bytes, bytes]) -> Job:
        """Build a Job from the fields of its hash.

        A payload or result that does not decode is reported in `error` rather than raised,
        so that one bad job never breaks a listing.
        """
        payload, payload_err = _decode(h.get(b"payload"))
        result, result_err = _decode(h.get(b"result"))
        try:
            status = JobStatus(h.get(b"status", b"").decode("utf-8", "replace"))
        except ValueError:
            status = JobStatus.FAILED
            payload_err = f"unreadable status {h.get(b'status')!r}"
        timeout_ms = _number(h.get(b"timeout"), int)
        return cls(
            id=job_id,
            status=status,
            created_at=ms_to_datetime(h.get(b"created_at")) or datetime.fromtimestamp(0, UTC),
            progress=_number(h.get(b"progress"), float),
            result=result,
            error=_text(h.get(b"error")) or payload_err or result_err,
            started_at=ms_to_datetime(h.get(b"started_at")),
            completed_at=ms_to_datetime(h.get(b"completed_at")),
            queue=queue,
            kind=_text(h.get(b"kind")) or "",
            payload=payload,
            attempt=_number(h.get(b"attempt"), int),
            max_retries=_number(h.get(b"max_retries"), int),
            timeout=timeout_ms / 1000 if timeout_ms else None,
            scheduled_at=ms_to_datetime(h.get(b"scheduled_at")),
            worker=_text(h.get(b"worker")),
            lease=_number(h.get(b"lease"), int),
            progress_message=_text(h.get(b"progress_message")),
            failure=_failure(h.get(b"failure")),
            priority=_number(h.get(b"priority"), int, DEFAULT_PRIORITY),
            depends_on=tuple(
                deps.relative(e.ref, queue) for e in deps.decode(_text(h.get(b"depends_on")) or "")
            ),
            has_dependents=b"dependents" in h,
            flow=_relative(_text(h.get(b"flow")), queue),
            cancel_requested=b"cancel" in h,
            limit_key=_text(h.get(b"limit_key")),
        )
