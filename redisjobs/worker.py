"""The consumer side: fetch jobs, run them through executors, record each outcome once.

One fetcher per worker reads the queue's stream with XREADGROUP in batches of the free slots
(BLOCK on Redis; a jittered poll on the embedded backend) and leases the batch with one `start`
call. Each job runs in its own task; successes are collected and recorded together by one
`complete` call per flush, so the Redis round trips per job stay well under one. Leases,
reclaim and presence live in :mod:`redisjobs.leases`, promotion of due jobs in
:mod:`redisjobs.scheduler`. Shutdown is graceful (DESIGN.md, "Leases and delivery guarantees"):
stop fetching, let running jobs finish within `grace_period`, hand the rest back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from .connection import Backend, Backoff, resolve_url
from .errors import Retry, SerializationError, UnknownExecutor
from .events import RECHECK, Subscriber
from .executors import ExecContext, Executor, Executors
from .executors.call import CallExecutor
from .keys import GROUP, QueueKeys
from .leases import Leases
from .scheduler import Scheduler
from .scripts import Delivery, Scripts
from .serialization import pack_float, packb, unpackb

log = logging.getLogger("redisjobs.worker")

LOG_LINES_KEPT = 1000
LOG_TTL_MS = 7 * 86400 * 1000  # until the job finishes and its result_ttl takes over
ERROR_MAX_CHARS = 2000


class _JobTimeout(Exception):
    pass


class _Run:
    """A job this worker holds: leased, maybe executing, outcome maybe not yet recorded."""

    __slots__ = ("ctx", "delivery", "stop", "task")

    def __init__(self, delivery: Delivery, ctx: ExecContext) -> None:
        self.delivery = delivery
        self.ctx = ctx
        self.stop: str | None = None  # why it was stopped: 'cancel' | 'lost' | 'handback'
        self.task: asyncio.Task[None] | None = None


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= ERROR_MAX_CHARS else text[: ERROR_MAX_CHARS - 1] + "…"


class Worker:
    """Runs the jobs of one queue.

    Args:
        url: Redis URL (see :class:`~redisjobs.Client`); ``$REDIS_URL`` or ``memory://``.
        queue: the queue to serve.
        functions: callables the ``call`` executor may run (a list, or a name -> callable map).
        modules: modules whose callables the ``call`` executor may run by ``module:name``.
        executors: more executors (http, subprocess, ssh, your own), one per kind.
        concurrency: jobs run at once.
        lease_ttl: seconds without a heartbeat after which other workers take a job over.
        poll_interval: seconds between polls where Redis cannot block (the embedded backend).
        grace_period: seconds running jobs get to finish on shutdown before being handed back.
        max_deliveries: a job whose runs killed this many workers fails for good.
        reclaim_interval: seconds between reclaim ticks (default ``min(lease_ttl / 2, 5)``).
        worker_id: the consumer name (default host-pid-random).
        handle_signals: stop gracefully on SIGTERM/SIGINT (a second one hands back at once).
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
        lease_ttl: float = 30.0,
        poll_interval: float = 0.5,
        grace_period: float = 30.0,
        max_deliveries: int = 5,
        reclaim_interval: float | None = None,
        worker_id: str | None = None,
        handle_signals: bool = True,
    ) -> None:
        if concurrency < 1 or lease_ttl <= 0 or poll_interval <= 0 or max_deliveries < 1:
            raise ValueError(
                "need concurrency >= 1, lease_ttl > 0, poll_interval > 0, max_deliveries >= 1"
            )
        self.backend = Backend(resolve_url(url))
        self.keys = QueueKeys(queue)
        self.concurrency = concurrency
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.grace_period = grace_period
        self.max_deliveries = max_deliveries
        self.reclaim_interval = reclaim_interval or min(lease_ttl / 2, 5.0)
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.handle_signals = handle_signals
        self.executors = Executors(executors)
        if "call" not in self.executors:
            self.executors.add(CallExecutor(functions, modules=modules))
        self._running: dict[str, _Run] = {}
        self._active = 0
        self._done: list[tuple[str, int, bytes]] = []
        self._logs: dict[str, list[str]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._stop_requested = asyncio.Event()
        self._hard_stop = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._fetch_blocked = False
        self._stopping = False
        self._run_task: asyncio.Task[None] | None = None

    # -- public control -------------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Ask the worker to stop: gracefully, or with `now` hand running jobs back at once."""
        self._stop_requested.set()
        if now:
            self._hard_stop.set()

    async def wait_ready(self) -> None:
        """Return once the worker is connected and fetching."""
        await self._ready.wait()

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

    def free_slots(self) -> int:
        """Slots free for more jobs (0 while stopping)."""
        return 0 if self._stopping else self.concurrency - self._active

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
        ctx = ExecContext(
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
        self._logs.setdefault(job_id, []).append(line)
        self._schedule_flush()

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

    async def _execute(self, run: _Run) -> None:
        d = run.delivery
        result: bytes | None = None
        failure: tuple[str, str, int] | None = None
        try:
            result = packb(await self._invoke(run))
        except asyncio.CancelledError:
            if run.stop is None:
                raise
            if run.stop == "cancel":
                failure = ("cancel", "cancelled", -1)
        except Retry as exc:
            defer = -1 if exc.defer is None else round(exc.defer * 1000)
            failure = ("error", "retry requested", defer)
        except (UnknownExecutor, SerializationError) as exc:
            failure = ("fatal", _describe(exc), -1)
        except Exception as exc:
            failure = ("error", _describe(exc), -1)
            self.write_log(d.job_id, "".join(traceback.format_exception(exc)).rstrip())
        finally:
            self._active -= 1
            self._slot_free.set()
        if result is not None:
            await run.ctx.flush()  # progress held back by the throttle lands before the outcome
            self._done.append((d.job_id, d.lease, result))
            self._schedule_flush()
        elif failure is not None:
            await run.ctx.flush()
            await self._record_failure(run, *failure)
        elif run.stop == "lost":
            self._forget(run)

    async def _record_failure(self, run: _Run, mode: str, error: str, defer_ms: int) -> None:
        d = run.delivery
        backoff = Backoff(f"record failure of {d.job_id}", log)
        while run.stop != "lost":
            try:
                await self._write_logs()
                outcome, _ = await self._scripts.fail(
                    self.keys, self.id, d.job_id, d.lease, error, mode=mode, defer_ms=defer_ms
                )
            except (RedisError, OSError) as exc:
                await backoff.failed(exc)
                continue
            if outcome == "retry":
                self._scheduler.wake()
            elif outcome == "stale":
                log.info("outcome of job %s rejected: another worker owns it now", d.job_id)
            elif outcome == "failed":
                log.warning("job %s failed: %s", d.job_id, error)
            break
        self._forget(run)

    def _forget(self, run: _Run) -> None:
        if self._running.get(run.delivery.job_id) is run:
            del self._running[run.delivery.job_id]

    # -- recording successes --------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        backoff = Backoff(f"record results on {self.keys.queue}", log)
        while self._done or self._logs:
            batch, self._done = self._done, []
            try:
                await self._write_logs()
                codes = await self._scripts.complete(self.keys, self.id, batch) if batch else []
            except (RedisError, OSError) as exc:
                self._done[:0] = batch
                await backoff.failed(exc)
                continue
            backoff.ok()
            for (job_id, lease, _), code in zip(batch, codes, strict=True):
                if code == 0:
                    log.info("result of job %s rejected: another worker owns it now", job_id)
                run = self._running.get(job_id)
                if run is not None and run.delivery.lease == lease:
                    del self._running[job_id]

    async def _write_logs(self) -> None:
        if not self._logs:
            return
        logs, self._logs = self._logs, {}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id, lines in logs.items():
                    key = self.keys.job_log(job_id)
                    pipe.rpush(key, *lines)
                    pipe.ltrim(key, -LOG_LINES_KEPT, -1)
                    pipe.pexpire(key, LOG_TTL_MS)
                await pipe.execute()
        except BaseException:
            for job_id, lines in logs.items():
                self._logs.setdefault(job_id, [])[:0] = lines
            raise

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the queue until :meth:`stop` (or SIGTERM/SIGINT), then shut down gracefully."""
        await self._connect()
        loops = [
            asyncio.create_task(self._fetch_loop(), name="fetch"),
            asyncio.create_task(self._leases.heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self._leases.reclaim_loop(), name="reclaim"),
            asyncio.create_task(self._scheduler.run(), name="promote"),
            asyncio.create_task(self._control_loop(), name="control"),
        ]
        self._install_signals()
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
        self._redis: Redis = self.backend.client()
        block = 0 if not self.backend.can_block else 2000
        self._block_ms = block
        self._reader: Redis = self.backend.client(socket_timeout=block / 1000 + 5)
        self._scripts = Scripts(self._redis, embedded=self.backend.embedded)
        self._subscriber = Subscriber(self._redis)
        backoff = Backoff(f"worker {self.id} start", log)
        while True:
            try:
                await self._redis.ping()
                await self._ensure_group()
                break
            except (RedisError, OSError) as exc:
                await backoff.failed(exc)
        await self._check_server()
        self._leases = Leases(
            self,
            worker_id=self.id,
            redis=self._redis,
            scripts=self._scripts,
            keys=self.keys,
            lease_ttl=self.lease_ttl,
            max_deliveries=self.max_deliveries,
            reclaim_interval=self.reclaim_interval,
            concurrency=self.concurrency,
        )
        on_promoted = (
            (lambda: self.backend.wake(self.keys.queue)) if self.backend.embedded else None
        )
        self._scheduler = Scheduler(self._scripts, self.keys, on_promoted=on_promoted)
        if self.backend.embedded:
            self.backend.add_waker(self.keys.queue, self._wake)
        await self._leases.register(0)

    async def _ensure_group(self) -> None:
        try:
            # From id 0, so jobs enqueued before any worker existed are served too.
            await self._redis.xgroup_create(self.keys.ready, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _check_server(self) -> None:
        if self.backend.embedded:
            return
        try:
            conf = await self._redis.config_get("maxmemory-policy")
            aof = await self._redis.config_get("appendonly")
        except RedisError:
            return  # CONFIG may be renamed or forbidden by ACL; the checks are advice only
        # redis-py decodes CONFIG GET replies to str whatever decode_responses says
        policy = conf.get("maxmemory-policy", "noeviction")
        if policy != "noeviction":
            log.warning(
                "Redis maxmemory-policy is %s: Redis may evict job data and lose jobs; "
                "set it to noeviction",
                policy,
            )
        if aof.get("appendonly") == "no":
            log.warning("Redis runs without AOF: a Redis crash loses every job it holds")

    def _install_signals(self) -> None:
        if not self.handle_signals:
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        now = self._stop_requested.is_set()
        log.info("%s: %s", sig.name, "handing jobs back now" if now else "stopping gracefully")
        self.stop(now=now)

    # -- fetching -------------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        backoff = Backoff(f"fetch {self.keys.queue}", log)
        while not self._stopping:
            free = self.concurrency - self._active
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            self._wake.clear()
            try:
                self._fetch_blocked = True
                reply: Any = await self._reader.xreadgroup(
                    GROUP, self.id, {self.keys.ready: ">"}, count=free, block=self._block_ms
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                log.warning(
                    "consumer group of %s is gone (Redis restarted?); recreating", self.keys.queue
                )
                await self._recreate_group(backoff)
                continue
            except (RedisError, OSError) as exc:
                await backoff.failed(exc)
                continue
            finally:
                self._fetch_blocked = False
            backoff.ok()
            if reply:
                await self._start(reply[0][1], backoff)
            elif not self.backend.can_block:
                await self._idle()

    async def _recreate_group(self, backoff: Backoff) -> None:
        try:
            await self._ensure_group()
        except (RedisError, OSError) as exc:
            await backoff.failed(exc)

    async def _idle(self) -> None:
        # The embedded backend cannot block: poll, jittered, but wake at once when this
        # process enqueues or promotes a job.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.poll_interval * random.uniform(0.5, 1.5))

    async def _start(self, raw: list[Any], backoff: Backoff) -> None:
        entries = [
            (mid.decode(), (fields or {}).get(b"id", b"").decode("utf-8", "replace"))
            for mid, fields in raw
        ]
        while True:
            try:
                deliveries = await self._scripts.start(self.keys, self.id, entries)
                break
            except (RedisError, OSError) as exc:
                # start is safe to re-send: jobs it already leased to us come back unchanged.
                await backoff.failed(exc)
        for delivery in deliveries:
            self.launch(delivery)

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

    async def _shutdown(self, loops: list[asyncio.Task[None]]) -> None:
        self._stopping = True
        fetch = loops[0]
        if self._fetch_blocked:
            fetch.cancel()  # blocked in XREADGROUP; entries it may have read are released below
        self._slot_free.set()
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
            await fetch
        await self._drain()
        if self._flusher is not None:
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await asyncio.wait_for(self._flusher, self.lease_ttl)
        handback = [(j, r.delivery.lease) for j, r in self._running.items() if r.stop == "handback"]
        try:
            released = await self._scripts.release(self.keys, self.id, handback)
            if released:
                log.info("handed %d jobs back", released)
            await self._leases.deregister()
            if not await self._redis.xpending_range(self.keys.ready, GROUP, "-", "+", 1, self.id):
                await self._redis.xgroup_delconsumer(self.keys.ready, GROUP, self.id)
        except (RedisError, OSError) as exc:
            log.warning("could not hand jobs back (%s): they return after lease_ttl", exc)
        for task in loops[1:]:
            task.cancel()
        await asyncio.gather(*loops[1:], return_exceptions=True)
        await self._close()

    async def _drain(self) -> None:
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
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _close(self) -> None:
        if self.backend.embedded:
            self.backend.remove_waker(self.keys.queue, self._wake)
        for executor in self.executors.all():
            closer = getattr(executor, "aclose", None)
            if closer is not None:
                await closer()
        await self._subscriber.aclose()
        await self._reader.aclose()
        await self._redis.aclose()
        log.info("worker %s stopped", self.id)
