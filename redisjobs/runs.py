"""The jobs one worker holds: launch each in a task, stop it, and record its outcome once.

A job leased by the fetcher or the reclaim loop becomes a :class:`Run` here, in one of the
worker's :class:`~redisjobs.slots.Slots`. Its executor runs it under the job's timeout (and
the worker's span, when tracing is on); what it returned or raised becomes an outcome for
:mod:`redisjobs.outcomes`. A run can be stopped from outside, for a :data:`StopReason`: a
cancel request records it cancelled, a lost lease or a hand-back records nothing (the job is
someone else's now, or goes back to the queue).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any, Literal, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from . import tracing
from .errors import (
    Declined,
    ExecutorError,
    JobTimeout,
    PayloadTooLarge,
    RateLimited,
    Retry,
    SerializationError,
    UnknownExecutor,
)
from .executors import ExecContext, Executors
from .keys import QueueKeys
from .outcomes import Deferral, Ending, Failure, Outcomes
from .presence import Presence
from .scheduler import Scheduler
from .scripts import Delivery, Scripts
from .serialization import pack_float, packb, unpackb
from .slots import Slots

log = logging.getLogger("redisjobs.worker")

ERROR_MAX_CHARS = 2000

StopReason = Literal["cancel", "lost", "handback"]
"""Why a held job was stopped: ``cancel`` (requested: recorded cancelled), ``lost`` (its lease
may be another worker's: record nothing), ``handback`` (the worker stops: back to the queue)."""

JOB_OBSERVERS: list[Callable[[str, str, str, str, float], None]] = []
"""Called with (queue, kind, name, outcome, seconds) when a run ends, outcome ``completed``,
``failed``, ``cancelled`` or ``deferred`` (it raised RateLimited)
(:func:`redisjobs.metrics.enable_job_durations` adds one). `name`
is the function a ``call`` job ran as its executor resolved it (``ExecContext.function``), so
only names the worker allows; the kind for other kinds and for a payload naming no allowed
function. While the list is empty a run does not even read the clock."""


CANCELLED = Failure("cancel", "cancelled")


def _clip(text: str) -> str:
    return text if len(text) <= ERROR_MAX_CHARS else text[: ERROR_MAX_CHARS - 1] + "…"


def _describe(exc: BaseException) -> str:
    return _clip(f"{type(exc).__name__}: {exc}")


_EXPECTED = (Retry, RateLimited, Declined, UnknownExecutor, SerializationError, ExecutorError)
"""What a run raises to fail with a message that says it all (no traceback in the job's log)."""


def failure_of(exc: BaseException) -> Ending:
    """The failure (or deferral) to record for what a run raised."""
    if isinstance(exc, RateLimited):
        return Deferral(round(exc.retry_after * 1000), exc.pause)
    if isinstance(exc, Declined):
        return Deferral(round(exc.retry_after * 1000), counted=False)
    if isinstance(exc, Retry):
        # `raise Retry(...) from exc` keeps what went wrong as the error
        cause = exc.__cause__
        error = "retry requested" if cause is None else _describe(cause)
        return Failure("error", error, -1 if exc.defer is None else round(exc.defer * 1000))
    if isinstance(exc, JobTimeout):
        return Failure("timeout", str(exc))
    if isinstance(exc, UnknownExecutor | SerializationError):
        return Failure("fatal", _describe(exc))  # retrying cannot help
    if isinstance(exc, ExecutorError):  # an expected failure: its message says it all
        return Failure("error" if exc.retryable else "fatal", _clip(str(exc)))
    return Failure("error", _describe(exc))


class Run:
    """A job this worker holds: leased, maybe executing, outcome maybe not yet recorded."""

    __slots__ = ("ctx", "delivery", "logged", "stop", "task")

    def __init__(self, delivery: Delivery, ctx: ExecContext) -> None:
        self.delivery = delivery
        self.ctx = ctx
        self.stop: StopReason | None = None
        self.task: asyncio.Task[None] | None = None
        self.logged = False
        """It wrote log lines (its outcome then sets the log key's expiry with the job's)."""

    @property
    def active(self) -> bool:
        """Its task still runs (executing, or recording its outcome)."""
        return self.task is not None and not self.task.done()


class Runs:
    """The held jobs of one worker, and the :class:`~redisjobs.executors.JobHost` of their
    contexts.

    Args:
        redis: the command connection (tracing reads a job's trace context with it).
        scripts: the scripts (progress is written under the job's lease).
        keys: the queue.
        worker_id: the worker.
        slots: the worker's slots; a launched job takes one, and frees it when it ends.
        executors: the executors, by kind.
        scheduler: woken when a failed run is to be retried, to promote it when due.
        context_class: the ExecContext (sub)class executors get.
        max_payload_bytes: a job whose payload is larger fails.
        presence: counts the runs that ended (completed, or raised) for the registry entry.
    """

    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        keys: QueueKeys,
        worker_id: str,
        *,
        slots: Slots,
        executors: Executors,
        scheduler: Scheduler,
        context_class: type[ExecContext],
        max_payload_bytes: int,
        presence: Presence,
    ) -> None:
        self._redis = redis
        self._presence = presence
        self._scripts = scripts
        self._keys = keys
        self._slots = slots
        self._executors = executors
        self._scheduler = scheduler
        self._context_class = context_class
        self._max_payload_bytes = max_payload_bytes
        self.held: dict[str, Run] = {}
        self.outcomes = Outcomes(redis, scripts, keys, worker_id, self._recorded)

    # -- what the lease loops see (LeaseHolder) -------------------------------------------------

    def held_leases(self) -> list[tuple[str, int]]:
        """(job id, lease) of the jobs this worker holds."""
        return [(j, r.delivery.lease) for j, r in self.held.items() if r.stop != "lost"]

    @property
    def hung_threads(self) -> int:
        """Threads of stopped jobs still running (see :attr:`redisjobs.Worker.hung_threads`)."""
        return self._executors.hung_threads

    def context(self, job_id: str) -> ExecContext | None:
        """The context of a job running here, or None."""
        run = self.held.get(job_id)
        return run.ctx if run is not None and run.active else None

    def active_tasks(self) -> list[asyncio.Task[None]]:
        """The tasks of the held jobs that still run."""
        return [r.task for r in self.held.values() if r.task is not None and not r.task.done()]

    def stop_job(self, job_id: str, reason: StopReason) -> None:
        """Stop a held job: ``cancel`` records it cancelled, ``lost`` and ``handback`` nothing."""
        run = self.held.get(job_id)
        if run is None:
            return
        if reason == "cancel":
            run.ctx.request_cancel()
        if run.stop is None and run.active:
            assert run.task is not None
            run.stop = reason
            run.task.cancel()
        elif reason == "lost" and run.task is not None and run.task.done():
            run.stop = reason

    def launch(self, delivery: Delivery) -> None:
        """Run a job leased to this worker."""
        held = self.held.get(delivery.job_id)
        if held is not None and held.delivery.lease == delivery.lease:
            return  # handed over twice (a re-sent start after a reclaim took it): it runs
        ctx = self._context_class(
            self,
            job_id=delivery.job_id,
            queue=self._keys.queue,
            kind=delivery.kind,
            attempt=delivery.attempt,
            lease=delivery.lease,
        )
        run = Run(delivery, ctx)
        self.held[delivery.job_id] = run
        self._slots.take()
        run.task = asyncio.create_task(self._execute(run))

    # -- JobHost --------------------------------------------------------------------------------

    def write_log(self, job_id: str, line: str) -> None:
        """Buffer a job's log line; it is written with the next flush."""
        run = self.held.get(job_id)
        if run is not None:
            run.logged = True
        self.outcomes.log_line(job_id, line)

    async def write_progress(self, ctx: ExecContext) -> None:
        """Record a job's progress under its lease."""
        try:
            await self._scripts.progress(
                self._keys,
                ctx.job_id,
                ctx.lease,
                ctx.progress,
                pack_float(ctx.progress),
                ctx.progress_message or "",
            )
        except (RedisError, OSError) as exc:
            log.debug("progress of job %s not recorded: %s", ctx.job_id, exc)

    async def read_parents(self, job_id: str) -> dict[bytes, bytes]:
        """The results (and ignored failures) of the jobs a job waited for."""
        raw: Any = await self._redis.hgetall(self._keys.job_results(job_id))
        return cast(dict[bytes, bytes], raw)

    # -- one run --------------------------------------------------------------------------------

    async def _invoke(self, run: Run) -> Any:
        d = run.delivery
        executor = self._executors.get(d.kind)
        if len(d.payload) > self._max_payload_bytes:
            raise PayloadTooLarge(
                f"payload is {len(d.payload)} bytes, over this worker's cap of "
                f"{self._max_payload_bytes} bytes (max_payload_bytes)"
            )
        payload = unpackb(d.payload)
        if not d.timeout_ms:
            return await executor.run(job_id=d.job_id, payload=payload, ctx=run.ctx)
        try:
            async with asyncio.timeout(d.timeout_ms / 1000) as deadline:
                return await executor.run(job_id=d.job_id, payload=payload, ctx=run.ctx)
        except TimeoutError:
            if deadline.expired():
                raise JobTimeout(f"timed out after {d.timeout_ms / 1000:g} s") from None
            raise

    async def _traced(self, run: Run) -> Any:
        """`_invoke` inside the worker's span, when a tracer provider is set."""
        span = await tracing.start_run_span(self._redis, self._keys, run.delivery)
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

    async def _execute(self, run: Run) -> None:
        result: bytes | None = None
        failure: Ending | None = None
        started = time.perf_counter() if JOB_OBSERVERS else 0.0  # no clock read when unobserved
        # Not even a function call for tracing unless the OpenTelemetry API is installed.
        runs = self._traced(run) if tracing.AVAILABLE else self._invoke(run)
        try:
            result = packb(await runs)
        except asyncio.CancelledError:
            if run.stop is None:
                raise
            if run.stop == "cancel":
                failure = CANCELLED
        except (Exception, SystemExit, KeyboardInterrupt) as exc:  # job code may call sys.exit()
            failure = self._failure(run, exc)
        finally:
            self._slots.release()
            if started:
                self._observe(run, started, result is not None, failure)
        await self._record(run, result, failure)

    def _failure(self, run: Run, exc: BaseException) -> Ending:
        if not isinstance(exc, _EXPECTED):  # a bug in the job: its traceback goes to its log
            self.write_log(run.delivery.job_id, "".join(traceback.format_exception(exc)).rstrip())
        return failure_of(exc)

    async def _record(self, run: Run, result: bytes | None, failure: Ending | None) -> None:
        """Record a run's outcome (none when it was handed back or lost)."""
        d = run.delivery
        if result is not None or failure is not None:
            await run.ctx.flush()  # progress held back by the throttle lands before the outcome
        if result is not None:
            self._presence.ended(failed=False)
            self.outcomes.success(d.job_id, d.lease, result, logged=run.logged)
        elif failure is not None:
            if not isinstance(failure, Deferral):  # a deferral is no run of its own
                self._presence.ended(failed=failure.mode != "cancel")
            outcome = await self.outcomes.failure(
                d.job_id, d.lease, failure, lambda: run.stop == "lost"
            )
            if outcome in ("retry", "deferred"):
                self._scheduler.wake()  # to promote it exactly when due
        if run.stop == "lost":
            self._recorded(d.job_id, d.lease)

    def _observe(self, run: Run, started: float, ok: bool, failure: Ending | None) -> None:
        """Report a run that ended with an outcome to the duration observers."""
        if ok:
            outcome = "completed"
        elif isinstance(failure, Deferral):
            outcome = "deferred"
        elif failure is not None:
            outcome = "cancelled" if failure.mode == "cancel" else "failed"
        else:
            return  # handed back or lost: no outcome of its own
        seconds = time.perf_counter() - started
        kind = run.delivery.kind
        name = run.ctx.function or kind
        for observe in JOB_OBSERVERS:
            observe(self._keys.queue, kind, name, outcome, seconds)

    def _recorded(self, job_id: str, lease: int) -> None:
        run = self.held.get(job_id)
        if run is not None and run.delivery.lease == lease:
            del self.held[job_id]
