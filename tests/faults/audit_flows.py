"""The flow part of the invariant audit (docs/architecture.md, "Flows"); :func:`audit` of
``audit.py`` runs it on the same read of the queue.

* a ``waiting`` job is in no stream entry (pending or acknowledged); that it is in no ``prio``,
  ``delayed`` or ``kq:<key>`` and in no status index but ``waiting`` the general checks say
  (``prio`` and every ``kq:<key>`` hold pending jobs only, ``delayed`` scheduled ones only,
  each job sits in the index of its status alone);
* its field ``deps`` is the number of its open edges (values of ``job:<id>:deps`` without
  ``=``);
* every open edge to a parent of the same queue has the job in that parent's dependents set,
  and the parent's ``dependents`` flag set;
* no lost release: a waiting job has an open edge, and an open edge's parent has neither
  ended nor gone, unless the hand-over of that end still waits in the parent's queue's
  ``handover`` stream (a parent of another queue);
* a job was released at most once per waiting period: in the log stream, never two ``ready``
  events of a job without a ``waiting`` in between.

A waiting job of a producer that died between its enqueue and its ``link`` to a parent of
another queue that had ended reads here as a lost release, until the re-sent enqueue links it.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any, Protocol

from redis.asyncio import Redis

from redisjobs import Event, deps
from redisjobs.job import FINAL_STATUSES
from redisjobs.keys import QueueKeys


class QueueState(Protocol):
    """What the flow checks read of the audit's one read of the queue."""

    keys: QueueKeys
    jobs: dict[str, dict[str, str]]


def _s(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


async def _stream_jobs(redis: Redis, keys: QueueKeys) -> set[str]:
    """The job ids of every entry of the queue's streams, pending or acknowledged."""
    out: set[str] = set()
    for stream in keys.streams:
        rows: Any = await redis.xrange(stream, "-", "+")
        out |= {_s(fields.get(b"id", b"")) for _, fields in rows}
    return out


async def _handed(redis: Redis, queue: str) -> set[tuple[str, str, str]]:
    """(dependent's queue, dependent, parent ref) of each hand-over not delivered yet."""
    rows: Any = await redis.xrange(QueueKeys(queue).handover, "-", "+")
    return {(_s(f.get(b"q", b"")), _s(f.get(b"c", b"")), _s(f.get(b"p", b""))) for _, f in rows}


class _Parents:
    """The parents' side of the edges: their status, and the hand-overs of other queues."""

    def __init__(self, redis: Redis, state: QueueState) -> None:
        self.redis, self.state = redis, state
        self._handed: dict[str, set[tuple[str, str, str]]] = {}

    async def status(self, queue: str, job_id: str) -> str | None:
        if queue == self.state.keys.queue:
            return self.state.jobs.get(job_id, {}).get("status")
        value: Any = await self.redis.hget(QueueKeys(queue).job(job_id), "status")
        return None if value is None else _s(value)

    async def handed(self, queue: str, child: str, ref: str) -> bool:
        if queue not in self._handed:
            self._handed[queue] = await _handed(self.redis, queue)
        return (self.state.keys.queue, child, ref) in self._handed[queue]


async def _check_edges(
    redis: Redis, state: QueueState, parents: _Parents, job_id: str, job: dict[str, str]
) -> list[str]:
    """The edges of one waiting job against its `deps` count and its parents."""
    keys, queue = state.keys, state.keys.queue
    raw: Any = await redis.hgetall(keys.job_deps(job_id))
    edges = {_s(k): _s(v) for k, v in raw.items()}
    open_refs = [ref for ref, value in edges.items() if "=" not in value]
    problems = []
    if job.get("deps") != str(len(open_refs)):
        problems.append(f"waiting job {job_id}: deps {job.get('deps')}, open edges {open_refs}")
    if not open_refs:  # the script that closed its last edge did not release it
        problems.append(f"waiting job {job_id} has no open edge: its release was lost")
    for ref in open_refs:
        pqueue, pid = deps.split(ref, queue)
        status = await parents.status(pqueue, pid)
        if pqueue == queue:
            problems += await _check_parent(redis, state, job_id, pid)
        # nothing closes an edge whose parent's end was told (or whose parent went) already
        if (status is None or status in FINAL_STATUSES) and not (
            pqueue != queue and await parents.handed(pqueue, job_id, f"{pqueue}/{pid}")
        ):
            status = status or "gone"
            problems.append(f"waiting job {job_id}: edge to {ref} ({status}) open, not handed")
    return problems


async def _check_parent(redis: Redis, state: QueueState, job_id: str, parent: str) -> list[str]:
    """An open edge to `parent` (same queue): it lists the job among its dependents."""
    if not await redis.sismember(state.keys.job_dependents(parent), job_id):
        return [f"waiting job {job_id} is not among the dependents of its parent {parent}"]
    if state.jobs.get(parent, {}).get("dependents") != "1":
        return [f"parent {parent} of waiting job {job_id} lacks its dependents flag"]
    return []


def released_twice(events: Iterable[Event]) -> list[str]:
    """Jobs with two ``ready`` events (releases) without a ``waiting`` in between."""
    open_period: dict[str, bool] = collections.defaultdict(lambda: True)
    twice = []
    for event in events:
        if event.type == "waiting":
            open_period[event.job_id] = True
        elif event.type == "ready":
            if not open_period[event.job_id]:
                twice.append(f"job {event.job_id} released twice in one waiting period")
            open_period[event.job_id] = False
    return twice


async def check_flows(redis: Redis, state: QueueState) -> list[str]:
    """The violations of the flow invariants in `state` (one read of the queue)."""
    waiting = {j: job for j, job in state.jobs.items() if job.get("status") == "waiting"}
    problems = []
    if waiting:
        in_streams = await _stream_jobs(redis, state.keys)
        parents = _Parents(redis, state)
        for job_id, job in waiting.items():
            if job_id in in_streams:
                problems.append(f"waiting job {job_id} has a stream entry")
            problems += await _check_edges(redis, state, parents, job_id, job)
    rows: Any = await redis.xrange(state.keys.log, "-", "+")
    queue = state.keys.queue
    problems += released_twice(Event.decode(f[b"e"], _s(eid), queue) for eid, f in rows)
    return problems
