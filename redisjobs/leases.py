"""Keeping and taking leases: heartbeats, self-fencing, reclaim, and worker presence.

A worker holds a job while the job's stream entry sits in its PEL with an idle time under
`lease_ttl` (docs/architecture.md, "Leases"). The heartbeat resets that idle time for every held
job whose fencing token is still this worker's, and learns which jobs to stop (lease lost, cancel
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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError
from redis.typing import EncodableT

from .connection import Backoff
from .fetcher import MAX_FETCH
from .history import MINUTE_MS, note_flow
from .keys import QueueKeys, Registry
from .presence import SIGNAL_FIELD, Presence
from .roundtrips import run
from .scripts import Delivery, Scripts
from .slots import Slots
from .workerinfo import REGISTRY_HORIZON

if TYPE_CHECKING:
    from .runs import StopReason

log = logging.getLogger("redisjobs.leases")

FENCE_MARGIN = 0.05
"""A worker fences itself this share of `lease_ttl` before its leases can expire on Redis: slack
for its timers and scheduling, so that it stops a job before another worker may take it."""


class LeaseHolder(Protocol):
    """The worker, as the lease loops see it."""

    def held_leases(self) -> list[tuple[str, int]]:
        """(job id, lease) of every job the worker holds."""

    def stop_job(self, job_id: str, reason: StopReason) -> None:
        """Stop a running job: reason ``lost`` (record nothing) or ``cancel`` (record it)."""

    def launch(self, delivery: Delivery) -> None:
        """Start running a job leased to this worker."""

    @property
    def hung_threads(self) -> int:
        """Threads still running code of jobs that were stopped (a gauge for the registry)."""


class Leases:
    """The heartbeat and reclaim loops of one worker on one queue.

    Args:
        holder: the worker's held jobs.
        slots: the worker's slots: a reclaim tick takes over as many jobs as are free.
        worker_id: its consumer name.
        redis: the command connection.
        registry: the client the registry lives on (`redis` but on a cluster) and its keys.
        scripts: the scripts.
        beat_scripts: the scripts on a connection of the heartbeat's own: a beat must never
            wait behind job traffic for a connection (on a slow link, one that has to open a
            new connection misses the self-fence deadline).
        keys: the queue.
        lease_ttl: seconds an entry may stay idle before others may take it.
        max_deliveries: crash deliveries after which a job fails for good.
        reclaim_interval: seconds between reclaim ticks.
        concurrency: shown in the registry.
        presence: the rest of its registry entry, and what to do on a signal read there.
        lost_reply: called when a reclaim call failed: it may have leased jobs to this worker
            whose reply never arrived.
    """

    def __init__(
        self,
        holder: LeaseHolder,
        slots: Slots,
        *,
        worker_id: str,
        redis: Redis,
        registry: tuple[Redis, Registry],
        scripts: Scripts,
        beat_scripts: Scripts,
        keys: QueueKeys,
        lease_ttl: float,
        max_deliveries: int,
        reclaim_interval: float,
        concurrency: int,
        lost_reply: Callable[[], None],
        presence: Presence,
    ) -> None:
        self._holder = holder
        self._slots = slots
        self.worker_id = worker_id
        self._redis = redis
        self._registry_redis, self._registry = registry
        self._scripts = scripts
        self._beat_scripts = beat_scripts
        self._keys = keys
        self.lease_ttl = lease_ttl
        self.max_deliveries = max_deliveries
        self.reclaim_interval = reclaim_interval
        self._concurrency = concurrency
        self._lost_reply = lost_reply
        self._presence = presence
        self._started_ms: int | None = None  # Redis's clock, at the first registry write
        self._beat_ms = 0  # ... and at the last one
        self._noted = -MINUTE_MS  # the last minute of the queue's history this worker saw noted
        self.reclaiming = True
        self.owed = False  # jobs are up for reclaim that the last tick had no free slot for
        self._reclaim_lock = asyncio.Lock()
        self._fence_timer: asyncio.TimerHandle | None = None
        self._fence_at = 0.0  # loop time when held jobs count as lost unless a beat goes through
        # Loop time a write that reached Redis was sent: a beat extending leases, or a registry
        # refresh (a beat holding nothing sends nothing). What the worker's health reads.
        self.last_contact: float | None = None

    async def heartbeat_loop(self) -> None:
        """Extend leases every ``lease_ttl / 3``; self-fence when no beat went through for
        ``lease_ttl``, a little sooner (FENCE_MARGIN; docs/architecture.md, "Heartbeats and
        self-fencing")."""
        loop = asyncio.get_running_loop()
        interval = self.lease_ttl / 3
        backoff = Backoff(f"heartbeat {self.worker_id}", log)
        # The fence is a timer, not a check made after a failed beat: a beat stuck on a dead
        # connection, and the pause after it, must not carry it past the moment others may
        # take the jobs over. Redis restarts a lease's clock when a beat runs there, which is
        # after we sent it, so `lease_ttl` after *sending* the last good beat is never late.
        fence_after = self.lease_ttl * (1 - FENCE_MARGIN)
        self._arm_fence(loop.time() + fence_after, loop.time())
        refreshing: asyncio.Task[None] | None = None
        try:
            while True:
                held = self._holder.held_leases()
                sent = loop.time()
                try:
                    # A deadline per beat (the next one goes out on a fresh connection), but no
                    # sooner than the fence: on a slow link, cutting a beat short that may still
                    # be in time only costs the next one a new connection's handshake.
                    async with asyncio.timeout(max(interval, self._fence_at - sent)):
                        actions = await self._extend(held)
                except (RedisError, OSError, TimeoutError) as exc:
                    backoff.record(exc)
                    await asyncio.sleep(min(interval, 1.0) * random.uniform(0.5, 1.0))
                    continue
                backoff.ok()
                if held:
                    self._contact(sent)
                self._arm_fence(sent + fence_after, sent)
                for job_id, action in actions:  # 'cancel' requested, else the lease is lost
                    self._holder.stop_job(job_id, "cancel" if action == "cancel" else "lost")
                if refreshing is None or refreshing.done():  # the registry, off the beats' path
                    running = [job for job, _ in held]
                    refreshing = asyncio.create_task(self._refresh(running))
                # Beats keep their cadence, however long each one took.
                due = sent + interval * random.uniform(0.8, 1.0)
                await asyncio.sleep(max(0.0, due - loop.time()))
        finally:
            if refreshing is not None:
                refreshing.cancel()
            if self._fence_timer is not None:
                self._fence_timer.cancel()
                self._fence_timer = None

    async def _extend(self, held: list[tuple[str, int]]) -> list[tuple[str, str]]:
        """Extend the leases of `held`; the jobs to stop ('lost' or 'cancel')."""
        if not held:
            return []
        ttl_ms = int(self.lease_ttl * 1000)
        return await self._beat_scripts.heartbeat(self._keys, self.worker_id, ttl_ms, held)

    async def _refresh(self, held: Sequence[str]) -> None:
        """Refresh the registry entry and act on a signal left there; a failure waits for the
        next beat (the entry says lost only after three)."""
        sent = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(self.lease_ttl):
                signal = await self.register(held)
        except (RedisError, OSError, TimeoutError) as exc:
            log.debug("registry entry of %s not refreshed: %s", self.worker_id, exc)
        else:
            self._contact(sent)
            self._presence.signal(signal)
            await self._note_history()

    async def _note_history(self) -> None:
        """Note this minute of the queue's history unless this worker saw it noted (see
        :mod:`redisjobs.history`): one look a minute per worker, and one note."""
        if self._beat_ms // MINUTE_MS == self._noted // MINUTE_MS:
            return
        try:
            async with asyncio.timeout(self.lease_ttl):
                self._noted = await run(self._redis, note_flow(self._keys))
        except (RedisError, OSError, TimeoutError) as exc:  # the next refresh tries again
            log.debug("history of %s not noted: %s", self._keys.queue, exc)

    def _contact(self, sent: float) -> None:
        """A write sent at loop time `sent` reached Redis."""
        self.last_contact = max(self.last_contact or sent, sent)

    def _arm_fence(self, at: float, since: float) -> None:
        """(Re)start the self-fence timer: at loop time `at`, the jobs then held are lost."""
        if self._fence_timer is not None:
            self._fence_timer.cancel()
        self._fence_at = at
        self._fence_timer = asyncio.get_running_loop().call_at(at, self._fence, since)

    def _fence(self, since: float) -> None:
        """No beat went through since loop time `since`: stop every held job (their leases
        may be someone else's soon), and again each lease_ttl while that lasts."""
        now = asyncio.get_running_loop().time()
        held = self._holder.held_leases()
        if held:
            log.warning(
                "no heartbeat for %.1f s: treating %d leases as lost", now - since, len(held)
            )
            for job_id, _ in held:
                self._holder.stop_job(job_id, "lost")
        # Jobs leased while beats keep failing have fresh leases: the next round takes them.
        self._arm_fence(now + self.lease_ttl * (1 - FENCE_MARGIN), since)

    async def register(self, held: Sequence[str]) -> bytes | None:
        """Write this worker's registry entry (its heartbeat, `held` the ids of the jobs it
        holds) and its lease_ttl, by which other workers judge when its jobs are up for
        reclaim; returns the signal an operator left in the entry (None: none).

        Times are Redis's: one host with a fast clock must not make the others look dead (on a
        cluster, the clock of the master the registry lives on, which its readers read too).
        The first write replaces the entry a worker of the same id may have left.
        """
        key, registry = self._registry.worker(self.worker_id), self._registry
        seconds, micros = await self._registry_redis.time()
        now_ms = self._beat_ms = seconds * 1000 + micros // 1000
        first = self._started_ms is None
        if self._started_ms is None:
            self._started_ms = now_ms
        async with self._registry_redis.pipeline(transaction=False) as pipe:
            pipe.hget(key, SIGNAL_FIELD)
            if first:  # what a stopped worker of the same id left that the write below keeps
                pipe.hdel(key, "stopped_at", SIGNAL_FIELD)
            pipe.hset(key, mapping=self._entry(now_ms, held))
            pipe.pexpire(key, int(REGISTRY_HORIZON * 1000))  # it says lost long before
            pipe.zadd(registry.workers, {self.worker_id: now_ms})
            # Entries of workers gone for REGISTRY_HORIZON (their hash expired by now).
            horizon = now_ms - int(REGISTRY_HORIZON * 1000)
            pipe.zremrangebyscore(registry.workers, "-inf", horizon)
            replies = await self._with_queue_part(pipe, "hset", int(self.lease_ttl * 1000))
        return None if first else replies[0]

    def _entry(self, now_ms: int, held: Sequence[str]) -> dict[EncodableT, EncodableT]:
        return {
            "id": self.worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": self._keys.queue,
            "concurrency": self._concurrency,
            "hung_threads": self._holder.hung_threads,
            "started_at": self._started_ms or now_ms,
            "heartbeat_at": now_ms,
            # So that readers can tell a late heartbeat from a lost worker.
            "lease_ttl": self.lease_ttl,
            **self._presence.fields(held),
        }

    async def deregister(self) -> None:
        """Mark this worker's registry entry stopped (kept, as offline, until it expires)."""
        key = self._registry.worker(self.worker_id)
        seconds, micros = await self._registry_redis.time()
        stopped: dict[EncodableT, EncodableT] = {
            "stopped_at": seconds * 1000 + micros // 1000,
            "held": 0,
            "running": "",
        }
        async with self._registry_redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping=stopped)
            pipe.pexpire(key, int(REGISTRY_HORIZON * 1000))
            await self._with_queue_part(pipe, "hdel")

    async def _with_queue_part(self, pipe: Pipeline, command: str, *value: int) -> list[Any]:
        """Send `pipe` (registry writes) with this worker's field of the queue's lease TTLs
        (`command`: ``hset`` or ``hdel``): in the same pipeline, but on a cluster, where the
        registry lives on another master, in one of its own; the registry's replies."""
        if self._registry_redis is self._redis:
            getattr(pipe, command)(self._keys.leases, self.worker_id, *value)
            return list(await pipe.execute())
        replies = list(await pipe.execute())
        await getattr(self._redis, command)(self._keys.leases, self.worker_id, *value)
        return replies

    async def reclaim_loop(self) -> None:
        """Take over jobs of dead workers every `reclaim_interval` (jittered)."""
        backoff = Backoff(f"reclaim {self.worker_id}", log)
        while True:
            await asyncio.sleep(self.reclaim_interval * random.uniform(0.8, 1.0))
            try:
                await self.reclaim_once()
            except (RedisError, OSError) as exc:
                self._lost_reply()
                await backoff.failed(exc)
                continue
            backoff.ok()

    async def reclaim_once(self) -> int:
        """One reclaim tick; returns how many jobs this worker took over.

        Jobs of dead workers come before new ones: when the tick had no room for every job
        that is up for reclaim, :attr:`owed` is set and the fetcher hands its next free slots
        to reclaim instead of reading new entries, so a saturated fleet still recovers within
        lease_ttl + a tick (+ the wait for a slot).
        """
        async with self._reclaim_lock:
            count = min(self._slots.free(), MAX_FETCH) if self.reclaiming else 0
            taken, owed = await self._scripts.reclaim(
                self._keys,
                self.worker_id,
                lease_ttl_ms=int(self.lease_ttl * 1000),
                count=count,
                max_deliveries=self.max_deliveries,
            )
            for delivery in taken:
                log.info("took over job %s (attempt %d)", delivery.job_id, delivery.attempt)
                self._holder.launch(delivery)
            self.owed = self.reclaiming and owed
            return len(taken)
