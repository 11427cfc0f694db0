"""OpenTelemetry: the worker's span of a run is a child of the span that enqueued the job."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is not installed")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once

from redisjobs import Client, tracing
from tests.conftest import WorkerFactory


def _reset_global_provider() -> None:
    # The API lets a process set its provider once; OpenTelemetry's own tests reset it so.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset_global_provider()
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        _reset_global_provider()  # the other tests run untraced, as before
        provider.shutdown()


def one(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [s for s in spans.get_finished_spans() if s.name == name]
    assert len(found) == 1, [s.name for s in spans.get_finished_spans()]
    return found[0]


def test_off_without_a_provider() -> None:
    assert tracing.AVAILABLE
    assert not tracing.active()


async def test_run_span_is_a_child_of_the_enqueue_span(
    spans: InMemorySpanExporter, client: Client, worker: WorkerFactory, queue: str
) -> None:
    assert tracing.active()
    await worker(modules=["tests.jobs"])
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        job = await client.enqueue("call", {"fn": "tests.jobs:add", "args": [1, 2]})
    assert await client.wait(job.id, timeout=10) == 3

    enqueue, run = one(spans, "enqueue call"), one(spans, "run call")
    assert enqueue.kind == SpanKind.PRODUCER and run.kind == SpanKind.CONSUMER
    assert (
        enqueue.parent is not None and enqueue.parent.span_id == request.get_span_context().span_id
    )
    assert run.parent is not None
    assert run.context.trace_id == enqueue.context.trace_id
    assert run.parent.span_id == enqueue.context.span_id
    assert run.parent.is_remote  # it came through Redis
    assert run.attributes is not None
    assert run.attributes["messaging.message.id"] == job.id
    assert run.attributes["messaging.destination.name"] == queue
    assert run.attributes["redisjobs.outcome"] == "completed"
    assert run.status.status_code == StatusCode.UNSET


async def test_failed_runs_and_enqueue_many(
    spans: InMemorySpanExporter, client: Client, worker: WorkerFactory
) -> None:
    await worker(modules=["tests.jobs"])
    jobs = await client.enqueue_many(
        [
            ("call", {"fn": "tests.jobs:fail", "args": ["nope"]}),
            ("call", {"fn": "tests.jobs:echo", "args": [2]}),
        ]
    )
    with pytest.raises(Exception, match="nope"):
        await client.wait(jobs[0].id, timeout=10)
    await client.wait(jobs[1].id, timeout=10)

    enqueue = one(spans, "enqueue call")
    assert enqueue.attributes is not None
    assert enqueue.attributes["messaging.batch.message_count"] == 2
    runs = {
        s.attributes["messaging.message.id"]: s
        for s in spans.get_finished_spans()
        if s.name == "run call" and s.attributes
    }
    assert set(runs) == {jobs[0].id, jobs[1].id}
    for run in runs.values():
        assert run.parent is not None and run.parent.span_id == enqueue.context.span_id
    failed = runs[jobs[0].id]
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["redisjobs.outcome"] == "failed"
    assert any(e.name == "exception" for e in failed.events)


async def test_a_job_enqueued_untraced_runs_in_a_root_span(
    client: Client, worker: WorkerFactory
) -> None:
    job = await client.enqueue("call", {"fn": "tests.jobs:echo", "args": [1]})  # no provider yet
    assert await client.redis.exists(client.keys().job_trace(job.id)) == 0
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset_global_provider()
    trace.set_tracer_provider(provider)
    try:
        await worker(modules=["tests.jobs"])
        assert await client.wait(job.id, timeout=10) == 1
        assert one(exporter, "run call").parent is None
    finally:
        _reset_global_provider()
        provider.shutdown()
