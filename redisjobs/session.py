"""A worker's time on Redis: its connections and loops, from connecting to a clean stop.

A :class:`Session` holds what only exists while a worker is connected: three connections (the
commands, the blocking read, the heartbeat's own), the scripts, the held jobs
(:mod:`redisjobs.runs`), the fetcher, the lease loops, the scheduler and the schedule loop. It
connects, retrying until Redis answers, and it shuts down (docs/architecture.md, "Shutdown") in
bounded steps, so that a stop takes `grace_period` plus a few seconds whatever Redis does (a
frozen Redis answers nothing, and no kernel timeout notices): stop fetching
(FETCH_STOP_SECONDS), let running jobs finish (`grace_period`), then write outcomes, hand jobs
back and deregister (SETTLE_SECONDS; HARD_STOP_SECONDS once a second signal came). What Redis
did not take by then comes back through reclaim after lease_ttl.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from .cancelling import cancel_and_wait
from .connection import COMMAND_TIMEOUT, Backend, Backoff, check_server, ensure_group
from .durability import WORKER_CALLS, Durability
from .executors import ExecContext, Executors
from .fetcher import BLOCK_MS, Fetcher
from .handover import Courier
from .homes import Homes
from .keys import GROUP, QueueKeys
from .leases import Leases
from .limits import TaskLimit
from .pending import COUNT_FIELDS, counted
from .presence import Presence
from .runs import Runs
from .schedule_loop import ScheduleLoop
from .schedule_spec import ScheduleSpec
from .scheduler import Scheduler
from .scripts import Scripts
from .slots import Slots
from .subscriber import RECHECK, Subscriber

log = logging.getLogger("redisjobs.worker")

FETCH_STOP_SECONDS = 1.0
"""Seconds a stopping worker waits for its fetcher to end before cancelling it."""
SETTLE_SECONDS = COMMAND_TIMEOUT + 2.0
"""Seconds a stopping worker gives Redis, after the grace period, to take the outcomes and the
hand-backs: one command timeout (a Redis that froze) plus room for a retry after a reconnect."""
HARD_STOP_SECONDS = 1.0
"""The same after a second signal: enough for a healthy Redis, no wait for a frozen one."""
STOP_MARGIN = FETCH_STOP_SECONDS + SETTLE_SECONDS + 5.0
"""Seconds past its grace period by which a stopping worker has ended, whatever Redis does (the
bounded steps of a stop, and closing the connections and executors)."""


class Session:
    """The connected part of one worker on one queue.

    Args:
        backend: where Redis is.
        keys: the queue.
        worker_id: the consumer name.
        slots: the worker's slots.
        executors: the worker's executors.
        lease_ttl: seconds without a heartbeat after which other workers take a job over.
        poll_interval: seconds between polls where Redis cannot block.
        max_deliveries: crash deliveries after which a job fails for good.
        reclaim_interval: seconds between reclaim ticks.
        context_class: the ExecContext (sub)class executors get.
        max_payload_bytes: a job whose payload is larger fails.
        declared: the schedules and task limits of the worker's app on this queue, upserted
            at start.
        durable: outcomes are recorded once a replica confirmed them.
        presence: the worker's counts and signals in its registry entry.

    Its connections have no retry inside redis-py: a call whose reply was lost must come back
    to the loop that made it, which knows whether re-sending is safe (start and reclaim need a
    recovery first, see Fetcher.lost_reply). The heartbeat has a connection of its own.
    """

    def __init__(
        self,
        backend: Backend,
        keys: QueueKeys,
        worker_id: str,
        *,
        slots: Slots,
        executors: Executors,
        lease_ttl: float,
        poll_interval: float,
        max_deliveries: int,
        reclaim_interval: float,
        context_class: type[ExecContext],
        max_payload_bytes: int,
        declared: Sequence[ScheduleSpec | TaskLimit] = (),
        durable: Durability | None = None,
        presence: Presence | None = None,
    ) -> None:
        self.backend, self.keys, self.id = backend, keys, worker_id
        self._slots, self._executors = slots, executors
        self.presence = presence or Presence()
        # On a cluster, every client of the session goes to the queue's home; the commands'
        # one routes flows (the courier's hand-overs to other queues) to theirs.
        self._homes = Homes(backend, retries=0) if backend.cluster else None
        home = keys.prefix
        self.redis: Redis = (  # commands; the courier's hand-overs too
            backend.client(retries=0) if self._homes is None else self._homes.routed(home)
        )
        self._reader = backend.client(socket_timeout=BLOCK_MS / 1000 + 5, retries=0, home=home)
        self._beat_redis = backend.client(retries=0, home=home)
        self.scripts = Scripts(
            self.redis, embedded=backend.embedded, durable=durable, waits=WORKER_CALLS
        )
        self._beat_scripts = Scripts(
            self._beat_redis, embedded=backend.embedded, cluster=backend.cluster
        )
        self.subscriber = Subscriber(self.redis, sharded=backend.cluster)
        self.schedules, self.scheduler = self._schedulers(declared)
        self.runs = self._runs(context_class, max_payload_bytes)
        self.fetcher = self._fetcher(poll_interval)
        self.leases = self._leases(lease_ttl, max_deliveries, reclaim_interval)

    def _runs(self, context_class: type[ExecContext], max_payload_bytes: int) -> Runs:
        return Runs(
            self.redis,
            self.scripts,
            self.keys,
            self.id,
            slots=self._slots,
            executors=self._executors,
            scheduler=self.scheduler,
            context_class=context_class,
            max_payload_bytes=max_payload_bytes,
            presence=self.presence,
        )

    def _fetcher(self, poll_interval: float) -> Fetcher:
        return Fetcher(
            self._reader,
            self.scripts,
            self.keys,
            self.id,
            can_block=self.backend.can_block,
            poll_interval=poll_interval,
            slots=self._slots,
            launch=self.runs.launch,
            reclaim_first=self._reclaim_first,
        )

    def _schedulers(
        self, declared: Sequence[ScheduleSpec | TaskLimit]
    ) -> tuple[ScheduleLoop, Scheduler]:
        backend, keys = self.backend, self.keys
        on_promoted = (lambda: backend.wake(keys.queue)) if backend.embedded else None
        schedules = ScheduleLoop(
            self.redis, self.scripts, keys, declared, on_promoted, registry=backend.registry
        )
        return schedules, Scheduler(self.scripts, keys, on_promoted=on_promoted)

    def _leases(self, lease_ttl: float, max_deliveries: int, reclaim_interval: float) -> Leases:
        # Undelivered hand-overs of a dead worker are looked for at the pace of its jobs.
        self.courier = Courier(self.redis, self.scripts, self.keys, reclaim_interval)
        return Leases(
            self.runs,
            self._slots,
            worker_id=self.id,
            redis=self.redis,
            registry=(self.redis, self.backend.registry)
            if self._homes is None
            else (self._homes.redis(self.backend.registry.queues), self.backend.registry),
            scripts=self.scripts,
            beat_scripts=self._beat_scripts,
            keys=self.keys,
            lease_ttl=lease_ttl,
            max_deliveries=max_deliveries,
            reclaim_interval=reclaim_interval,
            concurrency=self._slots.concurrency,
            lost_reply=self.fetcher.lost_reply,
            presence=self.presence,
        )

    async def connect(self) -> None:
        """Wait until Redis answers, make the consumer group, and enter the registry."""
        backoff = Backoff(f"worker {self.id} start", log)
        while True:
            try:
                await self.redis.ping()
                await ensure_group(self.redis, self.keys)
                await self._beat_scripts.preload()
                break
            except (RedisError, OSError) as exc:
                await backoff.failed(exc)
        if not self.backend.embedded:
            await check_server(self.redis, log)
        else:
            self.backend.add_waker(self.keys.queue, self._slots.wake)
        await self.leases.register([])
        if self.presence.quieted:  # quieted while it connected
            self.quiet()

    def quiet(self) -> None:
        """Take no more jobs, new or of dead workers; those running finish."""
        self.presence.quieted = True
        self.fetcher.quiet()
        self.leases.reclaiming = False

    def on_control(self, raw: bytes) -> None:
        """Act on a message of the queue's control channel (or a recheck after a reconnect)."""
        # A cancel missed while the connection was down is still reported by the heartbeat; a
        # resume missed is not, so a recheck has a paused fetcher look at the queue again.
        what, _, arg = raw.partition(b":")
        if what == b"cancel":
            self.runs.stop_job(arg.decode(), "cancel")
        elif what == b"due":
            self.scheduler.wake()
        elif what == b"schedule":
            self.schedules.wake()
        elif raw in (b"resume", RECHECK):
            self.fetcher.resume()

    async def control_loop(self) -> None:
        """Follow the queue's control channel (:meth:`on_control`), subscribing until it can."""
        backoff = Backoff(f"control {self.keys.queue}", log)
        while True:
            try:
                sub = await self.subscriber.subscribe(self.keys.control)
                break
            except (RedisError, OSError) as exc:
                await backoff.failed(exc)
        async with sub:
            while True:
                self.on_control(await sub.get())

    async def _reclaim_first(self) -> bool:
        """Give the free slots to jobs of dead workers when the last reclaim tick had none."""
        if not self.leases.owed:
            return False
        await self.leases.reclaim_once()
        return True

    async def idle(self) -> bool:
        """True when this worker holds nothing and its queue has no job ready to run: none
        pending, none delayed whose due time has come (scheduled for later: not waited for),
        or the queue is paused."""
        if self._slots.running or self.runs.held:
            return False
        seconds, micros = await self.redis.time()
        now_ms = seconds * 1000 + micros // 1000
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.keys.stats, *COUNT_FIELDS)
            pipe.zcount(self.keys.delayed, "-inf", now_ms)
            pipe.exists(self.keys.paused)
            for stream in self.keys.streams:
                pipe.xpending_range(stream, GROUP, "-", "+", 1, self.id)
            counters, due, paused, *mine = await pipe.execute()
        return not any(mine) and (paused or not (counted(counters) or due))

    # -- shutdown -------------------------------------------------------------------------------

    async def shutdown(
        self, loops: list[asyncio.Task[None]], grace_period: float, hard_stop: asyncio.Event
    ) -> None:
        """Stop fetching, drain the running jobs, record and hand back, close (see the module).

        `loops[0]` is the fetcher's; the others are ended once the hand-backs are written.
        """
        self._slots.close()
        fetch = loops[0]
        if self.fetcher.blocked:
            fetch.cancel()  # blocked in XREADGROUP; entries it may have read are released below
        # It may be sleeping out a backoff or waiting for a `start` reply: entries that `start`
        # leased but never launched come back through reclaim.
        await asyncio.wait([fetch], timeout=FETCH_STOP_SECONDS)
        fetch.cancel()
        with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
            await fetch
        tasks = await self._drain(grace_period, hard_stop)
        await self._settle(self._write_back(tasks, loops[1:]), hard_stop)
        await cancel_and_wait(loops[1:])
        await self.close()

    async def _drain(
        self, grace_period: float, hard_stop: asyncio.Event
    ) -> list[asyncio.Task[None]]:
        """Give running jobs `grace_period` (less on a hard stop), then stop the rest for
        hand-back; returns every job task, some of them still recording their outcome."""
        tasks = self.runs.active_tasks()
        if tasks and not hard_stop.is_set():
            log.info("waiting up to %.0f s for %d running jobs", grace_period, len(tasks))
            hard = asyncio.create_task(hard_stop.wait())
            drained = asyncio.create_task(asyncio.wait(tasks))
            await asyncio.wait(
                [hard, drained], timeout=grace_period, return_when=asyncio.FIRST_COMPLETED
            )
            hard.cancel()
            drained.cancel()
        for job_id, run in list(self.runs.held.items()):
            if run.active:
                self.runs.stop_job(job_id, "handback")
        return tasks

    async def _write_back(
        self, tasks: list[asyncio.Task[None]], loops: list[asyncio.Task[None]]
    ) -> None:
        """Record the outcomes, hand the stopped jobs back, end `loops` and leave the registry."""
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.runs.outcomes.drain(SETTLE_SECONDS)
        handback = [
            (j, r.delivery.lease) for j, r in self.runs.held.items() if r.stop == "handback"
        ]
        try:
            try:
                released = await self.scripts.release(self.keys, self.id, handback)
                if released:
                    log.info("handed %d jobs back", released)
            except ResponseError as exc:
                # Redis answered: the queue's stream is gone (an obliterate, a Redis restarted
                # empty), so there is nothing to hand back to, but the registry is still left.
                log.warning("could not hand jobs back (%s)", exc)
            # The heartbeat refreshes the registry entry: a refresh still in flight would put
            # it back after the deregistration, for three lease TTLs.
            await cancel_and_wait(loops)
            await self.leases.deregister()
            await self._leave_groups()
        except (RedisError, OSError) as exc:
            log.warning("could not hand jobs back (%s): they return after lease_ttl", exc)

    async def _leave_groups(self) -> None:
        """Delete this worker's consumers unless it left entries behind in either stream."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in self.keys.streams:
                pipe.xpending_range(stream, GROUP, "-", "+", 1, self.id)
            held = await pipe.execute()
        if not any(held):
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream in self.keys.streams:
                    pipe.xgroup_delconsumer(stream, GROUP, self.id)
                await pipe.execute()

    async def _settle(self, writes: Coroutine[Any, Any, None], hard_stop: asyncio.Event) -> None:
        """Run `writes` for SETTLE_SECONDS at most, HARD_STOP_SECONDS after a hard stop."""
        task = asyncio.create_task(writes)
        hard = asyncio.create_task(hard_stop.wait())
        await asyncio.wait(
            [task, hard], timeout=SETTLE_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        if hard.done():
            await asyncio.wait([task], timeout=HARD_STOP_SECONDS)
        hard.cancel()
        if task.done():
            return
        log.warning(
            "Redis did not take the outcomes and hand-backs in time: unrecorded jobs run again "
            "after lease_ttl"
        )
        for run in self.runs.held.values():  # a job still recording its outcome, or one
            if run.task is not None:  # that ignores its cancellation
                run.task.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def close(self) -> None:
        """Close the executors and the connections."""
        if self.backend.embedded:
            self.backend.remove_waker(self.keys.queue, self._slots.wake)
        await self._executors.aclose()
        await self.subscriber.aclose()
        await self.courier.aclose()
        for redis in (self._reader, self._beat_redis, self.redis):
            # Closing waits CONNECT_TIMEOUT at most, and says so by raising: nothing to do then.
            with contextlib.suppress(RedisError, OSError):
                await redis.aclose()
        if self._homes is not None:
            await self._homes.aclose()
