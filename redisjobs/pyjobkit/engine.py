"""The Pyjobkit face's ``Engine``: enqueue and inspect jobs (see :mod:`redisjobs.pyjobkit`)."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from ..client import Client
from ..options import DEFAULT_PRIORITY
from ..tracing import active as tracing_active
from .backends import Backend
from .backends.store import STATUS, checked_batch
from .contracts import EventBus, ExecContext, Executor, LogSink
from .engine_capacity import Capacity
from .engine_chain import enqueue_chain
from .engine_context import DefaultExecContext, ExecContextFactory
from .engine_marks import Router, mark_payload, route
from .events.local import LocalEventBus
from .logging.memory import MemoryLogSink
from .markers import (
    CHAIN_PAYLOAD_KEY,
    INTERNAL_PAYLOAD_KEYS,
    SHADOW_PAYLOAD_KEY,
    TAGS_PAYLOAD_KEY,
    strip_internal_payload,
)
from .retry import RetryPolicy
from .tracing import inject_trace_context, span
from .types import JobRecord

__all__ = [
    "CHAIN_PAYLOAD_KEY",
    "INTERNAL_PAYLOAD_KEYS",
    "SHADOW_PAYLOAD_KEY",
    "STATUS",
    "TAGS_PAYLOAD_KEY",
    "DefaultExecContext",
    "Engine",
    "Router",
    "strip_internal_payload",
]

log = logging.getLogger("pyjobkit.engine")

KIND = re.compile(r"[A-Za-z0-9_.-]+")

_BACKEND_CALLS = frozenset(
    {
        "claim_batch",
        "mark_running",
        "extend_lease",
        "succeed",
        "fail",
        "timeout",
        "retry",
        "reap_expired",
        "is_cancelled",
    }
)
"""What the engine passes straight to its backend, as Pyjobkit's does."""

_MARKS = ("shadow", "retry_policy", "tags", "webhooks")
"""The enqueue arguments that become payload markers."""


# -- the engine -----------------------------------------------------------------------------------


class Engine:
    """Enqueue and inspect jobs; the executors its workers run.

    Args:
        backend: :class:`MemoryBackend` or :class:`RedisBackend`.
        executors: the executors, one per kind.
        log_sink: also receives every line executors log (default: a
            :class:`~redisjobs.pyjobkit.logging.MemoryLogSink` of the last lines of recent jobs;
            the job's own log keeps them anyway).
        event_bus: also receives every progress report (default: a
            :class:`~redisjobs.pyjobkit.events.LocalEventBus`).
        default_max_attempts: runs in all of a job enqueued without ``max_attempts``.
        exec_context_factory: makes :meth:`make_ctx`'s contexts (default
            :class:`DefaultExecContext`).
        max_queue_size: at most this many jobs wait in the queue (for every producer: the
            queue's ``max_pending`` limit, checked by Redis with each write); an enqueue into
            a full queue waits for room.
        enqueue_timeout_s: how long it waits at most before raising TimeoutError (None: it
            raises at once, as in Pyjobkit).
        enqueue_check_interval_s: how often it looks again meanwhile.
    """

    def __init__(
        self,
        *,
        backend: Backend,
        executors: Iterable[Executor] = (),
        log_sink: LogSink | None = None,
        event_bus: EventBus | None = None,
        default_max_attempts: int = 3,
        exec_context_factory: ExecContextFactory | None = None,
        max_queue_size: int | None = None,
        enqueue_timeout_s: float | None = None,
        enqueue_check_interval_s: float = 0.1,
    ) -> None:
        if int(default_max_attempts) < 1:
            raise ValueError("default_max_attempts must be at least 1")
        self.backend = backend
        self.default_max_attempts = int(default_max_attempts)
        self._router: Router | None = None
        self._exec_context_factory = exec_context_factory or DefaultExecContext
        self.capacity = Capacity(max_queue_size, enqueue_timeout_s, enqueue_check_interval_s)
        self.executors: dict[str, Executor] = {}
        for executor in executors:
            self.register_executor(executor)
        self.log_sink: LogSink = log_sink or MemoryLogSink()
        self.event_bus: EventBus = event_bus or LocalEventBus()

    def register_executor(self, executor: Executor) -> None:
        """Add an executor for its kind (workers made afterwards run it).

        Raises:
            ValueError: a kind with other characters than letters, digits and ``_ . -``, or
                one another executor already has.
        """
        if not isinstance(executor.kind, str) or not KIND.fullmatch(executor.kind):
            raise ValueError("kind must contain only alphanumerics, dash, underscore, or dot")
        if executor.kind in self.executors:
            raise ValueError(f"duplicate executor kind registered: {executor.kind}")
        self.executors[executor.kind] = executor

    def register_plugins(self, *, only: Iterable[str] | None = None) -> list[Executor]:
        """Register the executors of installed plugins (see
        :mod:`redisjobs.pyjobkit.executors.plugins`); a kind already registered keeps its
        executor (the plugin's is skipped with a warning). Returns those registered."""
        from .executors.plugins import discover_executors

        added = []
        for executor in discover_executors(only=only):
            if executor.kind in self.executors:
                log.warning(
                    "skipping plugin executor for kind %r: already registered", executor.kind
                )
                continue
            self.register_executor(executor)
            added.append(executor)
        return added

    def set_router(self, router: Router | None) -> None:
        """Install (or, with None, remove) a function that may rewrite a job's kind when it is
        enqueued: ``router(kind, payload)`` returns the kind to use (None keeps it), sync or
        async.

        Raises:
            TypeError: `router` is not callable.
        """
        if router is not None and not callable(router):
            raise TypeError("router must be callable or None")
        self._router = router

    def executor_for(self, kind: str) -> Executor | None:
        """The executor registered for `kind`, or None."""
        return self.executors.get(kind)

    async def client(self) -> Client:
        """The engine's connected client (its backend's)."""
        return await self.backend.client()

    async def close(self) -> None:
        """Close the backend's connection."""
        await self.backend.close()

    async def __aenter__(self) -> Self:
        await self.client()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- enqueueing -------------------------------------------------------------------------------

    def _spec(self, kind: str, **job: Any) -> dict[str, Any]:
        if not isinstance(kind, str) or not KIND.fullmatch(kind):
            raise ValueError("kind must contain only alphanumerics, dash, underscore, or dot")
        if job.get("max_attempts") is None:
            job["max_attempts"] = self.default_max_attempts
        return self.backend.job_spec(kind=kind, **job)

    async def enqueue(
        self,
        *,
        kind: str,
        payload: Any,
        priority: int = DEFAULT_PRIORITY,
        scheduled_for: datetime | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
        shadow: bool = False,
        retry_policy: str | RetryPolicy | None = None,
        tags: Iterable[str] | None = None,
        webhooks: Mapping[str, str] | None = None,
    ) -> uuid.UUID:
        """Add a job; returns its id.

        Args:
            kind: the executor's kind (letters, digits, ``_ . -``), maybe routed first.
            payload: the executor's input (anything msgpack encodes; a dict for the markers).
            priority: 0..2**21, lower runs sooner (FIFO within a priority).
            scheduled_for: not before this time (naive = UTC).
            max_attempts: runs in all (default ``default_max_attempts``).
            idempotency_key: while a job with this key exists, enqueueing it again returns
                that job's id and writes nothing (checked atomically with the write).
            timeout_s: seconds a run may take.
            shadow: a dry run: ``ctx.is_shadow`` is True and the result is discarded.
            retry_policy: the job's own retry policy, a spec string such as ``"fixed:5"``.
            tags: labels (trimmed, deduplicated, sorted) kept under ``TAGS_PAYLOAD_KEY``.
            webhooks: URLs to POST the outcome to, by ``complete``, ``fail``, ``timeout``
                (see :mod:`redisjobs.pyjobkit.webhooks`).

        Raises:
            ValueError: a bad kind, max_attempts or retry policy spec.
            TypeError: a retry policy object, or markers on a payload that is not a dict.
            SerializationError: the payload is not msgpack-encodable (nothing is written).
        """
        kind = await route(self._router, kind, payload)
        marked = mark_payload(payload, shadow, retry_policy, tags, webhooks)
        spec = self._spec(
            kind,
            payload=marked,
            priority=priority,
            scheduled_for=scheduled_for,
            max_attempts=max_attempts,
            idempotency_key=idempotency_key,
            timeout_s=timeout_s,
        )
        return await self._write_one(spec)

    async def _write_one(self, spec: dict[str, Any]) -> uuid.UUID:
        kind, priority = spec["kind"], spec["priority"]
        log.info("enqueue requested: kind=%s priority=%s", kind, priority)
        if tracing_active():  # no span, no marker: tracing costs nothing when off
            with span("pyjobkit.enqueue", kind=kind, priority=priority):
                if isinstance(spec["payload"], dict):
                    spec["payload"] = inject_trace_context(spec["payload"])
                [job_id] = await self._write([spec])
        else:
            [job_id] = await self._write([spec])
        log.info("enqueue accepted: job_id=%s kind=%s priority=%s", job_id, kind, priority)
        return job_id

    async def _write(self, specs: list[dict[str, Any]]) -> list[uuid.UUID]:
        if self.capacity.limit is None:
            return await self.backend.write(specs)
        return await self.capacity.write(
            await self.client(), self.backend.queue, self.backend.write, specs
        )

    async def enqueue_at(self, when: datetime, **job: Any) -> uuid.UUID:
        """:meth:`enqueue` a job that runs at `when`.

        Raises:
            ValueError: `when` is naive (a timezone is needed, to rule out UTC-vs-local
                mistakes).
        """
        if when.tzinfo is None:
            raise ValueError(
                "enqueue_at needs a timezone-aware datetime, such as datetime.now(UTC)"
            )
        return await self.enqueue(scheduled_for=when, **job)

    async def enqueue_in(self, delay: float | timedelta, **job: Any) -> uuid.UUID:
        """:meth:`enqueue` a job that runs `delay` (seconds or a timedelta) from now on Redis's
        clock.

        Raises:
            ValueError: a negative delay.
        """
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        if not seconds >= 0:
            raise ValueError("enqueue_in delay must be non-negative")
        now = await (await self.client()).server_time()  # the clock the scheduler uses
        return await self.enqueue(scheduled_for=datetime.fromtimestamp(now + seconds, UTC), **job)

    async def enqueue_many(self, jobs: Iterable[Mapping[str, Any]]) -> list[uuid.UUID]:
        """Add many jobs (mappings of :meth:`enqueue`'s arguments) in one round trip; their ids
        in order. Nothing is written when one of them is refused.

        Raises:
            ValueError: a job without a kind, a bad one, or one idempotency key twice.
        """
        specs = [await self.prepared(dict(job)) for job in checked_batch(jobs)]
        return await self._write(specs)

    async def prepared(self, job: dict[str, Any]) -> dict[str, Any]:
        """The redisjobs job spec of one job's :meth:`enqueue` arguments (routed, marked)."""
        kind = await route(self._router, job.pop("kind"), job.get("payload"))
        marks = {k: job.pop(k) for k in _MARKS if k in job}
        job["payload"] = mark_payload(job.get("payload"), **marks)
        return self._spec(kind, **job)

    async def chain(self, *steps: Mapping[str, Any]) -> uuid.UUID:
        """Jobs that run one after another (each a mapping of :meth:`enqueue`'s arguments),
        each getting the result before it as ``payload["previous_result"]``; the first job's
        id. A failed step ends the chain (see :mod:`redisjobs.pyjobkit.engine_chain`)."""
        return await enqueue_chain(self, steps)

    # -- what a worker does, on the backend ----------------------------------------------------

    def make_ctx(self, job_id: uuid.UUID, *, is_shadow: bool = False) -> ExecContext:
        """A context for job `job_id` outside a worker, from ``exec_context_factory``."""
        ctx = self._exec_context_factory(
            job_id, log_sink=self.log_sink, event_bus=self.event_bus, backend=self.backend
        )
        if is_shadow:
            ctx.is_shadow = True
        return ctx

    def __getattr__(self, name: str) -> Any:
        # Pyjobkit's Engine passes these straight to its backend
        if name in _BACKEND_CALLS:
            return getattr(self.backend, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- inspecting -------------------------------------------------------------------------------

    async def get(self, job_id: uuid.UUID | str) -> JobRecord:
        """The job as a Pyjobkit record (see :data:`STATUS` for its ``status``).

        Raises:
            KeyError: no such job (never enqueued, or expired after its result TTL).
        """
        return await self.backend.get(job_id)

    async def cancel(self, job_id: uuid.UUID | str) -> bool:
        """Cancel a queued or running job; False when it had already ended."""
        log.info("cancel requested: job_id=%s", job_id)
        return await self.backend.cancel(job_id)

    async def queue_depth(self) -> int:
        """Jobs waiting to run now."""
        return await self.backend.queue_depth()

    async def check_connection(self) -> None:
        """Raise if the backend cannot be reached."""
        await self.backend.check_connection()

    async def purge_finished(
        self, older_than: float | timedelta | None = None, statuses: Iterable[str] | None = None
    ) -> int:
        """Delete finished jobs (see the backend's ``purge_finished``); how many."""
        return await self.backend.purge_finished(older_than, statuses)
