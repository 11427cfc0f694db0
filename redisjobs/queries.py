"""Read-only views of a queue: pages of jobs by status, counters and depth.

Nothing here changes state; listings read the status indexes that the scripts maintain.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from redis.asyncio import Redis

from .job import Job, JobStatus
from .keys import QueueKeys

COUNTERS = ("enqueued", "started", "completed", "failed", "retried", "reclaimed", "cancelled")
WAITING = ("pending", "scheduled", "running")


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of :meth:`Client.list_jobs`; pass `cursor` back for the next (None = done)."""

    jobs: list[Job]
    cursor: int | None


async def list_jobs(
    redis: Redis, keys: QueueKeys, status: JobStatus | str | None, limit: int, cursor: int
) -> JobPage:
    """Jobs of one status (or of every status, in status order), newest first."""
    statuses = [JobStatus(status)] if status is not None else list(JobStatus)
    sizes = await asyncio.gather(*(redis.zcard(keys.status(s)) for s in statuses))
    ids: list[bytes] = []
    offset = cursor
    for s, size in zip(statuses, sizes, strict=True):
        if offset >= size:
            offset -= size
            continue
        want = limit - len(ids)
        ids += await redis.zrevrange(keys.status(s), offset, offset + want - 1)  # type: ignore[arg-type]
        offset = 0
        if len(ids) >= limit:
            break
    async with redis.pipeline(transaction=False) as pipe:
        for jid in ids:
            pipe.hgetall(keys.job(jid.decode()))
        hashes = await pipe.execute()
    jobs = [
        Job.from_hash(keys.queue, jid.decode(), h) for jid, h in zip(ids, hashes, strict=True) if h
    ]
    nxt = cursor + len(ids)
    return JobPage(jobs, nxt if nxt < sum(sizes) else None)


async def stats(redis: Redis, keys: QueueKeys) -> dict[str, int]:
    """The running counters of a queue and its jobs waiting now (see Client.stats)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.stats)
        for s in WAITING:
            pipe.zcard(keys.status(s))
        pipe.zcard(keys.dead)
        raw, *counts = await pipe.execute()
    out = dict.fromkeys(COUNTERS, 0)
    out.update({k.decode(): int(v) for k, v in raw.items() if k.decode() in out})
    out.update(zip((*WAITING, "dead"), map(int, counts), strict=True))
    return out
