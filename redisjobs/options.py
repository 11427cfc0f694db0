"""Enqueue options: validated once, turned into the named values of an enqueue row.

A Client validates its defaults when it is made and keeps their encoded form (a
:class:`Policy`), so the common call (no per-job options) builds a job's row without validating
anything again. Times are seconds in the API and integer milliseconds in Redis.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypedDict

from .jobrules import RULE_OPTIONS, JobRules, RuleValues, rules_of
from .keys import check_job_id

PER_JOB = frozenset({"job_id", "delay", "at", "priority"}) | RULE_OPTIONS

MAX_PRIORITY = 2**21
"""The largest priority (BullMQ's bound): 0 is the most urgent."""

DEFAULT_PRIORITY = 100
"""A job's priority unless it is given one (Pyjobkit's): lower runs sooner. Jobs at it cost
nothing extra: they are the stream entries every job once was (docs/architecture.md,
"Priorities")."""


def new_job_id() -> str:
    """A fresh random job id: 128 random bits as 22 characters of ``A-Z a-z 0-9 _ -`` (URL-safe
    base64), never starting with ``-`` (which a job id may not).

    As many bits as 32 hex digits in two thirds of the length: a job's id is spelled in its
    hash's key, its stream entry and its events, so ten characters fewer is about 30 bytes of
    Redis memory less per queued job.
    """
    while True:
        job_id = secrets.token_urlsafe(16)
        if job_id[0] != "-":  # 1 in 64: draw again rather than bend the alphabet
            return job_id


def _ms(seconds: float | None, name: str) -> int:
    if seconds is None:
        return 0
    if seconds < 0:
        raise ValueError(f"{name} must be >= 0, got {seconds}")
    return round(seconds * 1000)


def _priority(priority: object) -> int:
    """`priority` when it is an int of 0..:data:`MAX_PRIORITY` (lower is more urgent); None is
    :data:`DEFAULT_PRIORITY`.

    Raises:
        TypeError: not an int (a bool is not a priority either).
        ValueError: out of range.
    """
    if priority is None:
        return DEFAULT_PRIORITY
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise TypeError(f"priority must be an int, got {type(priority).__name__}")
    if not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be 0..{MAX_PRIORITY} (lower runs sooner), got {priority}")
    return priority


class Policy(NamedTuple):
    """How a job is retried, timed out and kept, as ``enqueue.lua`` takes it (integer ms)."""

    max_retries: int
    retry_delay_ms: int
    retry_backoff: float
    retry_jitter: float
    timeout_ms: int
    result_ttl_ms: int


class PerJob(NamedTuple):
    """One job's options, validated and encoded: everything of its row but kind and payload."""

    job_id: str
    policy: Policy
    delay_ms: int = 0
    at_ms: int = 0
    priority: int = DEFAULT_PRIORITY
    rules: RuleValues | None = None
    """The rules it sets (:func:`~redisjobs.jobrules.rules_of`)."""


@dataclass(frozen=True, slots=True)
class JobOptions:
    """How a job is retried, timed out and kept (see :meth:`redisjobs.Client.enqueue`).

    Args:
        max_retries: attempts after the first when it fails.
        retry_delay: seconds before the first retry; retry n waits
            ``retry_delay * retry_backoff ** (n - 1)``, spread by ``± retry_jitter``.
        retry_backoff: the exponential factor (>= 1).
        retry_jitter: the fraction of randomness (0..1) in each retry delay.
        timeout: seconds a run may take before it is cancelled and counted as failed.
        result_ttl: seconds a finished job (and its result) is kept; a job that failed for
            good (a dead letter) is kept 30 days at least.
    """

    max_retries: int = 0
    retry_delay: float = 1.0
    retry_backoff: float = 2.0
    retry_jitter: float = 0.1
    timeout: float | None = None
    result_ttl: float = 86400.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.retry_backoff < 1 or not 0 <= self.retry_jitter <= 1:
            raise ValueError("need max_retries >= 0, retry_backoff >= 1, 0 <= retry_jitter <= 1")
        if self.result_ttl <= 0:
            raise ValueError("result_ttl must be > 0")

    def policy(self) -> Policy:
        """These options encoded for ``enqueue.lua``."""
        return Policy(
            max_retries=int(self.max_retries),
            retry_delay_ms=_ms(self.retry_delay, "retry_delay"),
            retry_backoff=float(self.retry_backoff),
            retry_jitter=float(self.retry_jitter),
            timeout_ms=_ms(self.timeout, "timeout"),
            result_ttl_ms=max(1, _ms(self.result_ttl, "result_ttl")),
        )

    def with_overrides(self, opts: Mapping[str, Any]) -> PerJob:
        """One job's options over these defaults (a None value keeps the default).

        Raises:
            TypeError: an unknown option, or a priority that is not an int.
            ValueError: an invalid value (InvalidJobId: an invalid `job_id`).
        """
        unknown = set(opts) - ENQUEUE_OPTIONS
        if unknown:
            raise TypeError(f"unknown enqueue option(s): {', '.join(sorted(unknown))}")
        changed = {k: v for k, v in opts.items() if v is not None and k not in PER_JOB}
        merged = replace(self, **changed) if changed else self
        given = opts.get("job_id")
        if opts.get("depends_on") is not None and (opts.get("delay") or opts.get("at")):
            raise ValueError("depends_on: a job that waits for others cannot be delayed too")
        return PerJob(
            job_id=new_job_id() if given is None else check_job_id(given),
            policy=merged.policy(),
            delay_ms=_ms(opts.get("delay"), "delay"),
            at_ms=_at_ms(opts.get("at")),
            priority=_priority(opts.get("priority")),
            rules=rules_of(opts),
        )


ENQUEUE_OPTIONS = PER_JOB | {f.name for f in fields(JobOptions)}
"""Every option of one job: :meth:`redisjobs.Client.enqueue`'s keywords but ``queue``."""


def _at_ms(at: datetime | None) -> int:
    if at is None:
        return 0
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(1, round(at.timestamp() * 1000))


class JobDefaults(TypedDict, total=False):
    """The keywords of :class:`JobOptions`, for a signature that passes them on (``**``)."""

    max_retries: int
    retry_delay: float
    retry_backoff: float
    retry_jitter: float
    timeout: float | None
    result_ttl: float


class EnqueueOptions(JobDefaults, JobRules, total=False):
    """Every option of one job (:data:`ENQUEUE_OPTIONS`), for a signature that takes them as
    ``**``; None, the default of each, keeps the client's default."""

    job_id: str | None
    delay: float | None
    at: datetime | None
    priority: int
    partition_key: str | None
