"""Jobs of a queue a page at a time, by status: the lists of the CLI, dashboard and faces."""

from __future__ import annotations

from dataclasses import dataclass

from .job import Job, JobStatus
from .keys import QueueKeys
from .pending import count_read, counted, pending_ids_flow
from .roundtrips import Flow, cmd, driven


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of :meth:`Client.list_jobs`; pass `cursor` back for the next (None = done)."""

    jobs: list[Job]
    cursor: int | None


def list_jobs_flow(
    keys: QueueKeys,
    status: JobStatus | str | None,
    limit: int,
    cursor: int,
    oldest: bool = False,
) -> Flow[JobPage]:
    """Jobs of one status (or of every status, in status order), newest first (`oldest`: by the
    time each entered its status, oldest first)."""
    statuses = [JobStatus(status)] if status is not None else list(JobStatus)
    # pending jobs have no index to count (see pending.py): their count is read instead
    replies = yield [
        count_read(keys) if s is JobStatus.PENDING else cmd("zcard", keys.status(s))
        for s in statuses
    ]
    sizes = [
        counted(r) if s is JobStatus.PENDING else r for s, r in zip(statuses, replies, strict=True)
    ]
    ids: list[bytes] = []
    offset = cursor
    for s, size in zip(statuses, sizes, strict=True):
        if offset >= size:
            offset -= size
            continue
        want = limit - len(ids)
        if s is JobStatus.PENDING:
            page = yield from pending_ids_flow(keys, offset, want, oldest)
        else:
            ranged = "zrange" if oldest else "zrevrange"
            (page,) = yield [cmd(ranged, keys.status(s), offset, offset + want - 1)]
        ids += page
        offset = 0
        if len(ids) >= limit:
            break
    hashes = yield [cmd("hgetall", keys.job(jid.decode())) for jid in ids]
    jobs = [
        Job.from_hash(keys.queue, jid.decode(), h) for jid, h in zip(ids, hashes, strict=True) if h
    ]
    nxt = cursor + len(ids)
    return JobPage(jobs, nxt if nxt < sum(sizes) else None)


list_jobs = driven(list_jobs_flow)
