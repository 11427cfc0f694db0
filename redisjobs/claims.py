"""Leasing by hand: the calls a worker makes, as client calls, for a face whose workers lease
through their backend (Pyjobkit's ``QueueBackend``: ``claim_batch``, ``extend_lease``,
``succeed``, ``fail``, ``reap_expired``).

Each is one of the worker's own transitions (``start``, ``heartbeat``, ``complete``, ``fail``,
``reclaim`` + ``release``), fenced by the job's lease exactly as for :class:`redisjobs.Worker`:
a call whose lease is not the job's current one changes nothing and says so.
"""

from __future__ import annotations

from typing import Any

from .connection import ensure_group
from .getters import QueueGetters, reaching
from .keys import GROUP, QueueKeys, check_job_id
from .roundtrips import Flow, cmd, run
from .scripts import Delivery, finish_waiting_flow
from .serialization import packb

__all__ = ["REAPER", "Claims", "lease_deadline_flow"]

REAPER = "reaper"
"""The consumer :meth:`Claims.reap` takes expired leases over with, to hand them back."""


class Claims(QueueGetters):
    """The hand-leasing calls of :class:`redisjobs.Client`."""

    @reaching
    async def claim(
        self, worker: str, limit: int = 1, *, queue: str | None = None
    ) -> list[Delivery]:
        """Lease up to `limit` ready jobs (due ones promoted first) to consumer `worker`."""
        keys = self.keys(queue)
        redis, scripts = await self._conn(keys)
        await ensure_group(redis, keys)
        await scripts.promote(keys)
        return list(await scripts.start(keys, worker, read=max(1, limit)))

    @reaching
    async def lease_deadline(
        self, job_id: str, default_ttl: float, *, queue: str | None = None
    ) -> float | None:
        """When the running job's lease runs out (Redis seconds) unless its worker beats again:
        its entry's last heartbeat plus its holder's lease TTL (`default_ttl` for a holder that
        never recorded one). None when the job is not running."""
        check_job_id(job_id)
        redis, _ = await self._conn(self.keys(queue))
        return await run(redis, lease_deadline_flow(self.keys(queue), job_id, default_ttl))

    @reaching
    async def extend_lease(
        self, job_id: str, worker: str, lease: int, ttl: float, *, queue: str | None = None
    ) -> bool:
        """Extend `worker`'s lease `lease` on the job to `ttl` seconds; False when the lease is
        not its any more (or a cancel of the job was asked for: see :meth:`get`)."""
        _, scripts = await self._conn(self.keys(queue))
        stop = await scripts.heartbeat(
            self.keys(queue), worker, round(ttl * 1000), [(job_id, lease)]
        )
        return not stop

    @reaching
    async def complete_run(
        self, job_id: str, worker: str, lease: int, result: Any, *, queue: str | None = None
    ) -> bool:
        """Record the result of the run under `lease`; False when the lease moved on."""
        _, scripts = await self._conn(self.keys(queue))
        [code] = await scripts.complete(self.keys(queue), worker, [(job_id, lease, packb(result))])
        return code != 0

    @reaching
    async def fail_run(
        self,
        job_id: str,
        worker: str,
        lease: int,
        error: str,
        *,
        mode: str = "error",
        defer: float | None = None,
        queue: str | None = None,
    ) -> str:
        """Record a failed run under `lease` (`mode` as the ``fail`` script takes it; `defer`
        the retry's delay in seconds, None for the job's backoff); returns the outcome:
        ``retry``, ``failed``, ``cancelled``, or ``stale`` when the lease moved on."""
        _, scripts = await self._conn(self.keys(queue))
        defer_ms = -1 if defer is None else max(0, round(defer * 1000))
        outcome, _ = await scripts.fail(
            self.keys(queue), worker, job_id, lease, error, mode=mode, defer_ms=defer_ms
        )
        return outcome

    @reaching
    async def finish_waiting(
        self, job_id: str, outcome: str, value: Any, *, queue: str | None = None
    ) -> str:
        """Record by hand the outcome of a job that waits to run, as no worker runs it:
        ``completed`` with result `value`, or failed (`outcome` ``fatal`` or ``timeout``) with
        error text `value`. Returns ``done``, or why nothing changed: ``running`` (a worker
        holds it), ``final`` (it had ended), ``missing``.

        Raises:
            ValueError: `outcome` is none of those three.
        """
        check_job_id(job_id)
        if outcome not in ("completed", "fatal", "timeout"):
            raise ValueError(f"outcome must be completed, fatal or timeout, not {outcome!r}")
        value = packb(value) if outcome == "completed" else str(value)
        redis, scripts = await self._conn(self.keys(queue))
        flow = finish_waiting_flow(self.keys(queue), job_id, outcome, value)
        return await run(redis, flow, scripts)

    @reaching
    async def reap(self, lease_ttl: float, *, queue: str | None = None) -> int:
        """Hand every job whose lease ran out `lease_ttl` seconds ago back to the queue (at
        most 100 a call); returns how many."""
        keys = self.keys(queue)
        redis, scripts = await self._conn(keys)
        await ensure_group(redis, keys)
        taken, _ = await scripts.reclaim(
            keys, REAPER, lease_ttl_ms=round(lease_ttl * 1000), count=100, max_deliveries=5
        )
        if not taken:
            return 0
        return await scripts.release(keys, REAPER, [(d.job_id, d.lease) for d in taken])


def lease_deadline_flow(keys: QueueKeys, job_id: str, default_ttl: float) -> Flow[float | None]:
    """See :meth:`Claims.lease_deadline`: two round trips for a running job, one otherwise."""
    ((status, msg, worker),) = yield [cmd("hmget", keys.job(job_id), "status", "msg", "worker")]
    if status != b"running" or msg is None or worker is None:
        return None
    entry = msg.decode()
    pending, ttl_ms, (seconds, micros) = yield [
        cmd("xpending_range", keys.stream_of(entry), GROUP, entry, entry, 1),
        cmd("hget", keys.leases, worker),
        cmd("time"),
    ]
    if not pending:
        return None  # between a reclaim's take-over and its new lease: no deadline to give
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    ttl = int(ttl_ms) / 1000 if ttl_ms is not None else default_ttl
    return (now_ms - int(pending[0]["time_since_delivered"])) / 1000 + ttl
