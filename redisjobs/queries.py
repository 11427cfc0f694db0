"""Read-only views of a queue: pages of jobs by status, counters and depth.

Nothing here changes state; listings read the status indexes that the scripts maintain.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from .job import Job, JobStatus, ms_to_datetime
from .keys import QUEUES_KEY, WORKERS_KEY, QueueKeys, worker_key

COUNTERS = ("enqueued", "started", "completed", "failed", "retried", "reclaimed", "cancelled")
WAITING = ("pending", "scheduled", "running")


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of :meth:`Client.list_jobs`; pass `cursor` back for the next (None = done)."""

    jobs: list[Job]
    cursor: int | None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One live worker, as its registry entry says (refreshed by every heartbeat).

    Attributes:
        id: the worker id (also its consumer name in the queue's group).
        host, pid: where it runs.
        queues: the queues it serves.
        concurrency: jobs it runs at once at most.
        held: jobs it runs now.
        hung_threads: threads of stopped jobs that are still running (sync functions).
        started_at, heartbeat_at: when it started and last wrote this entry.
        lease_ttl: its lease TTL in seconds (None for entries of older versions).
    """

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    held: int
    hung_threads: int
    started_at: datetime | None
    heartbeat_at: datetime | None
    lease_ttl: float | None = None


def _int(fields: dict[bytes, bytes], name: bytes) -> int:
    try:
        return int(fields.get(name, 0))
    except ValueError:  # an entry written by something else (or by another version)
        return 0


async def list_queues(redis: Redis) -> list[str]:
    """The queues anything was ever enqueued to (the queue registry), sorted."""
    names: Any = await redis.smembers(QUEUES_KEY)
    return sorted(name.decode() for name in names)


async def list_workers(redis: Redis) -> list[WorkerInfo]:
    """The live workers: those whose registry entry has not expired, oldest first."""
    ids: Any = await redis.zrange(WORKERS_KEY, 0, -1)
    async with redis.pipeline(transaction=False) as pipe:
        for worker_id in ids:
            pipe.hgetall(worker_key(worker_id.decode()))
        entries: list[dict[bytes, bytes]] = await pipe.execute()
    out = []
    for worker_id, f in zip(ids, entries, strict=True):
        if not f:
            continue  # its entry expired: a worker that died without deregistering
        text = {k: v.decode("utf-8", "replace") for k, v in f.items()}
        out.append(
            WorkerInfo(
                id=worker_id.decode(),
                host=text.get(b"host", "?"),
                pid=_int(f, b"pid"),
                queues=tuple(q for q in text.get(b"queues", "").split(",") if q),
                concurrency=_int(f, b"concurrency"),
                held=_int(f, b"held"),
                hung_threads=_int(f, b"hung_threads"),
                started_at=ms_to_datetime(_int(f, b"started_at") or None),
                heartbeat_at=ms_to_datetime(_int(f, b"heartbeat_at") or None),
                lease_ttl=_float(f, b"lease_ttl"),
            )
        )
    return out


def _float(f: dict[bytes, bytes], name: bytes) -> float | None:
    try:
        return float(f[name])
    except (KeyError, ValueError):
        return None


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
