"""The face worker's ``kinds`` and ``tags`` filters: which of the queue's jobs it runs.

Every worker reads the one queue stream, so a filtered worker still leases jobs it must not run.
It declines them (:class:`redisjobs.errors.Declined`): each goes back to the queue, due
``DECLINE_DELAY`` seconds later at least, with no attempt used and nothing counted against it,
for a worker whose filters let it through. The delay keeps a filtered worker from reading a
declined job straight back; it is also how long such a job may wait extra for a worker that
would take it at once. A job of a kind the worker has no executor for is declined too, when it
filters at all (an executor of kind ``*`` does it), instead of failing for want of one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import Declined
from ..executors import ANY_KIND
from ..executors import ExecContext as _BaseContext
from ..executors.base import ExecutorBase
from .markers import TAGS_PAYLOAD_KEY

__all__ = ["DECLINE_DELAY", "DeclineOthers", "JobFilter", "job_filter"]

DECLINE_DELAY = 0.1
"""Seconds at least before a declined job is due again (the worker's poll interval if longer)."""


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Runs only jobs of one of `kinds` (None: any) carrying one of `tags` (None: any)."""

    kinds: frozenset[str] | None
    tags: frozenset[str] | None
    retry_after: float

    def admits(self, kind: str, payload: Any) -> bool:
        """Whether a job of `kind` with `payload` is this worker's to run."""
        if self.kinds is not None and kind not in self.kinds:
            return False
        if self.tags is None:
            return True
        marks = payload.get(TAGS_PAYLOAD_KEY) if isinstance(payload, dict) else None
        return isinstance(marks, list) and not self.tags.isdisjoint(str(t) for t in marks)

    def check(self, kind: str, payload: Any) -> None:
        """Decline the job unless this worker runs it.

        Raises:
            Declined: the job's kind or tags are not this worker's.
        """
        if not self.admits(kind, payload):
            raise Declined(self.retry_after, f"kind {kind!r} or its tags are not this worker's")


def _names(what: str, values: Iterable[str] | None) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, str | bytes):
        raise TypeError(f"{what} must be a list of names, not one string: {values!r}")
    names = frozenset(str(v).strip() for v in values)
    if "" in names:
        raise ValueError(f"{what} must not contain an empty name")
    return names


def job_filter(
    kinds: Iterable[str] | None, tags: Iterable[str] | None, poll_interval: float
) -> JobFilter | None:
    """The filter of a worker's `kinds` and `tags`, or None when it runs every job.

    Raises:
        TypeError: `kinds` or `tags` is one string rather than a list of them.
        ValueError: an empty name among them.
    """
    wanted, tagged = _names("kinds", kinds), _names("tags", tags)
    if wanted is None and tagged is None:
        return None
    return JobFilter(wanted, tagged, max(poll_interval, DECLINE_DELAY))


class DeclineOthers(ExecutorBase):
    """The executor of every kind a filtering worker has no executor for: it declines the job,
    so that the worker that has one runs it."""

    kind = ANY_KIND

    def __init__(self, retry_after: float) -> None:
        self._retry_after = retry_after

    async def run(self, *, job_id: str, payload: Any, ctx: _BaseContext) -> Any:
        """Decline the job."""
        raise Declined(self._retry_after, "no executor for this kind on this worker")
