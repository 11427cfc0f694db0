"""The Pyjobkit face's ``Engine``: enqueue and inspect jobs (see :mod:`redisjobs.pyjobkit`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Self

from ..client import Client
from ..options import DEFAULT_PRIORITY
from ..tracing import active as tracing_active
from .backends import Backend
from .backends.store import STATUS
from .contracts import EventBus, Executor, LogSink
from .engine_marks import Router, mark_payload, route
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
    "Engine",
    "Router",
    "strip_internal_payload",
]

KIND = re.compile(r"[A-Za-z0-9_.-]+")


# -- the engine -----------------------------------------------------------------------------------


class Engine:
    """Enqueue and inspect jobs; the executors its workers run.

    Args:
        backend: :class:`MemoryBackend` or :class:`RedisBackend`.
        executors: the executors, one per kind.
        log_sink: also receives every line executors log.
        event_bus: also receives every progress report.
        default_max_attempts: runs in all of a job enqueued without ``max_attempts``.
    """

    def __init__(
        self,
        *,
        backend: Backend,
        executors: Iterable[Executor] = (),
        log_sink: LogSink | None = None,
        event_bus: EventBus | None = None,
        default_max_attempts: int = 3,
    ) -> None:
        if int(default_max_attempts) < 1:
            raise ValueError("default_max_attempts must be at least 1")
        self.backend = backend
        self.default_max_attempts = int(default_max_attempts)
        self._router: Router | None = None
        self.executors: dict[str, Executor] = {}
        for executor in executors:
            self.register_executor(executor)
        self.log_sink = log_sink
        self.event_bus = event_bus

    def register_executor(self, executor: Executor) -> None:
        """Add an executor for its kind (workers made afterwards run it).

        Raises:
            ValueError: another executor already has that kind.
        """
        if executor.kind in self.executors:
            raise ValueError(f"duplicate executor kind registered: {executor.kind}")
        self.executors[executor.kind] = executor

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
    ) -> uuid.UUID:
        """Add a job; returns its id.

        Args:
            kind: the executor's kind (letters, digits, ``_ . -``); the router, if one is set
                (:meth:`set_router`), may rewrite it first.
            payload: the executor's input (anything msgpack encodes; a dict for the markers).
            priority: 0..2**21, lower runs sooner (FIFO within a priority).
            scheduled_for: not before this time (naive = UTC).
            max_attempts: runs in all before it fails for good (default
                ``default_max_attempts``).
            idempotency_key: while a job with this key exists, enqueueing it again returns
                that job's id and writes nothing (checked atomically with the write).
            timeout_s: seconds a run may take.
            shadow: a dry run: ``ctx.is_shadow`` is True and the result is discarded.
            retry_policy: the job's own retry policy, a spec string such as ``"fixed:5"``.
            tags: labels (trimmed, deduplicated, sorted) kept under ``TAGS_PAYLOAD_KEY``.

        Raises:
            ValueError: a bad kind, max_attempts or retry policy spec.
            TypeError: a retry policy object, or markers on a payload that is not a dict.
            SerializationError: the payload is not msgpack-encodable (nothing is written).
        """
        kind = await route(self._router, kind, payload)
        marked = mark_payload(payload, shadow=shadow, retry_policy=retry_policy, tags=tags)
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
        if not tracing_active():  # no span, no marker: tracing costs nothing when off
            return (await self.backend.write([spec]))[0]
        with span("pyjobkit.enqueue", kind=spec["kind"], priority=spec["priority"]):
            if isinstance(spec["payload"], dict):
                spec["payload"] = inject_trace_context(spec["payload"])
            return (await self.backend.write([spec]))[0]

    async def enqueue_at(self, when: datetime, **kwargs: Any) -> uuid.UUID:
        """:meth:`enqueue` a job that runs at `when`."""
        return await self.enqueue(scheduled_for=when, **kwargs)

    async def enqueue_in(self, delay: float | timedelta, **kwargs: Any) -> uuid.UUID:
        """:meth:`enqueue` a job that runs after `delay` (seconds or a timedelta)."""
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        client = await self.client()
        now = await client.server_time()  # Redis's clock, which the scheduler uses
        when = datetime.fromtimestamp(now + seconds).astimezone()
        return await self.enqueue(scheduled_for=when, **kwargs)

    async def enqueue_many(self, jobs: Iterable[Mapping[str, Any]]) -> list[uuid.UUID]:
        """Add many jobs (mappings of :meth:`enqueue`'s arguments) in few round trips."""
        return await self.backend.write([self._spec(**job) for job in jobs])

    # -- inspecting -------------------------------------------------------------------------------

    async def get(self, job_id: uuid.UUID | str) -> JobRecord:
        """The job as a Pyjobkit record (see :data:`STATUS` for its ``status``).

        Raises:
            KeyError: no such job (never enqueued, or expired after its result TTL).
        """
        return await self.backend.get(job_id)

    async def cancel(self, job_id: uuid.UUID | str) -> bool:
        """Cancel a queued or running job; False when it had already ended."""
        return await self.backend.cancel(job_id)

    async def queue_depth(self) -> int:
        """Jobs waiting to run now."""
        return await self.backend.queue_depth()

    async def check_connection(self) -> None:
        """Raise if the backend cannot be reached."""
        await self.backend.check_connection()
