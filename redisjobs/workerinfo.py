"""The worker registry as its readers see it: each worker's entry and its state, judged by its
heartbeats on Redis's clock, and the signals an operator leaves there for a worker.

A worker rewrites its entry (``rj:worker:<id>``, see :class:`redisjobs.keys.Registry`) at every
heartbeat, ``lease_ttl / 3`` apart, and marks it stopped when it stops. So an entry tells:

- ``live``: its last heartbeat is younger than :data:`LOST_AFTER` lease TTLs;
- ``quiet``: live, and it no longer takes jobs (an operator's ``quiet``; it finishes those it runs);
- ``lost``: no heartbeat for longer than that, and it did not stop: killed, frozen or cut off
  from Redis (its jobs are up for reclaim by then);
- ``offline``: it stopped.

Entries of lost and stopped workers stay :data:`REGISTRY_HORIZON` seconds after their last
heartbeat, so the dashboard can say what became of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .job import ms_to_datetime
from .keys import Registry
from .roundtrips import Flow, cmd

REGISTRY_HORIZON = 3600.0
"""Seconds after its last heartbeat that a worker's entry stays in the registry."""
LOST_AFTER = 1.0
"""Lease TTLs without a heartbeat after which a worker counts as lost: three missed beats, the
moment its leases expire and other workers may take its jobs."""
SIGNALS = ("quiet", "stop")
"""What an operator can ask of a worker through its entry (``Client.signal_worker``)."""
LISTED_JOBS = 100
"""Running job ids an entry lists at most (``held`` counts them all)."""

WorkerState = Literal["live", "quiet", "lost", "offline"]
ALIVE: tuple[WorkerState, ...] = ("live", "quiet")
"""The states of a worker that heartbeats and holds its jobs."""


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker, as its registry entry says (refreshed by every heartbeat).

    Attributes:
        id: the worker id (also its consumer name in the queue's group).
        host, pid: where it runs.
        queues: the queues it serves.
        concurrency: jobs it runs at once at most.
        held: jobs it runs now.
        hung_threads: threads of stopped jobs that are still running (sync functions).
        started_at, heartbeat_at: when it started and last wrote this entry.
        lease_ttl: its lease TTL in seconds (None for entries of older versions).
        state: ``live``, ``quiet``, ``lost`` or ``offline`` (see the module).
        running: ids of the jobs it ran at its last heartbeat (:data:`LISTED_JOBS` at most).
        processed, failed: runs it ended since it started, and those of them that raised.
        allowed: what it may run: its executors' kinds, and for ``call`` the functions and
            modules it was given.
        stopped_at: when it stopped (None unless offline).
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
    state: WorkerState = "live"
    running: tuple[str, ...] = ()
    processed: int = 0
    failed: int = 0
    allowed: str = ""
    stopped_at: datetime | None = None

    @property
    def alive(self) -> bool:
        """Live or quiet: it heartbeats and holds its jobs."""
        return self.state in ALIVE

    @property
    def taking(self) -> bool:
        """Live and not quiet: it takes new jobs."""
        return self.state == "live"


def state_of(fields: dict[bytes, bytes], now_ms: int) -> WorkerState:
    """The state of an entry's `fields` at Redis's `now_ms`."""
    if _int(fields, b"stopped_at"):
        return "offline"
    ttl = _float(fields, b"lease_ttl")
    beat = _int(fields, b"heartbeat_at")
    if ttl is not None and now_ms - beat > LOST_AFTER * ttl * 1000:
        return "lost"
    return "quiet" if fields.get(b"state") == b"quiet" else "live"


def entry(worker_id: str, fields: dict[bytes, bytes], now_ms: int) -> WorkerInfo:
    """The :class:`WorkerInfo` of a registry entry read at Redis's `now_ms`."""
    text = {k: v.decode("utf-8", "replace") for k, v in fields.items()}
    return WorkerInfo(
        id=worker_id,
        host=text.get(b"host", "?"),
        pid=_int(fields, b"pid"),
        queues=_listed(text.get(b"queues", "")),
        concurrency=_int(fields, b"concurrency"),
        held=_int(fields, b"held"),
        hung_threads=_int(fields, b"hung_threads"),
        started_at=ms_to_datetime(_int(fields, b"started_at") or None),
        heartbeat_at=ms_to_datetime(_int(fields, b"heartbeat_at") or None),
        lease_ttl=_float(fields, b"lease_ttl"),
        state=state_of(fields, now_ms),
        running=_listed(text.get(b"running", "")),
        processed=_int(fields, b"processed"),
        failed=_int(fields, b"failed"),
        allowed=text.get(b"allowed", ""),
        stopped_at=ms_to_datetime(_int(fields, b"stopped_at") or None),
    )


def list_workers_flow(registry: Registry, gone: bool = False) -> Flow[list[WorkerInfo]]:
    """The workers of the registry, oldest first: live and quiet ones, and with `gone` also the
    lost and stopped ones whose entries are still kept."""
    now, ids = yield [cmd("time"), cmd("zrange", registry.workers, 0, -1)]
    now_ms = int(now[0]) * 1000 + int(now[1]) // 1000
    entries = yield [cmd("hgetall", registry.worker(w.decode())) for w in ids]
    out = []
    for worker_id, fields in zip(ids, entries, strict=True):
        if fields:  # else its entry expired, long after the worker died or stopped
            info = entry(worker_id.decode(), fields, now_ms)
            if gone or info.alive:
                out.append(info)
    return out


def _listed(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.split(",") if part)


def _int(fields: dict[bytes, bytes], name: bytes) -> int:
    try:
        return int(fields.get(name, 0))
    except ValueError:  # an entry written by something else (or by another version)
        return 0


def _float(fields: dict[bytes, bytes], name: bytes) -> float | None:
    try:
        return float(fields[name])
    except (KeyError, ValueError):
        return None
