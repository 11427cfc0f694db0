"""Enqueue options: validated once, turned into the ARGV tail of ``enqueue.lua``.

A Client validates its defaults when it is made and keeps their encoded form, so the common
call (no per-job options) builds a job's ARGV with one list concatenation. Times are seconds in
the API and integer milliseconds in Redis.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

from .keys import check_job_id
from .scripts import Arg

PER_JOB = frozenset({"job_id", "delay", "at"})


def new_job_id() -> str:
    """A fresh random job id (128 bits, hex)."""
    return os.urandom(16).hex()


def _ms(seconds: float | None, name: str) -> int:
    if seconds is None:
        return 0
    if seconds < 0:
        raise ValueError(f"{name} must be >= 0, got {seconds}")
    return round(seconds * 1000)


@dataclass(frozen=True, slots=True)
class JobOptions:
    """How a job is retried, timed out and kept (see :meth:`redisjobs.Client.enqueue`)."""

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

    def tail(self, delay_ms: int = 0, at_ms: int = 0) -> list[Arg]:
        """The ARGV values after id, kind and payload in ``enqueue.lua``."""
        return [
            int(self.max_retries),
            _ms(self.retry_delay, "retry_delay"),
            float(self.retry_backoff),
            float(self.retry_jitter),
            _ms(self.timeout, "timeout"),
            max(1, _ms(self.result_ttl, "result_ttl")),
            delay_ms,
            at_ms,
        ]

    def with_overrides(self, opts: Mapping[str, Any]) -> tuple[str, list[Arg]]:
        """(job id, ARGV tail) for one job's options over these defaults.

        Raises:
            TypeError: an unknown option.
            ValueError: an invalid value (InvalidJobId: an invalid `job_id`).
        """
        known = {f.name for f in fields(self)}
        unknown = set(opts) - known - PER_JOB
        if unknown:
            raise TypeError(f"unknown enqueue option(s): {', '.join(sorted(unknown))}")
        changed = {k: v for k, v in opts.items() if v is not None and k in known}
        merged = replace(self, **changed) if changed else self
        given = opts.get("job_id")
        job_id = new_job_id() if given is None else check_job_id(given)
        return job_id, merged.tail(_ms(opts.get("delay"), "delay"), _at_ms(opts.get("at")))


def _at_ms(at: datetime | None) -> int:
    if at is None:
        return 0
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(1, round(at.timestamp() * 1000))
