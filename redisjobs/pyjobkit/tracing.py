"""Pyjobkit's OpenTelemetry hooks (the ``[otel]`` extra): spans, and the W3C trace context
carried in a job's payload under ``TRACE_CONTEXT_PAYLOAD_KEY``. Without the OpenTelemetry API
they do nothing.

redisjobs links a run to the span that enqueued it by itself (:mod:`redisjobs.tracing`); the
payload marker is Pyjobkit's way, kept for code that reads it. The face's worker strips it
before an executor sees the payload.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .markers import TRACE_CONTEXT_PAYLOAD_KEY

__all__ = [
    "TRACE_CONTEXT_PAYLOAD_KEY",
    "inject_trace_context",
    "restore_trace_context",
    "span",
    "strip_trace_context",
]

try:
    from opentelemetry import context as _context
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _trace
except ImportError:  # the extra is not installed: tracing costs nothing
    _OTEL_AVAILABLE = False
else:
    _OTEL_AVAILABLE = True


def inject_trace_context(payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` with the current span's context under the marker (as it is outside a span,
    or without OpenTelemetry)."""
    if not _OTEL_AVAILABLE:
        return payload
    carrier: dict[str, str] = {}
    _propagate.inject(carrier)
    return {**payload, TRACE_CONTEXT_PAYLOAD_KEY: carrier} if carrier else payload


@contextmanager
def restore_trace_context(payload: dict[str, Any]) -> Iterator[None]:
    """Make the context carried in `payload` (if any) the current one inside the block."""
    carrier = payload.get(TRACE_CONTEXT_PAYLOAD_KEY) if _OTEL_AVAILABLE else None
    if not carrier:
        yield
        return
    token = _context.attach(_propagate.extract(carrier))
    try:
        yield
    finally:
        _context.detach(token)


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span named `name` with `attributes` (None values left out), current in the block;
    yields None without OpenTelemetry."""
    if not _OTEL_AVAILABLE:
        yield None
        return
    kept = {k: v for k, v in attributes.items() if v is not None}
    with _trace.get_tracer("pyjobkit").start_as_current_span(name, attributes=kept) as current:
        yield current


def strip_trace_context(payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` without the marker."""
    if TRACE_CONTEXT_PAYLOAD_KEY not in payload:
        return payload
    return {k: v for k, v in payload.items() if k != TRACE_CONTEXT_PAYLOAD_KEY}
