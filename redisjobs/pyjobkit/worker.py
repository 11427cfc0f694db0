"""The Pyjobkit face's ``Worker``: an engine's executors run by a :class:`redisjobs.Worker`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Self

from redis.exceptions import RedisError

from ..errors import RedisJobsError
from ..worker import Worker as _Worker
from ._ids import UUIDJobs
from .contracts import WorkerContext
from .ratelimit import TokenBucket, parse_rate_limits
from .retry import DEFAULT_RETRY_POLICY, RetryPolicy, parse_policy
from .worker_filters import DeclineOthers, job_filter
from .worker_hooks import (
    HeartbeatCallback,
    LeaseLostCallback,
    LeaseLostError,
    beat,
    check_settings,
)
from .worker_webhooks import drain as drain_webhooks

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["LeaseLostError", "Worker"]

NO_STOP_TIMEOUT = 86400.0
"""Seconds running jobs get on stop when ``stop_timeout`` is None (Pyjobkit: no limit)."""


class Worker:
    """Runs an engine's jobs with its executors.

    Args:
        engine: the engine whose backend and executors to use.
        max_concurrency: jobs run at once.
        batch: jobs leased per fetch (``batch_size`` is accepted too, as the seed spells it).
        poll_interval: seconds between polls where Redis cannot block (the memory backend).
        lease_ttl: seconds without a heartbeat before another worker takes a job over.
        queue_capacity: :meth:`check_health` reports unhealthy from this many waiting jobs.
        stop_timeout: seconds running jobs get to finish when the worker stops (None: a day).
        retry_policy: the wait before a failed job's next attempt (a :class:`RetryPolicy` or
            a spec string; default 1, 2, 4 ... seconds); a job's own policy comes first.
        rate_limits: per kind, ``{"max_per_second": r, "burst": b}``, ``(r, b)`` or ``r``
            (see :mod:`redisjobs.pyjobkit.ratelimit`).
        watchdog_interval_s: seconds between looks for jobs whose lease ran out (default
            redisjobs' reclaim interval; reported as `lease_ttl` when not given).
        on_lease_lost: called with a job's id and row when its lease went to another worker.
        heartbeat_interval_s: seconds between heartbeats (logged, and `on_heartbeat` called).
        on_heartbeat: ``await on_heartbeat(worker_id)`` each heartbeat.
        kinds: run only jobs of these kinds (None: every kind it has an executor for).
        tags: run only jobs tagged (``enqueue(tags=...)``) with one of these (None: any job).
            A job either filter keeps out goes back to the queue for another worker, due again
            after `poll_interval` (0.1 s at least), with no attempt used; see
            :mod:`redisjobs.pyjobkit.worker_filters`.
        handle_signals: stop gracefully on SIGTERM/SIGINT.

    Stop it with :meth:`request_stop` (or a signal); :meth:`run` then returns once running
    jobs finished (or were handed back after `stop_timeout`). As an ``async with`` block it
    serves for the block's duration, and a :meth:`run` called in the block (Pyjobkit's
    ``asyncio.create_task(worker.run())``) serves along with it and returns when the block ends.
    Cancelling :meth:`run`, or a task inside the block, hands running jobs back at once and then
    lets the cancellation through.
    """

    _watchdog: float | None
    """The reclaim interval asked for: Pyjobkit's reaper runs every lease_ttl by default, ours
    reclaims sooner unless told."""
    _worker: _Worker | None
    _serving: asyncio.Task[None] | None

    def __init__(
        self,
        engine: Engine,
        *,
        max_concurrency: int = 8,
        batch: int = 1,
        batch_size: int | None = None,
        poll_interval: float = 0.5,
        lease_ttl: float = 30,
        queue_capacity: int | None = None,
        stop_timeout: float | None = 60,
        retry_policy: RetryPolicy | str | None = None,
        rate_limits: Mapping[str, Any] | str | None = None,
        watchdog_interval_s: float | None = None,
        on_lease_lost: LeaseLostCallback | None = None,
        heartbeat_interval_s: float | None = None,
        on_heartbeat: HeartbeatCallback | None = None,
        kinds: Iterable[str] | None = None,
        tags: Iterable[str] | None = None,
        handle_signals: bool = True,
    ) -> None:
        self.batch = batch_size or batch
        check_settings(
            max_concurrency=max_concurrency,
            batch=self.batch,
            poll_interval=poll_interval,
            lease_ttl=lease_ttl,
            queue_capacity=queue_capacity,
            stop_timeout=stop_timeout,
            watchdog_interval_s=watchdog_interval_s,
            heartbeat_interval_s=heartbeat_interval_s,
        )
        self.engine = engine
        self._only = only = job_filter(kinds, tags, poll_interval)
        self.kinds, self.tags = (None, None) if only is None else (only.kinds, only.tags)
        self.worker_id = uuid.uuid4()
        self.max_concurrency, self.poll_interval = max_concurrency, poll_interval
        self.lease_ttl = lease_ttl
        self.queue_capacity, self.stop_timeout = queue_capacity, stop_timeout
        self.retry_policy = DEFAULT_RETRY_POLICY if retry_policy is None else retry_policy
        self._watchdog = watchdog_interval_s
        self.rate_limits = parse_rate_limits(rate_limits)
        self._buckets = {kind: TokenBucket(*spec) for kind, spec in self.rate_limits.items()}
        self.watchdog_interval_s = float(watchdog_interval_s or lease_ttl)
        self.on_lease_lost, self.on_heartbeat = on_lease_lost, on_heartbeat
        self.heartbeat_interval_s = heartbeat_interval_s
        self.handle_signals = handle_signals
        self._worker = self._serving = None
        self._stop_requested = self._finished = False
        self._stopped = asyncio.Event()

    @property
    def retry_policy(self) -> RetryPolicy:
        """The wait before a failed job's next attempt (a spec string is parsed when set)."""
        return self._retry_policy

    @retry_policy.setter
    def retry_policy(self, policy: RetryPolicy | str) -> None:
        self._retry_policy = parse_policy(policy)

    def _make(self, once: bool) -> _Worker:
        context = type("Context", (WorkerContext,), {"__slots__": (), "engine": self.engine})
        backend = self.engine.backend
        return _Worker(
            backend.url,
            queue=backend.queue,
            executors=self._executors(),
            concurrency=self.max_concurrency,
            batch_size=self.batch,
            poll_interval=self.poll_interval,
            lease_ttl=self.lease_ttl,
            # None: Pyjobkit waits for running jobs as long as they take (a day here)
            grace_period=NO_STOP_TIMEOUT if self.stop_timeout is None else self.stop_timeout,
            reclaim_interval=self._watchdog,
            worker_id=str(self.worker_id),
            handle_signals=self.handle_signals,
            context_class=context,
            burst=once,
        )

    def _executors(self) -> list[UUIDJobs | DeclineOthers]:
        """The engine's executors the face's way; a filtering worker declines other kinds."""
        only = self._only
        run: list[UUIDJobs | DeclineOthers] = [
            UUIDJobs(e, self.retry_policy, self._buckets.get(e.kind), only)
            for e in self.engine.executors.values()
        ]
        return run if only is None else [*run, DeclineOthers(only.retry_after)]

    async def run(self, *, once: bool = False) -> None:
        """Serve the queue until :meth:`request_stop` or a signal.

        With `once`, stop as soon as no job is waiting to run and none is running here (the
        worker's burst mode: jobs scheduled for later are not waited for). While the worker
        already serves (an ``async with`` block), this waits until that ends.
        """
        serving = self._serving
        if serving is None or serving.done():
            if self._finished:
                raise RuntimeError("Worker.run cannot be called twice; create a new Worker")
            serving = self._start(once)
        await self._guard(serving)
        serving.result()

    def _start(self, once: bool) -> asyncio.Task[None]:
        """Serve in a task of its own, so that whoever waits for it can be cancelled alone."""
        self._stopped.clear()
        self._worker = worker = self._make(once)
        if self._stop_requested:
            worker.stop()
        self._serving = asyncio.create_task(self._serve(worker), name="pyjobkit-worker")
        return self._serving

    async def _serve(self, worker: _Worker) -> None:
        heartbeat = None
        if self.heartbeat_interval_s is not None:
            heartbeat = asyncio.create_task(
                beat(self.worker_id, self.heartbeat_interval_s, self.on_heartbeat)
            )
        try:
            await worker.run()
            await drain_webhooks(self.stop_timeout or NO_STOP_TIMEOUT)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            self._worker = None
            self._finished = True
            self._stopped.set()

    async def _guard(self, serving: asyncio.Task[None], *until: asyncio.Task[None]) -> None:
        """Wait until `serving` (or one of `until`) ends. Cancelled meanwhile: hand the running
        jobs back now, wait for that, then let the cancellation through."""
        try:
            await asyncio.wait([serving, *until], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self._halt(now=True)
            await asyncio.wait([serving])
            raise

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop gracefully."""
        self._halt(now=False)

    def _halt(self, *, now: bool) -> None:
        self._stop_requested = True
        if self._worker is not None:
            self._worker.stop(now=now)

    async def wait_stopped(self) -> None:
        """Return once :meth:`run` has returned."""
        await self._stopped.wait()

    async def check_health(self) -> dict[str, Any]:
        """``{"status": "healthy", "queue_depth": N, "queue_overflow": False}``; ``"unhealthy"``
        with a ``reason`` when the backend cannot be reached, or when ``queue_capacity`` jobs or
        more wait (``queue_overflow``)."""
        try:
            await self.engine.check_connection()
            depth = await self.engine.queue_depth()
        except (RedisJobsError, RedisError, OSError, RuntimeError) as exc:
            return {"status": "unhealthy", "reason": repr(exc)}
        overflow = self.queue_capacity is not None and depth >= self.queue_capacity
        return {
            "status": "unhealthy" if overflow else "healthy",
            "queue_depth": depth,
            "queue_overflow": overflow,
        }

    async def __aenter__(self) -> Self:
        serving = self._serving
        if serving is None or serving.done():
            serving = self._start(once=False)
        worker = self._worker
        if worker is not None:
            ready = asyncio.create_task(worker.wait_ready())
            try:
                await self._guard(serving, ready)
            finally:
                ready.cancel()
        if serving.done():
            serving.result()  # it failed to start: say why
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # Left by a cancellation: hand running jobs back now, not after stop_timeout.
        self._halt(now=exc_type is not None and issubclass(exc_type, asyncio.CancelledError))
        if self._serving is not None:
            await self._guard(self._serving)
            self._serving.result()
