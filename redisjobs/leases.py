"""Keeping and taking leases: heartbeats, self-fencing, reclaim, and worker presence.

A worker holds a job while the job's stream entry sits in its PEL with an idle time under
`lease_ttl` (DESIGN.md, "Leases"). The heartbeat resets that idle time for every held job whose
fencing token is still this worker's, and learns which jobs to stop (lease lost, cancel
requested). When it cannot reach Redis for `lease_ttl`, the worker must assume that others have
taken its jobs over, so it stops them itself (self-fencing). The reclaim loop is the other side:
it takes over entries idle past `lease_ttl` from dead workers, and sweeps orphans.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .connection import Backoff
from .keys import WORKERS_KEY, QueueKeys, worker_key
from .scripts import Delivery, Scripts

log = logging.getLogger("redisjobs.leases")

REGISTRY_HORIZON = 3600.0
"""Seconds after its last heartbeat that a worker leaves the ``rj:workers`` registry index."""


class LeaseHolder(Protocol):
    """The worker, as the lease loops see it."""

    def held_leases(self) -> list[tuple[str, int]]:
        """(job id, lease) of every job the worker holds."""

    def stop_job(self, job_id: str, reason: str) -> None:
        """Stop a running job: reason 'lost' (record nothing) or 'cancel' (record cancelled)."""

    def free_slots(self) -> int:
        """How many more jobs the worker can start now."""

    def launch(self, delivery: Delivery) -> None:
        """Start running a job leased to this worker."""


class Leases:
    """The heartbeat and reclaim loops of one worker on one queue.

    Args:
        holder: the worker.
        worker_id: its consumer name.
        redis: the command connection (for the registry entry).
        scripts: the scripts.
        keys: the queue.
        lease_ttl: seconds an entry may stay idle before others may take it.
        max_deliveries: crash deliveries after which a job fails for good.
        reclaim_interval: seconds between reclaim ticks.
        concurrency: shown in the registry.
    """

    def __init__(
        self,
        holder: LeaseHolder,
        *,
        worker_id: str,
        redis: Redis,
        scripts: Scripts,
        keys: QueueKeys,
        lease_ttl: float,
        max_deliveries: int,
        reclaim_interval: float,
        concurrency: int,
    ) -> None:
        self._holder = holder
        self.worker_id = worker_id
        self._redis = redis
        self._scripts = scripts
        self._keys = keys
        self.lease_ttl = lease_ttl
        self.max_deliveries = max_deliveries
        self.reclaim_interval = reclaim_interval
        self._concurrency = concurrency
        self._started = time.time()
        self.reclaiming = True

    async def heartbeat_loop(self) -> None:
        """Extend leases every ``lease_ttl / 3``; self-fence after ``lease_ttl`` without Redis."""
        interval = self.lease_ttl / 3
        last_ok = time.monotonic()
        fenced = False
        backoff = Backoff(f"heartbeat {self.worker_id}", log)
        while True:
            held = self._holder.held_leases()
            try:
                # A deadline per beat: a Redis that stopped answering must not hold the loop
                # past the point where it has to fence itself.
                async with asyncio.timeout(interval):
                    actions = await self._beat(held)
            except (RedisError, OSError, TimeoutError) as exc:
                backoff.record(exc)
                if not fenced and time.monotonic() - last_ok > self.lease_ttl and held:
                    log.warning(
                        "no heartbeat for %.1f s: treating %d leases as lost",
                        time.monotonic() - last_ok,
                        len(held),
                    )
                    for job_id, _ in held:
                        self._holder.stop_job(job_id, "lost")
                    fenced = True
                await asyncio.sleep(min(interval, 1.0) * random.uniform(0.5, 1.0))
                continue
            backoff.ok()
            last_ok = time.monotonic()
            fenced = False
            for job_id, action in actions:
                self._holder.stop_job(job_id, action)
            await asyncio.sleep(interval * random.uniform(0.8, 1.0))

    async def _beat(self, held: list[tuple[str, int]]) -> list[tuple[str, str]]:
        actions = await self._scripts.heartbeat(self._keys, self.worker_id, held) if held else []
        await self.register(len(held))
        return actions

    async def register(self, held: int) -> None:
        """Write this worker's registry entry (expires unless refreshed by heartbeats)."""
        key = worker_key(self.worker_id)
        now = time.time()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(
                key,
                mapping={
                    "id": self.worker_id,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "queues": self._keys.queue,
                    "concurrency": self._concurrency,
                    "held": held,
                    "started_at": int(self._started * 1000),
                    "heartbeat_at": int(now * 1000),
                },
            )
            pipe.pexpire(key, int(self.lease_ttl * 3000))
            pipe.zadd(WORKERS_KEY, {self.worker_id: int(now * 1000)})
            # Entries of workers gone for REGISTRY_HORIZON (their hash expired long ago).
            pipe.zremrangebyscore(WORKERS_KEY, "-inf", int((now - REGISTRY_HORIZON) * 1000))
            await pipe.execute()

    async def deregister(self) -> None:
        """Remove this worker's registry entry."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(worker_key(self.worker_id))
            pipe.zrem(WORKERS_KEY, self.worker_id)
            await pipe.execute()

    async def reclaim_loop(self) -> None:
        """Take over jobs of dead workers every `reclaim_interval` (jittered)."""
        backoff = Backoff(f"reclaim {self.worker_id}", log)
        while True:
            await asyncio.sleep(self.reclaim_interval * random.uniform(0.8, 1.0))
            try:
                await self.reclaim_once()
            except (RedisError, OSError) as exc:
                await backoff.failed(exc)
                continue
            backoff.ok()

    async def reclaim_once(self) -> int:
        """One reclaim tick; returns how many jobs this worker took over."""
        count = self._holder.free_slots() if self.reclaiming else 0
        taken = await self._scripts.reclaim(
            self._keys,
            self.worker_id,
            lease_ttl_ms=int(self.lease_ttl * 1000),
            count=count,
            max_deliveries=self.max_deliveries,
        )
        for delivery in taken:
            log.info("took over job %s (attempt %d)", delivery.job_id, delivery.attempt)
            self._holder.launch(delivery)
        return len(taken)
