"""The invariant audit of one queue's keyspace (docs/architecture.md, "Invariants").

Run it when the queue is quiet (no script between two of its reads), e.g. after every step of a
model test or at the end of a fault scenario. It returns a list of readable violations; empty
means the keyspace is consistent:

* every PEL entry (of ``ready`` or ``carry``) belongs to a ``running`` job whose ``msg`` is that
  entry;
* every ``running`` job has exactly one PEL entry (its ``msg``);
* every ``scheduled`` job is in ``delayed`` once, and ``delayed`` holds nothing else;
* every ``pending`` job has exactly one of: a ``msg`` that is an entry of ``ready`` not pending
  (not delivered), or membership in ``prio``; ``prio`` holds nothing else;
* a terminal job is out of the PEL and of ``delayed`` and has a TTL;
* every job sits in exactly one status index, the one of its status, but a pending job with a
  ``msg`` (its ``ready`` entry), which sits in none; and the stats hash counts the pending jobs
  (``enqueued - started + pending_adj``);
* every key of the queue carries its ``{queue}`` hash tag;
* every unique lock has a TTL, and names a job that is gone (the lock expires) or one that
  still holds it: that carries its key, has not ended, and has not started if its mode lets
  the lock go at a start (``until_start``, ``while_queued``); every idempotency marker has a
  TTL;
* every member of ``schedule:due`` has a spec in ``schedules`` and a state hash;
* limit keys: a pending job with a ``limit_key`` is a member of its key's ``kq:<key>`` once (and
  has no stream entry, nor a place in ``prio``); every member of a ``kq:<key>`` is a pending job
  of that key; every member of ``active:<key>`` is a running job of that key, and every running
  job of a key is in it; a key with backlog is in the schedule ``keys`` or at its max_running;
* flows (``audit_flows.py``): a waiting job is in no stream, its ``deps`` counts its open edges,
  each open edge is known to its parent, no release is lost, none happens twice.

Our design keeps acknowledged entries in the stream until ``reclaim`` trims below the oldest
pending one, so "out of the stream" reads "acknowledged" here.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from redisjobs.job import FINAL_STATUSES, JobStatus
from redisjobs.keys import GROUP, REGISTRY, QueueKeys
from redisjobs.pending import COUNT_FIELDS
from tests.faults.audit_flows import check_flows


def _s(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


async def _pel(redis: Redis, keys: QueueKeys) -> dict[str, str]:
    """Pending entry id (of either stream) -> the job id it carries ("" when it is gone)."""
    out: dict[str, str] = {}
    for stream in keys.streams:
        try:
            pending: Any = await redis.xpending_range(stream, GROUP, "-", "+", 1_000_000)
        except Exception as exc:  # no stream or no group yet: nothing is pending
            if "NOGROUP" in str(exc) or "no such key" in str(exc).lower():
                continue
            raise
        for entry in pending:
            msg = _s(entry["message_id"])
            assert keys.stream_of(msg) == stream, f"entry {msg} of {stream}"
            rows: Any = await redis.xrange(stream, msg, msg)
            out[msg] = _s(rows[0][1].get(b"id", b"")) if rows else ""
    return out


async def _jobs(redis: Redis, keys: QueueKeys) -> dict[str, dict[str, str]]:
    """Every job hash of the queue: id -> fields."""
    jobs: dict[str, dict[str, str]] = {}
    prefix = keys.job("")
    async for raw in redis.scan_iter(match=keys.job("*"), count=1000):
        key = _s(raw)
        rest = key[len(prefix) :]
        if ":" in rest:  # job:<id>:log
            continue
        h: Any = await redis.hgetall(key)
        if h:
            jobs[rest] = {_s(k): _s(v) for k, v in h.items() if k not in (b"payload", b"result")}
    return jobs


class _State:
    """One read of the queue's keyspace."""

    def __init__(self, keys: QueueKeys) -> None:
        self.keys = keys
        self.pel: dict[str, str] = {}
        self.jobs: dict[str, dict[str, str]] = {}
        self.delayed: list[str] = []
        self.prio: list[str] = []
        self.indexes: dict[str, set[str]] = {}

    async def read(self, redis: Redis) -> _State:
        self.pel = await _pel(redis, self.keys)
        self.jobs = await _jobs(redis, self.keys)
        members: Any = await redis.zrange(self.keys.delayed, 0, -1)
        self.delayed = [_s(m) for m in members]
        members = await redis.zrange(self.keys.prio, 0, -1)
        self.prio = [_s(m) for m in members]
        for status in JobStatus:
            members = await redis.zrange(self.keys.status(status), 0, -1)
            self.indexes[status.value] = {_s(m) for m in members}
        return self


def _check_pel(state: _State) -> list[str]:
    problems = []
    for msg, job_id in state.pel.items():
        job = state.jobs.get(job_id)
        if job is None:
            problems.append(f"PEL entry {msg} carries {job_id!r}, which has no hash")
        elif job.get("status") != "running" or job.get("msg") != msg:
            problems.append(
                f"PEL entry {msg} of job {job_id}: status {job.get('status')}, msg {job.get('msg')}"
            )
    if len(state.delayed) != len(set(state.delayed)):
        problems.append("a job is in delayed twice")
    problems += [
        f"delayed holds {j}, which has no hash" for j in set(state.delayed) - set(state.jobs)
    ]
    problems += [
        f"prio holds {j}, which is not a pending job"
        for j in state.prio
        if state.jobs.get(j, {}).get("status") != "pending"
    ]
    return problems


async def _check_job(redis: Redis, state: _State, job_id: str, job: dict[str, str]) -> list[str]:
    problems = []
    status = job.get("status", "")
    where = [s for s, members in state.indexes.items() if job_id in members]
    if where != ([] if status == "pending" and job.get("msg") else [status]):
        problems.append(f"job {job_id} ({status}) is in status indexes {where}")
    in_pel = [msg for msg, jid in state.pel.items() if jid == job_id]
    if status == "running" and in_pel != [job.get("msg")]:
        problems.append(f"running job {job_id} has PEL entries {in_pel}, msg {job.get('msg')}")
    if status != "running" and in_pel:
        problems.append(f"{status} job {job_id} still has PEL entries {in_pel}")
    if (status == "scheduled") != (job_id in state.delayed):
        problems.append(f"{status} job {job_id} in delayed: {job_id in state.delayed}")
    if status == "pending" and "limit_key" not in job:
        problems += await _check_pending(redis, state, job_id, job.get("msg", ""))
    if status in FINAL_STATUSES and await redis.pttl(state.keys.job(job_id)) < 0:
        problems.append(f"{status} job {job_id} has no TTL")
    return problems


async def _check_pending(redis: Redis, state: _State, job_id: str, msg: str) -> list[str]:
    """A pending job has an undelivered `ready` entry or a place in `prio`, not both."""
    rows: Any = await redis.xrange(state.keys.ready, msg, msg) if msg else []
    listed = state.prio.count(job_id)
    if listed > 1 or (listed == 1) == bool(rows):
        return [f"pending job {job_id}: stream entry {msg!r} {bool(rows)}, in prio {listed}x"]
    return []


async def _check_pending_count(redis: Redis, state: _State) -> list[str]:
    """The stats hash counts the pending jobs."""
    raw: Any = await redis.hmget(state.keys.stats, *COUNT_FIELDS)
    enqueued, started, adj = (int(v or 0) for v in raw)
    counted = enqueued - started + adj  # unclamped: a count gone negative is a violation too
    there = sum(1 for job in state.jobs.values() if job.get("status") == "pending")
    return [] if counted == there else [f"{there} jobs pending, counted {counted}"]


_HELD_WHILE = {
    "until_done": {"pending", "scheduled", "running"},
    "until_start": {"pending", "scheduled"},
    "while_queued": {"pending", "scheduled"},
}
"""The statuses in which a job of each unique mode may hold its lock."""


async def _check_locks(redis: Redis, state: _State) -> list[str]:
    problems = []
    prefix = state.keys.unique("")
    async for raw in redis.scan_iter(match=state.keys.unique_pattern, count=1000):
        key = _s(raw)
        holder = _s(await redis.get(key) or b"")
        if await redis.pttl(key) < 0:
            problems.append(f"unique lock {key} has no TTL")
        job = state.jobs.get(holder)
        if job is None:
            continue  # its job is gone: the lock expires
        mode, status = job.get("unique", ""), job.get("status", "")
        if job.get("unique_key") != key[len(prefix) :] or status not in _HELD_WHILE.get(mode, ()):
            problems.append(f"unique lock {key} names job {holder} ({mode}, {status}), not its own")
    async for raw in redis.scan_iter(match=state.keys.idem("*"), count=1000):
        if await redis.pttl(raw) < 0:
            problems.append(f"idempotency marker {_s(raw)} has no TTL")
    return problems


async def _check_schedules(redis: Redis, keys: QueueKeys) -> list[str]:
    problems = []
    due: Any = await redis.zrange(keys.schedule_due, 0, -1)
    for raw in due:
        sid = _s(raw)
        if not await redis.hexists(keys.schedules, sid):
            problems.append(f"schedule {sid} is due but has no spec")
        if not await redis.exists(keys.schedule_state(sid)):
            problems.append(f"schedule {sid} is due but has no state")
    return problems


async def _key_sets(redis: Redis, keys: QueueKeys, kind: str) -> dict[str, list[str]]:
    """The members of every ``kq:<key>`` (kind ``kq``) or ``active:<key>`` set, by key."""
    out: dict[str, list[str]] = {}
    prefix = f"{keys.prefix}{kind}:"
    async for raw in redis.scan_iter(match=prefix + "*", count=1000):
        key = _s(raw)
        members: Any = await (redis.zrange(key, 0, -1) if kind == "kq" else redis.smembers(key))
        out[key[len(prefix) :]] = [_s(m) for m in members]
    return out


async def _check_keys(redis: Redis, state: _State) -> list[str]:
    keys = state.keys
    backlog, active = await _key_sets(redis, keys, "kq"), await _key_sets(redis, keys, "active")
    scheduled: Any = await redis.zrange(keys.limit_keys, 0, -1)
    on_schedule = {_s(m) for m in scheduled}
    problems = []
    for job_id, job in state.jobs.items():
        key, status = job.get("limit_key"), job.get("status")
        if key is None:
            continue
        if status == "pending" and (backlog.get(key, []).count(job_id) != 1 or "msg" in job):
            problems.append(f"pending job {job_id} of key {key} is not in its backlog once")
        if status == "running" and job_id not in active.get(key, []):
            problems.append(f"running job {job_id} of key {key} is not in its active set")
    problems += _strangers(state, backlog, "kq", "pending")
    problems += _strangers(state, active, "active", "running")
    for key, members in backlog.items():
        if members and key not in on_schedule and not active.get(key):
            problems.append(f"key {key} has backlog but is neither scheduled nor running")
    return problems


def _strangers(state: _State, sets: dict[str, list[str]], kind: str, status: str) -> list[str]:
    """Members of the per-key sets `sets` that are not jobs of that key in `status`."""
    return [
        f"{kind}:{key} holds {j}, not a {status} job of that key"
        for key, members in sets.items()
        for j in members
        if state.jobs.get(j, {}).get("status") != status or state.jobs[j].get("limit_key") != key
    ]


async def audit(redis: Redis, queue: str) -> list[str]:
    """The violations of the queue's invariants (empty when it is consistent)."""
    state = await _State(QueueKeys(queue)).read(redis)
    problems = _check_pel(state)
    for job_id, job in state.jobs.items():
        problems += await _check_job(redis, state, job_id, job)
    problems += await _check_locks(redis, state)
    problems += await _check_schedules(redis, state.keys)
    problems += await _check_keys(redis, state)
    problems += await check_flows(redis, state)
    problems += await _check_pending_count(redis, state)
    async for raw in redis.scan_iter(match=f"*{queue}*", count=1000):
        key = _s(raw)
        if not key.startswith(state.keys.prefix) and key != REGISTRY.queues:
            problems.append(f"key {key} lacks the {{{queue}}} tag")
    return problems
