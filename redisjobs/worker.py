"""The consumer side: fetch jobs, run them through executors, record each outcome once.

One fetcher per worker (:mod:`redisjobs.fetcher`) reads the queue's stream in batches of the
free :mod:`~redisjobs.slots` and leases each batch with one `start` call. Each job runs in its
own task (:mod:`redisjobs.runs`); outcomes go through :mod:`redisjobs.outcomes`, which records
the successes that finish together with one `complete` call, so the Redis round trips per job
stay well under one. Leases, reclaim and presence live in :mod:`redisjobs.leases`, promotion of
due jobs in :mod:`redisjobs.scheduler`, the connections and the stop in
:mod:`redisjobs.session`. Shutdown is graceful (docs/architecture.md, "Shutdown"): stop
fetching, let running jobs finish within `grace_period`, hand the rest back at once.

A burst worker (``burst=True``, ``redisjobs worker --burst``) stops by itself, as on SIGTERM,
once its queue has nothing ready and it runs nothing, as RQ's ``--burst`` does: jobs pending or
delayed whose due time has come are run first; jobs scheduled for later (retries waiting out
their backoff included) are not waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Self

from redis.exceptions import RedisError

from .arbiter import Arbiter, QueueOrder, queue_order
from .connection import Backend, Backoff, resolve_url
from .durability import Durability, durability
from .executors import ExecContext, Executor, Executors
from .executors.call import CallExecutor
from .keys import QueueKeys
from .presence import Presence
from .runs import JOB_OBSERVERS
from .serialization import DEFAULT_MAX_PAYLOAD_BYTES
from .session import FETCH_STOP_SECONDS, HARD_STOP_SECONDS, SETTLE_SECONDS, STOP_MARGIN, Session
from .siblings import Siblings
from .slots import Slots

if TYPE_CHECKING:
    from .app import App
    from .limits import TaskLimit
    from .schedule_spec import ScheduleSpec

__all__ = ["FETCH_STOP_SECONDS", "HARD_STOP_SECONDS", "JOB_OBSERVERS", "SETTLE_SECONDS"]
__all__ += ["STOP_MARGIN", "Worker"]

log = logging.getLogger("redisjobs.worker")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _batch(concurrency: int, batch_size: int | None, max_deliveries: int, *seconds: float) -> int:
    """The batch size (default: `concurrency`), once the worker's numbers are checked."""
    batch = batch_size or concurrency
    if min(concurrency, batch, max_deliveries) < 1 or min(seconds) <= 0:
        raise ValueError(
            "need concurrency, batch_size and max_deliveries >= 1, lease_ttl and poll_interval > 0"
        )
    return batch


class Worker:
    """Runs the jobs of one queue, or of several sharing one concurrency.

    Args:
        url: Redis URL (see :class:`~redisjobs.Client`); default: the `app`'s, else
            ``$REDIS_URL``, else ``memory://`` with the Client's warning.
        queue: the queue to serve (default: `queues`).
        queues: several queues sharing one `concurrency`: a sequence of names serves them in
            strict order (a queue only while those before it have nothing ready), a mapping
            name -> weight (an integer >= 1) gives free slots to the queues that have work in
            the ratio of their weights (see :mod:`redisjobs.arbiter`). Default: every queue of
            the `app`'s tasks, with equal weights, else ``default``. Each queue keeps its own
            leases, reclaim, pause, burst and registry entry; all share the executors.
        partitions: the partitions of each queue (a count, or queue -> count), each served
            with an equal share of its queue's slots (:mod:`redisjobs.partitions`).
        app: an :class:`~redisjobs.App` whose tasks the ``call`` executor runs, each by its
            registered name (and in a child process for ``isolation="process"``); the
            schedules its tasks declare are upserted when the worker starts.
        functions: callables the ``call`` executor may run (a list, or a name -> callable map).
        modules: modules whose callables the ``call`` executor may run by ``module:name``.
        executors: more executors (http, subprocess, ssh, your own), one per kind.
        concurrency: jobs run at once (over all its queues).
        batch_size: jobs leased per fetch at most (default: every free slot). A small batch
            spreads a burst over more workers; a large one costs fewer round trips.
        lease_ttl: seconds without a heartbeat after which other workers take a job over.
        poll_interval: seconds between polls where Redis cannot block, and of a burst worker.
        grace_period: seconds running jobs get to finish on shutdown before being handed back.
        max_deliveries: a job whose runs killed this many workers fails for good.
        reclaim_interval: seconds between reclaim ticks (default ``min(lease_ttl / 2, 5)``).
        worker_id: the consumer name (default host-pid-random).
        handle_signals: stop gracefully on SIGTERM/SIGINT (a second one hands back at once).
        context_class: the ExecContext (sub)class executors get (a face's own flavour of it).
        max_payload_bytes: a job whose payload is larger fails (also checked on enqueue).
        burst: stop once the queue has no job ready and none runs here (see the module's doc).
        max_processes: child processes at once at most for ``isolation="process"`` tasks
            (default: the CPU count); see :class:`~redisjobs.executors.CallExecutor`.
        inject: values the ``call`` executor this worker makes passes to functions that
            declare a parameter of their name (see :class:`~redisjobs.executors.CallExecutor`).
        durable: an outcome is recorded once a replica confirmed it (``WAIT``), retried until
            then; or a :class:`~redisjobs.durability.Durability` (see the Client's `durable`).
    """

    _session: Session | None  # while connected
    _run_task: asyncio.Task[None] | None
    _loops: list[asyncio.Task[None]]

    def __init__(
        self,
        url: str | None = None,
        *,
        queue: str | None = None,
        queues: QueueOrder | None = None,
        partitions: int | Mapping[str, int] = 1,
        app: App | None = None,
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
        burst: bool = False,
        inject: Mapping[str, Any] | None = None,
        max_processes: int | None = None,
        durable: bool | Durability = False,
    ) -> None:
        self.batch_size = _batch(concurrency, batch_size, max_deliveries, lease_ttl, poll_interval)
        self.backend = Backend(resolve_url(url or (app.url if app else None), warn_private=True))
        self.keys = QueueKeys(next(iter(order := queue_order(queue, queues, app, partitions))))
        self.concurrency, self.lease_ttl, self.poll_interval = concurrency, lease_ttl, poll_interval
        self.grace_period, self.max_deliveries = grace_period, max_deliveries
        self.reclaim_interval = reclaim_interval or min(lease_ttl / 2, 5.0)
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.handle_signals, self.burst = handle_signals, burst
        self.context_class, self.max_payload_bytes = context_class, max_payload_bytes
        self.durable = durability(durable, embedded=self.backend.embedded)
        self.executors, self._app = Executors(executors), app
        if "call" not in self.executors:
            call = CallExecutor(
                functions, modules=modules, inject=inject, max_processes=max_processes
            )
            self.executors.add(app.register(call) if app is not None else call)
        lanes = Arbiter(concurrency, self.batch_size, order).lanes if len(order) > 1 else []
        self.slots: Slots = lanes[0] if lanes else Slots(concurrency, self.batch_size)
        self._session, self._run_task, self._loops = None, None, []
        self._stop_requested, self._hard_stop, self._ready = (asyncio.Event() for _ in range(3))
        self._done, self._burst_done, self._ready_at = False, False, 0.0  # loop time it was ready
        self.presence = Presence(lambda: self.executors.allowed, self.quiet, self.stop)
        self._siblings = Siblings.of(self, lanes[1:])

    # -- public control -------------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Ask the worker to stop: gracefully, or with `now` hand running jobs back at once."""
        self._stop_requested.set()
        if now:
            self._hard_stop.set()
        self._siblings.stop(now=now)

    def quiet(self) -> None:
        """Take no more jobs (Sidekiq's quiet): those running finish and are recorded, and the
        worker stays, heartbeating and not ready, until stopped."""
        for worker in (self, *self._siblings.workers):
            worker.presence.quieted = True
            if worker._session is not None:
                worker._session.quiet()

    async def wait_ready(self) -> None:
        """Return once the worker is connected and fetching."""
        await self._ready.wait()
        await self._siblings.wait_ready()

    @property
    def queues(self) -> list[str]:
        """The queues it serves."""
        return [self.keys.queue, *(s.keys.queue for s in self._siblings.workers)]

    @property
    def ready(self) -> bool:
        """Connected and fetching, and not stopping (what a readiness probe asks)."""
        return not self.unready()

    def unready(self) -> list[str]:
        """Its queues that are not :attr:`ready` (each queue's worker judged alone)."""
        stopping = self.slots.closed or self._stop_requested.is_set() or self.presence.quieted
        alone = self._ready.is_set() and not stopping
        return ([] if alone else [self.keys.queue]) + self._siblings.unready()

    def unhealthy(self) -> str | None:
        """Why the worker is not healthy (what a liveness probe asks), or None when it is.

        Unhealthy: not connected yet, stopped, one of its loops died, or no heartbeat got
        through to Redis for longer than `lease_ttl` (its leases may be others' by now); for
        a worker over several queues, the first of its queues that is (see :meth:`health`).
        """
        for queue, why in self.health().items():
            if why is not None:
                return why if queue == self.keys.queue else f"queue {queue!r}: {why}"
        return None

    def health(self) -> dict[str, str | None]:
        """Each of its queues -> why that queue's worker, judged alone, is unhealthy, or None."""
        return {self.keys.queue: self._unhealthy_alone(), **self._siblings.health()}

    def _unhealthy_alone(self) -> str | None:
        if self._done:
            return "stopped"
        if self._session is None or not self._ready.is_set():
            return "not connected to Redis yet"
        for task in self._loops:
            if task.done() and not self.slots.closed:
                return f"its {task.get_name()} loop ended"
        last = self._session.leases.last_contact
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

    # -- what it runs ---------------------------------------------------------------------------

    @property
    def hung_threads(self) -> int:
        """Threads still running code of jobs that were stopped: timed out, cancelled or lost.

        Python cannot interrupt a thread, so a blocking function outlives its job's timeout; each
        such thread keeps one of the executor's `max_threads`. Also in the worker's registry
        entry.
        """
        return self.executors.hung_threads

    @property
    def busy(self) -> int:
        """Jobs this worker is running now."""
        return self.slots.running + self._siblings.busy

    def context(self, job_id: str) -> ExecContext | None:
        """The context of a job running on this worker now (None: not running here)."""
        ctx = None if self._session is None else self._session.runs.context(job_id)
        return ctx or self._siblings.context(job_id)

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the queue until :meth:`stop` (or SIGTERM/SIGINT, or, in burst mode, until
        nothing is left to run), then shut down gracefully.

        A stop asked for while Redis cannot be reached yet ends the wait for it at once.
        """
        # Before connecting: a worker waiting for its Redis must still stop on a signal.
        self._handle_signals(True)
        self._siblings.start(on_failure=self.stop)
        try:
            session = await self._connected()
            if session is not None:
                await self._serve(session)
        finally:
            if not self._burst_done:  # a burst sibling stops once its own queue is empty
                self._siblings.stop(now=self._hard_stop.is_set())
            failure = await self._siblings.finish()
            self._done = True
            self._handle_signals(False)
            log.info("worker %s stopped", self.id)
        if failure is not None:
            raise failure

    def _open(self) -> Session:
        return Session(
            self.backend,
            self.keys,
            self.id,
            slots=self.slots,
            executors=self.executors,
            lease_ttl=self.lease_ttl,
            poll_interval=self.poll_interval,
            max_deliveries=self.max_deliveries,
            reclaim_interval=self.reclaim_interval,
            context_class=self.context_class,
            max_payload_bytes=self.max_payload_bytes,
            declared=self._declared(),
            durable=self.durable,
            presence=self.presence,
        )

    def _declared(self) -> list[ScheduleSpec | TaskLimit]:
        """What the worker's app declares for its queue: schedules, then task limits."""
        if self._app is None:
            return []
        queue = self.keys.queue
        return [*self._app.schedules(queue), *self._app.limits(queue)]

    async def _connected(self) -> Session | None:
        """Connect, retrying until Redis answers; None when a stop came first."""
        session = self._open()
        connecting = asyncio.create_task(session.connect())
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
            await session.close()
            return None
        connecting.result()  # a bug in connecting is the worker's error
        self._session = session
        return session

    async def _serve(self, session: Session) -> None:
        self._loops = loops = [
            asyncio.create_task(session.fetcher.run(), name="fetch"),
            asyncio.create_task(session.leases.heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(session.leases.reclaim_loop(), name="reclaim"),
            asyncio.create_task(session.courier.run(), name="handover"),
            asyncio.create_task(session.scheduler.run(), name="promote"),
            asyncio.create_task(session.schedules.run(), name="schedules"),
            asyncio.create_task(session.control_loop(), name="control"),
        ]
        if self.burst:
            loops.append(asyncio.create_task(self._burst_loop(session), name="burst"))
        self._ready_at = asyncio.get_running_loop().time()
        self._ready.set()
        log.info("worker %s serving queue %r on %s", self.id, self.keys.queue, self.backend.masked)
        stop = asyncio.create_task(self._stop_requested.wait())
        try:
            await asyncio.wait([stop, *loops], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            await session.shutdown(loops, self.grace_period, self._hard_stop)
        for task in loops:  # a loop that died on a bug must not pass silently
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _burst_loop(self, session: Session) -> None:
        """Stop the worker, as a signal would, once nothing is left to run (burst mode)."""
        backoff = Backoff(f"burst {self.keys.queue}", log)
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                idle = await session.idle()
            except (RedisError, OSError) as exc:
                await backoff.failed(exc)
                continue
            backoff.ok()
            if idle:
                log.info("burst: nothing left to run on queue %r: stopping", self.keys.queue)
                self._burst_done = True
                self._stop_requested.set()  # not the siblings': each stops when it is idle
                await asyncio.Event().wait()  # ended with the other loops

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
