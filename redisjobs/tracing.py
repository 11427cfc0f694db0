"""OpenTelemetry tracing: a job's run is a child span of the span that enqueued it.

Only the OpenTelemetry *API* is used (the ``[otel]`` extra); the application sets up the SDK
and its exporters. Without the API installed nothing is imported and :data:`AVAILABLE` is
False; with it but no tracer provider set, :func:`active` is False and nothing is written.

How the context travels: the producer writes the W3C trace context (``traceparent`` and
``tracestate``, as JSON) to a key of its own beside the job hash (``QueueKeys.job_trace``),
in the round trip before the enqueue script; the worker reads it when it starts the job. A
key of its own, rather than a field of the job hash, leaves the ``enqueue`` script, its
arguments and the job hash (the documented wire format) exactly as they were, and costs
nothing when tracing is off. It expires on its own (:data:`TRACE_TTL_S` after the job is
due), as nothing else deletes it; a run that starts later is simply not linked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from .keys import QueueKeys
from .roundtrips import Command, cmd

if TYPE_CHECKING:
    from .scripts import Delivery

try:
    from opentelemetry import trace
    from opentelemetry.trace import ProxyTracerProvider, Span, SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the [otel] extra is not installed: tracing is off, at no cost
    AVAILABLE = False
else:
    AVAILABLE = True
    _PROPAGATOR = TraceContextTextMapPropagator()

log = logging.getLogger("redisjobs.tracing")

TRACE_TTL_S = 7 * 86400
"""Seconds a job's trace context is kept after the job is due."""

SCOPE = "redisjobs"


def active() -> bool:
    """Whether spans are recorded: the API is installed and a tracer provider was set."""
    if not AVAILABLE:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, ProxyTracerProvider | trace.NoOpTracerProvider)


@contextmanager
def enqueue_span(keys: QueueKeys, kinds: Sequence[str], ids: Sequence[str]) -> Iterator[str | None]:
    """The producer's span around an enqueue; yields the trace context to store (or None).

    Callers check :func:`active` first, so that nothing here runs when tracing is off.
    """
    name = f"enqueue {kinds[0]}" if len(set(kinds)) == 1 else "enqueue"
    tracer = trace.get_tracer(SCOPE)
    with tracer.start_as_current_span(name, kind=SpanKind.PRODUCER) as span:
        span.set_attribute("messaging.system", "redisjobs")
        span.set_attribute("messaging.destination.name", keys.queue)
        if len(ids) == 1:
            span.set_attribute("messaging.message.id", ids[0])
        else:
            span.set_attribute("messaging.batch.message_count", len(ids))
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        yield json.dumps(carrier, separators=(",", ":")) if carrier else None


def store_commands(
    keys: QueueKeys, ids: Sequence[str], context: str, due_in_ms: Sequence[int]
) -> list[Command]:
    """The commands that write the trace context of jobs about to be enqueued (sent in the
    round trip before the enqueue script).

    SET NX: a duplicate enqueue (same job id) keeps the context of the enqueue that made it.
    """
    return [
        cmd("set", keys.job_trace(job_id), context, nx=True, px=max(due, 0) + TRACE_TTL_S * 1000)
        for job_id, due in zip(ids, due_in_ms, strict=True)
    ]


async def start_run_span(redis: Redis, keys: QueueKeys, delivery: Delivery) -> Any:
    """The worker's span of one run, a child of the enqueuing span when there was one.

    Returns None when tracing is off. Reading the context costs the run one GET, which is why
    this happens only while a tracer provider is set.
    """
    if not active():
        return None
    parent = None
    try:
        raw = await redis.get(keys.job_trace(delivery.job_id))
        if raw:
            parent = _PROPAGATOR.extract(json.loads(raw))
    except Exception as exc:  # tracing must never fail a job (Redis hiccup, garbage value)
        log.debug("trace context of job %s not read: %s", delivery.job_id, exc)
    span = trace.get_tracer(SCOPE).start_span(
        f"run {delivery.kind}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "redisjobs",
            "messaging.destination.name": keys.queue,
            "messaging.message.id": delivery.job_id,
            "redisjobs.attempt": delivery.attempt,
        },
    )
    return span


@contextmanager
def current(span: Span) -> Iterator[None]:
    """Make `span` the current one while the executor runs (its own spans become children)."""
    with trace.use_span(span, record_exception=False, set_status_on_exception=False):
        yield


def end_run_span(span: Span, outcome: str, error: BaseException | None) -> None:
    """Record a run's outcome (``completed``, ``failed``, ``cancelled``, ...) and end it."""
    span.set_attribute("redisjobs.outcome", outcome)
    if error is not None:
        span.record_exception(error)
    if outcome == "failed":
        description = f"{type(error).__name__}: {error}" if error is not None else None
        span.set_status(Status(StatusCode.ERROR, description))
    span.end()
