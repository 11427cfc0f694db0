"""What a queue's page lists: its jobs of one status, or of every status by when each last
changed, filtered by name, kind, error text and time, newest or oldest first.

A status is listed from its index, in the order jobs entered it. Filters look at
:data:`SCAN` jobs at most per page (a page may come back short; its cursor goes on from where it
stopped). "All" merges the :data:`ALL_WINDOW` newest (or oldest) jobs of each status by their
last change (enqueued, started or ended), so a failure that just happened leads whatever its
status; older jobs are under their status's tab.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from ..client import Client
from ..job import Job, JobStatus

SCAN = 2_000
"""Jobs a filtered page looks at, at most."""
ALL_WINDOW = 100
"""Jobs of each status the "All" tab merges."""
SINCE = {"5m": 300, "1h": 3600, "24h": 86400, "7d": 604800}
"""The time filter's choices: changed within the last …"""
MAX_TEXT = 200
STATUSES = frozenset(s.value for s in JobStatus)


@dataclass(frozen=True, slots=True)
class Filters:
    """What a queue's page shows (its query string)."""

    status: str | None = None
    kind: str | None = None
    name: str | None = None
    error: str | None = None
    since: str | None = None
    oldest: bool = False

    @classmethod
    def of(cls, query: Any) -> Filters:
        """The filters of a request's query (anything unknown is left out)."""

        def text(key: str) -> str | None:
            value = str(query.get(key, "")).strip()[:MAX_TEXT]
            return value or None

        status, since = text("status"), text("since")
        return cls(
            status=status if status in STATUSES else None,
            kind=text("kind"),
            name=text("name"),
            error=text("error"),
            since=since if since in SINCE else None,
            oldest=query.get("sort") == "oldest",
        )

    @property
    def narrowing(self) -> bool:
        """Whether it leaves jobs of the status out."""
        return any((self.kind, self.name, self.error, self.since))

    def matches(self, job: Job, now: datetime) -> bool:
        """Whether `job` passes every filter (`now`: Redis's clock)."""
        if self.kind and job.kind != self.kind:
            return False
        if self.name and self.name.lower() not in job.name.lower():
            return False
        if self.error and self.error.lower() not in (job.error or "").lower():
            return False
        return not self.since or last_change(job) >= now - timedelta(seconds=SINCE[self.since])

    def query(self, **changes: Any) -> str:
        """The query string of these filters with `changes` (for links that keep them)."""
        f = replace(self, **changes)
        pairs = {
            "status": f.status,
            "kind": f.kind,
            "name": f.name,
            "error": f.error,
            "since": f.since,
            "sort": "oldest" if f.oldest else None,
        }
        return urlencode({k: v for k, v in pairs.items() if v})


def last_change(job: Job) -> datetime:
    """When the job last changed status: it ended, started, or was enqueued."""
    times = [t for t in (job.completed_at, job.started_at, job.created_at) if t is not None]
    return max(times, default=datetime.fromtimestamp(0, UTC))


async def page(
    client: Client, queue: str, f: Filters, cursor: int, limit: int
) -> tuple[list[Job], int | None]:
    """One page of the queue's jobs as `f` says, and the cursor of the next (None: no more)."""
    now = datetime.fromtimestamp(await client.server_time(), UTC)
    if f.status is None:
        return await _all(client, queue, f, now, cursor, limit)
    if not f.narrowing:
        found = await client.list_jobs(
            f.status, queue=queue, limit=limit, cursor=cursor, oldest=f.oldest
        )
        return found.jobs, found.cursor
    jobs: list[Job] = []
    nxt: int | None = cursor
    scanned = 0
    while nxt is not None and len(jobs) < limit and scanned < SCAN:
        # Asking for exactly the jobs still wanted keeps the cursor exact: a bigger page
        # would read past the last job this page shows.
        want = limit - len(jobs)
        got = await client.list_jobs(f.status, queue=queue, limit=want, cursor=nxt, oldest=f.oldest)
        jobs += [j for j in got.jobs if f.matches(j, now)]
        scanned += want
        nxt = got.cursor
    return jobs, nxt


async def _all(
    client: Client, queue: str, f: Filters, now: datetime, cursor: int, limit: int
) -> tuple[list[Job], int | None]:
    jobs: list[Job] = []
    for status in JobStatus:
        got = await client.list_jobs(status, queue=queue, limit=ALL_WINDOW, oldest=f.oldest)
        jobs += [j for j in got.jobs if f.matches(j, now)]
    jobs.sort(key=last_change, reverse=not f.oldest)
    end = cursor + limit
    return jobs[cursor:end], end if end < len(jobs) else None


async def names(client: Client, queue: str, sample: int = 200) -> tuple[list[str], list[str]]:
    """The names and the kinds among the queue's newest jobs, for the filters' suggestions."""
    got = await client.list_jobs(None, queue=queue, limit=sample)
    return sorted({j.name for j in got.jobs}), sorted({j.kind for j in got.jobs if j.kind})
