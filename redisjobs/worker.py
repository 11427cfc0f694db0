"""The consumer side: fetch jobs, run them through executors, record each outcome once.

One fetcher per worker (:mod:`redisjobs.fetcher`) reads the queue's stream in batches of the
free slots and leases each batch with one `start` call. Each job runs in its own task; outcomes
go through :mod:`redisjobs.outcomes`, which records the successes that finish together with one
`complete` call, so the Redis round trips per job stay well under one. Leases, reclaim and
presence live in :mod:`redisjobs.leases`, promotion of due jobs in :mod:`redisjobs.scheduler`.
Shutdown is graceful (docs/architecture.md, "Shutdown"):
stop fetching, let running jobs finish within `grace_period`, hand the rest back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, Self

from redis.asyncio import Redis
from redis.exceptions import RedisError

from . import tracing
from .connection import (
    COMMAND_TIMEOUT,
    Backend,
    Backoff,
    check_server,
    ensure_group,
    resolve_url,
)
from .errors import ExecutorError, PayloadTooLarge, Retry, SerializationError, UnknownExecutor
from .executors import ExecContext, Executor, Executors
from .executors.call import CallExecutor
from .fetcher import BLOCK_MS, Fetcher
from .keys import GROUP, QueueKeys
from .leases import Leases
from .outcomes import Outcomes
from .scheduler import Scheduler
from .scripts import Delivery, Scripts
from .serialization import DEFAULT_MAX_PAYLOAD_BYTES, pack_float, packb, unpackb
from .subscriber import RECHECK, Subscriber
from .tasks import cancel_and_wait

log = logging.getLogger("redisjobs.worker")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
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

ERROR_MAX_CHARS = 2000

JOB_OBSERVERS: list[Callable[[str, str, str, float], None]] = []
"""Called with (queue, kind, outcome, seconds) when a run ends, outcome ``completed``,
``failed`` or ``cancelled`` (:func:`redisjobs.metrics.enable_job_durations` adds one). While it
is empty a run does not even read the clock."""


class _JobTimeout(ExecutorError):
    """A run outlived the job's `timeout` (its error reads "timed out after N s")."""


class _Run:
    """A job this worker holds: leased, maybe executing, outcome maybe not yet recorded."""

    __slots__ = ("ctx", "delivery", "stop", "task")

    def __init__(self, delivery: Delivery, ctx: ExecContext) -> None:
        self.delivery = delivery
        self.ctx = ctx
        self.stop: str | None = None  # why it was stopped: 'cancel' | 'lost' | 'handback'
        self.task: asyncio.Task[None] | None = None


def _clip(text: str) -> str:
    return text if len(text) <= ERROR_MAX_CHARS else text[: ERROR_MAX_CHARS - 1] + "…"


def _describe(exc: BaseException) -> str:
    return _clip(f"{type(exc).__name__}: {exc}")


class Worker:
    """Runs the jobs of one queue.

    Args:
        url: Redis URL (see :class:`~redisjobs.Client`); ``$REDIS_URL``, else ``memory://``
            with the Client's warning.
        queue: the queue to serve.
        functions: callables the ``call`` executor may run (a list, or a name -> callable map).
        modules: modules whose callables the ``call`` executor may run by ``module:name``.
        executors: more executors (http, subprocess, ssh, your own), one per kind.
        concurrency: jobs run at once.
        batch_size: jobs leased per fetch at most (default: every free slot). A small batch
            spreads a burst over more workers; a large one costs fewer round trips.
        lease_ttl: seconds without a heartbeat after which other workers take a job over.
        poll_interval: seconds between polls where Redis cannot block (the embedded backend).
        grace_period: seconds running jobs get to finish on shutdown before being handed back.
        max_deliveries: a job whose runs killed this many workers fails for good.
        reclaim_interval: seconds between reclaim ticks (default ``min(lease_ttl / 2, 5)``).
        worker_id: the consumer name (default host-pid-random).
        handle_signals: stop gracefully on SIGTERM/SIGINT (a second one hands back at once).
        context_class: the ExecContext (sub)class executors get (a face's own flavour of it).
        max_payload_bytes: a job whose payload is larger fails (a producer's cap is checked on
            enqueue; this one guards against payloads written to Redis some other way).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        queue: str = "default",
        functions: Iterable[Callable[..., Any]] | Mapping[str, Callable[..., Any]] = (),
        modules: Iterable[str] = (),
        executors: Iterable[Executor] = (),
        concurrency: int = 100,
        batch_size: int | None = None,
        lease_ttl: float = 30.0,
        poll_interval: float = 0.5,
        grace_period: float = 30.0,
        max_deliveries: int = 5,
        reclaim_interval: float | None = None,
        worker_id: str | None = None,
        handle_signals: bool = True,
        context_class: type[ExecContext] = ExecContext,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.batch_size = batch_size or concurrency
        if (
            min(concurrency, self.batch_size, max_deliveries) < 1
            or min(lease_ttl, poll_interval) <= 0
        ):
            raise ValueError(
                "need concurrency, batch_size and max_deliveries >= 1, lease_ttl and "
                "poll_interval > 0"
            )
        self.backend = Backend(resolve_url(url, warn_private=True))
        self.keys = QueueKeys(queue)
        self.concurrency = concurrency
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.grace_period = grace_period
        self.max_deliveries = max_deliveries
        self.reclaim_interval = reclaim_interval or min(lease_ttl / 2, 5.0)
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.handle_signals = handle_signals
        self.context_class = context_class
        self.max_payload_bytes = max_payload_bytes
        self.executors = Executors(executors)
        if "call" not in self.executors:
            self.executors.add(CallExecutor(functions, modules=modules))
        self._running: dict[str, _Run] = {}
        self._active = 0
        self._stop_requested = asyncio.Event()
        self._hard_stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._stopping = False
        self._run_task: asyncio.Task[None] | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._done = False

    # -- public control -------------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Ask the worker to stop: gracefully, or with `now` hand running jobs back at once."""
        self._stop_requested.set()
        if now:
            self._hard_stop.set()

    async def wait_ready(self) -> None:
        """Return once the worker is connected and fetching."""
        await self._ready.wait()

    @property
    def ready(self) -> bool:
        """Connected and fetching, and not stopping (what a readiness probe asks)."""
        return self._ready.is_set() and not self._stopping and not self._stop_requested.is_set()

    def unhealthy(self) -> str | None:
        """Why the worker is not healthy (what a liveness probe asks), or None when it is.

        Unhealthy: not connected yet, stopped, one of its loops died, or no heartbeat got
        through to Redis for longer than `lease_ttl` (its leases may be others' by now).
        """
        if self._done:
            return "stopped"
        if not self._ready.is_set():
            return "not connected to Redis yet"
        for task in self._loops:
            if task.done() and not self._stopping:
                return f"its {task.get_name()} loop ended"
        last = self._leases.last_contact
        if last is None:
            last = self._ready_at  # the first beat is on its way
        silent = asyncio.get_running_loop().time() - last
        if silent > self.lease_ttl:
            return f"no heartbeat reached Redis for {silent:.1f} s (lease_ttl {self.lease_ttl:g} s)"
        return None

    async def __aenter__(self) -> Self:
        """Run the worker in the background for the duration of an ``async with`` block."""
        self._run_task = asyncio.create_task(self.run(), name=f"redisjobs-worker-{self.id}")
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait([ready, self._run_task], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._run_task.done():
            self._run_task.result()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        if self._run_task is not None:
            await self._run_task

    # -- LeaseHolder ----------------------------------------------------------------------------

    def held_leases(self) -> list[tuple[str, int]]:
        """(job id, lease) of the jobs this worker holds."""
        return [(j, r.delivery.lease) for j, r in self._running.items() if r.stop != "lost"]

    @property
    def hung_threads(self) -> int:
        """Threads still running code of jobs that were stopped: timed out, cancelled or lost.

        Python cannot interrupt a thread, so a blocking function outlives its job's timeout; each
        such thread keeps one of the executor's `max_threads`. Also in the worker's registry
        entry.
        """
        return sum(int(getattr(ex, "hung_threads", 0)) for ex in self.executors.all())

    @property
    def busy(self) -> int:
        """Jobs this worker is running now."""
        return self._active

    def free_slots(self) -> int:
        """Jobs to lease next: the free slots, up to `batch_size` (0 while stopping)."""
        return 0 if self._stopping else min(self.concurrency - self._active, self.batch_size)

    def stop_job(self, job_id: str, reason: str) -> None:
        """Stop a held job: 'cancel' records it cancelled, 'lost' and 'handback' record nothing."""
        run = self._running.get(job_id)
        if run is None:
            return
        if reason == "cancel":
            run.ctx.request_cancel()
        if run.stop is None and run.task is not None and not run.task.done():
            run.stop = reason
            run.task.cancel()
        elif reason == "lost" and run.task is not None and run.task.done():
            run.stop = reason

    def launch(self, delivery: Delivery) -> None:
        """Run a job leased to this worker."""
        held = self._running.get(delivery.job_id)
        if held is not None and held.delivery.lease == delivery.lease:
            return  # handed over twice (a re-sent start after a reclaim took it): it runs
        ctx = self.context_class(
            self,
            job_id=delivery.job_id,
            queue=self.keys.queue,
            kind=delivery.kind,
            attempt=delivery.attempt,
            lease=delivery.lease,
        )
        run = _Run(delivery, ctx)
        self._running[delivery.job_id] = run
        self._active += 1
        run.task = asyncio.create_task(self._execute(run))

    # -- JobHost --------------------------------------------------------------------------------

    def write_log(self, job_id: str, line: str) -> None:
        """Buffer a job's log line; it is written with the next flush."""
        self._outcomes.log_line(job_id, line)

    async def write_progress(self, ctx: ExecContext) -> None:
        """Record a job's progress under its lease."""
        try:
            await self._scripts.progress(
                self.keys,
                ctx.job_id,
                ctx.lease,
                ctx.progress,
                pack_float(ctx.progress),
                ctx.progress_message or "",
            )
        except (RedisError, OSError) as exc:
            log.debug("progress of job %s not recorded: %s", ctx.job_id, exc)

    # -- running one job ------------------------------------------------------------------------

    async def _invoke(self, run: _Run) -> Any:
        d = run.delivery
        executor = self.executors.get(d.kind)
        if len(d.payload) > self.max_payload_bytes:
            raise PayloadTooLarge(
                f"payload is {len(d.payload)} bytes, over this worker's cap of "
                f"{self.max_payload_bytes} bytes (max_payload_bytes)"
            )
        payload = unpackb(d.payload)
        if not d.timeout_ms:
            return await executor.run(job_id=d.job_id, payload=payload, ctx=run.ctx)
        try:
            async with asyncio.timeout(d.timeout_ms / 1000) as deadline:
                return await executor.run(job_id=d.job_id, payload=payload, ctx=run.ctx)
        except TimeoutError:
            if deadline.expired():
                raise _JobTimeout(f"timed out after {d.timeout_ms / 1000:g} s") from None
            raise

    async def _traced(self, run: _Run) -> Any:
        """`_invoke` inside the worker's span, when a tracer provider is set."""
        span = await tracing.start_run_span(self._redis, self.keys, run.delivery)
        if span is None:
            return await self._invoke(run)
        outcome, error = "failed", None
        try:
            with tracing.current(span):
                value = await self._invoke(run)
            outcome = "completed"
            return value
        except asyncio.CancelledError:
            outcome = "cancelled" if run.stop == "cancel" else run.stop or "interrupted"
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            tracing.end_run_span(span, outcome, error)

    async def _execute(self, run: _Run) -> None:
        d = run.delivery
        result: bytes | None = None
        failure: tuple[str, str, int] | None = None
        started = time.perf_counter() if JOB_OBSERVERS else 0.0  # no clock read when unobserved
        # Not even a function call for tracing unless the OpenTelemetry API is installed.
        runs = self._traced(run) if tracing.AVAILABLE else self._invoke(run)
        try:
            result = packb(await runs)
        except asyncio.CancelledError:
            if run.stop is None:
                raise
            if run.stop == "cancel":
                failure = ("cancel", "cancelled", -1)
        except (Exception, SystemExit, KeyboardInterrupt) as exc:  # job code may call sys.exit()
            failure = self._failure(d.job_id, exc)
        finally:
            self._active -= 1
            self._fetcher.slot_free.set()
            if started:
                self._observe(run, started, result is not None, failure)
        await self._record(run, result, failure)

    async def _record(
        self, run: _Run, result: bytes | None, failure: tuple[str, str, int] | None
    ) -> None:
        """Record a run's outcome (none when it was handed back or lost)."""
        d = run.delivery
        if result is not None or failure is not None:
            await run.ctx.flush()  # progress held back by the throttle lands before the outcome
        if result is not None:
            self._outcomes.success(d.job_id, d.lease, result)
        elif failure is not None:
            mode, error, defer_ms = failure
            outcome = await self._outcomes.failure(
                d.job_id, d.lease, error, mode, defer_ms, lambda: run.stop == "lost"
            )
            if outcome == "retry":
                self._scheduler.wake()  # to promote it exactly when due
        if run.stop == "lost":
            self._recorded(d.job_id, d.lease)

    def _observe(
        self, run: _Run, started: float, ok: bool, failure: tuple[str, str, int] | None
    ) -> None:
        """Report a run that ended with an outcome to the duration observers."""
        if ok:
            outcome = "completed"
        elif failure is not None:
            outcome = "cancelled" if failure[0] == "cancel" else "failed"
        else:
            return  # handed back or lost: no outcome of its own
        seconds = time.perf_counter() - started
        for observe in JOB_OBSERVERS:
            observe(self.keys.queue, run.delivery.kind, outcome, seconds)

    def _failure(self, job_id: str, exc: BaseException) -> tuple[str, str, int]:
        """(mode, error, defer_ms) for `fail.lua` from what a run raised."""
        if isinstance(exc, Retry):
            return "error", "retry requested", -1 if exc.defer is None else round(exc.defer * 1000)
        if isinstance(exc, _JobTimeout):
            return "timeout", str(exc), -1
        if isinstance(exc, UnknownExecutor | SerializationError):
            return "fatal", _describe(exc), -1  # retrying cannot help
        if isinstance(exc, ExecutorError):  # an expected failure: its message says it all
            return ("error" if exc.retryable else "fatal"), _clip(str(exc)), -1
        self.write_log(job_id, "".join(traceback.format_exception(exc)).rstrip())
        return "error", _describe(exc), -1

    def _recorded(self, job_id: str, lease: int) -> None:
        run = self._running.get(job_id)
        if run is not None and run.delivery.lease == lease:
            del self._running[job_id]

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the queue until :meth:`stop` (or SIGTERM/SIGINT), then shut down gracefully.

        A stop asked for while Redis cannot be reached yet ends the wait for it at once.
        """
        # Before connecting: a worker waiting for its Redis must still stop on a signal.
        self._handle_signals(True)
        try:
            if await self._connected():
                await self._serve()
        finally:
            self._done = True
            self._handle_signals(False)

    async def _connected(self) -> bool:
        """Connect, retrying until Redis answers; False when a stop came first."""
        connecting = asyncio.create_task(self._connect())
        stop = asyncio.create_task(self._stop_requested.wait())
        try:
            await asyncio.wait([connecting, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not connecting.done():
                connecting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await connecting
        if connecting.cancelled():
            await self._close()
            return False
        connecting.result()  # a bug in connecting is the worker's error
        return True

    async def _serve(self) -> None:
        self._loops = loops = [
            asyncio.create_task(self._fetcher.run(), name="fetch"),
            asyncio.create_task(self._leases.heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self._leases.reclaim_loop(), name="reclaim"),
            asyncio.create_task(self._scheduler.run(), name="promote"),
            asyncio.create_task(self._control_loop(), name="control"),
        ]
        self._ready_at = asyncio.get_running_loop().time()
        self._ready.set()
        log.info("worker %s serving queue %r on %s", self.id, self.keys.queue, self.backend.masked)
        stop = asyncio.create_task(self._stop_requested.wait())
        try:
            await asyncio.wait([stop, *loops], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            await self._shutdown(loops)
        for task in loops:  # a loop that died on a bug must not pass silently
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _connect(self) -> None:
        # No retry inside redis-py: a call whose reply was lost must come back to the loop that
        # made it, which knows whether re-sending is safe (start and reclaim need a recovery
        # first, see Fetcher.lost_reply). The heartbeat has a connection of its own.
        self._redis: Redis = self.backend.client(retries=0)
        self._reader: Redis = self.backend.client(socket_timeout=BLOCK_MS / 1000 + 5, retries=0)
        self._beat_redis: Redis = self.backend.client(retries=0)
        self._scripts = Scripts(self._redis, embedded=self.backend.embedded)
        self._subscriber = Subscriber(self._redis)
        self._outcomes = Outcomes(self._redis, self._scripts, self.keys, self.id, self._recorded)
        self._fetcher = Fetcher(
            self._reader,
            self._scripts,
            self.keys,
            self.id,
            can_block=self.backend.can_block,
            poll_interval=self.poll_interval,
            free_slots=self.free_slots,
            launch=self.launch,
            reclaim_first=self._reclaim_first,
        )
        backoff = Backoff(f"worker {self.id} start", log)
        beat_scripts = Scripts(self._beat_redis, embedded=self.backend.embedded)
        while True:
            try:
                await self._redis.ping()
                await ensure_group(self._redis, self.keys)
                await beat_scripts.preload("heartbeat")
                break
            except (RedisError, OSError) as exc:
                await backoff.failed(exc)
        if not self.backend.embedded:
            await check_server(self._redis, log)
        self._leases = Leases(
            self,
            worker_id=self.id,
            redis=self._redis,
            scripts=self._scripts,
            beat_scripts=beat_scripts,
            keys=self.keys,
            lease_ttl=self.lease_ttl,
            max_deliveries=self.max_deliveries,
            reclaim_interval=self.reclaim_interval,
            concurrency=self.concurrency,
            lost_reply=self._fetcher.lost_reply,
        )
        on_promoted = (
            (lambda: self.backend.wake(self.keys.queue)) if self.backend.embedded else None
        )
        self._scheduler = Scheduler(self._scripts, self.keys, on_promoted=on_promoted)
        if self.backend.embedded:
            self.backend.add_waker(self.keys.queue, self._fetcher.wake)
        await self._leases.register(0)

    async def _reclaim_first(self) -> bool:
        """Give the free slots to jobs of dead workers when the last reclaim tick had none."""
        if not self._leases.owed:
            return False
        await self._leases.reclaim_once()
        return True

    def _handle_signals(self, on: bool) -> None:
        """Handle SIGTERM/SIGINT (`on`), or give them back: a stopped worker must not swallow
        the next SIGTERM."""
        if not self.handle_signals:
            return
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                if on:
                    loop.add_signal_handler(sig, self._on_signal, sig)
                else:
                    loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        now = self._stop_requested.is_set()
        log.info("%s: %s", sig.name, "handing jobs back now" if now else "stopping gracefully")
        self.stop(now=now)

    async def _control_loop(self) -> None:
        backoff = Backoff(f"control {self.keys.queue}", log)
        while True:
            try:
                sub = await self._subscriber.subscribe(self.keys.control)
                break
            except (RedisError, OSError) as exc:
                await backoff.failed(exc)
        async with sub:
            while True:
                raw = await sub.get()
                if raw == RECHECK:
                    continue  # a cancel missed meanwhile is still reported by the heartbeat
                what, _, arg = raw.partition(b":")
                if what == b"cancel":
                    self.stop_job(arg.decode(), "cancel")
                elif what == b"due":
                    self._scheduler.wake()

    # -- shutdown -------------------------------------------------------------------------------

    # Every step is bounded, so that a stop takes `grace_period` plus a few seconds whatever
    # Redis does (a frozen Redis answers nothing, and no kernel timeout notices):
    # stop fetching (FETCH_STOP_SECONDS), let running jobs finish (`grace_period`), then write
    # outcomes, hand jobs back and deregister (SETTLE_SECONDS; HARD_STOP_SECONDS once a second
    # signal came). What Redis did not take by then comes back through reclaim after lease_ttl.

    async def _shutdown(self, loops: list[asyncio.Task[None]]) -> None:
        self._stopping = self._fetcher.stopping = True
        fetch = loops[0]
        if self._fetcher.blocked:
            fetch.cancel()  # blocked in XREADGROUP; entries it may have read are released below
        self._fetcher.slot_free.set()
        self._fetcher.wake.set()
        # It may be sleeping out a backoff or waiting for a `start` reply: entries that `start`
        # leased but never launched come back through reclaim.
        await asyncio.wait([fetch], timeout=FETCH_STOP_SECONDS)
        fetch.cancel()
        with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
            await fetch
        tasks = await self._drain()
        await self._settle(self._write_back(tasks, loops[1:]))
        await cancel_and_wait(loops[1:])
        await self._close()

    async def _drain(self) -> list[asyncio.Task[None]]:
        """Give running jobs `grace_period` (less on a hard stop), then stop the rest for
        hand-back; returns every job task, some of them still recording their outcome."""
        tasks = [r.task for r in self._running.values() if r.task is not None and not r.task.done()]
        if tasks and not self._hard_stop.is_set():
            log.info("waiting up to %.0f s for %d running jobs", self.grace_period, len(tasks))
            hard = asyncio.create_task(self._hard_stop.wait())
            drained = asyncio.create_task(asyncio.wait(tasks))
            await asyncio.wait(
                [hard, drained], timeout=self.grace_period, return_when=asyncio.FIRST_COMPLETED
            )
            hard.cancel()
            drained.cancel()
        for job_id, run in list(self._running.items()):
            if run.task is not None and not run.task.done():
                self.stop_job(job_id, "handback")
        return tasks

    async def _write_back(
        self, tasks: list[asyncio.Task[None]], loops: list[asyncio.Task[None]]
    ) -> None:
        """Record the outcomes, hand the stopped jobs back, end `loops` and leave the registry."""
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._outcomes.drain(SETTLE_SECONDS)
        handback = [(j, r.delivery.lease) for j, r in self._running.items() if r.stop == "handback"]
        try:
            released = await self._scripts.release(self.keys, self.id, handback)
            if released:
                log.info("handed %d jobs back", released)
            # The heartbeat refreshes the registry entry: a refresh still in flight would put
            # it back after the deregistration, for three lease TTLs.
            await cancel_and_wait(loops)
            await self._leases.deregister()
            if not await self._redis.xpending_range(self.keys.ready, GROUP, "-", "+", 1, self.id):
                await self._redis.xgroup_delconsumer(self.keys.ready, GROUP, self.id)
        except (RedisError, OSError) as exc:
            log.warning("could not hand jobs back (%s): they return after lease_ttl", exc)

    async def _settle(self, writes: Coroutine[Any, Any, None]) -> None:
        """Run `writes` for SETTLE_SECONDS at most, HARD_STOP_SECONDS after a hard stop."""
        task = asyncio.create_task(writes)
        hard = asyncio.create_task(self._hard_stop.wait())
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
        for run in self._running.values():  # a job still recording its outcome, or one
            if run.task is not None:  # that ignores its cancellation
                run.task.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _close(self) -> None:
        if self.backend.embedded:
            self.backend.remove_waker(self.keys.queue, self._fetcher.wake)
        for executor in self.executors.all():
            closer = getattr(executor, "aclose", None)
            if closer is not None:
                await closer()
        await self._subscriber.aclose()
        for redis in (self._reader, self._beat_redis, self._redis):
            # Closing waits CONNECT_TIMEOUT at most, and says so by raising: nothing to do then.
            with contextlib.suppress(RedisError, OSError):
                await redis.aclose()
        log.info("worker %s stopped", self.id)
