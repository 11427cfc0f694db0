"""The Pyjobkit face's logging, event bus, metrics and tracing modules."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from redisjobs.pyjobkit import Engine
from redisjobs.pyjobkit import metrics as pjk_metrics
from redisjobs.pyjobkit.backends.memory import MemoryBackend
from redisjobs.pyjobkit.contracts import LogRecord
from redisjobs.pyjobkit.events import LocalEventBus
from redisjobs.pyjobkit.logging import JsonFormatter, MemoryLogSink, configure_logging
from redisjobs.pyjobkit.tracing import (
    TRACE_CONTEXT_PAYLOAD_KEY,
    inject_trace_context,
    restore_trace_context,
    span,
    strip_trace_context,
)


def _record(msg: str = "hello", **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("pyjobkit.test", logging.INFO, __file__, 1, msg, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_lines_lead_with_the_greppable_keys() -> None:
    job_id = uuid.uuid4()
    line = JsonFormatter().format(
        _record("state", extra_field={"a": (1, 2)}, status="success", job_id=job_id, event="e")
    )
    fields = json.loads(line)
    assert list(fields)[:7] == ["ts", "level", "logger", "msg", "event", "job_id", "status"]
    assert fields["extra_field"] == {"a": [1, 2]} and str(job_id) in fields["job_id"]
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "m", (), sys.exc_info())
    assert "RuntimeError: boom" in json.loads(JsonFormatter().format(failed))["exc_info"]


@pytest.fixture
def root_logging() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configure_logging_replaces_only_its_own_handler(root_logging: logging.Logger) -> None:
    keep = logging.NullHandler()
    root_logging.addHandler(keep)
    configure_logging("debug", fmt="json")
    configure_logging(logging.WARNING, fmt="json")
    ours = [h for h in root_logging.handlers if h.get_name() == "pyjobkit"]
    assert len(ours) == 1 and keep in root_logging.handlers
    assert root_logging.level == logging.WARNING
    stream = io.StringIO()
    ours[0].setStream(stream)  # type: ignore[attr-defined]
    logging.getLogger("pyjobkit.t").warning("hi", extra={"worker_id": "w"})
    assert json.loads(stream.getvalue())["worker_id"] == "w"
    with pytest.raises(ValueError):
        configure_logging("LOUD")
    with pytest.raises(ValueError):
        configure_logging("INFO", fmt="xml")


async def test_the_event_bus_survives_a_failing_handler(caplog: pytest.LogCaptureFixture) -> None:
    bus, seen = LocalEventBus(), []

    async def good(payload: dict[str, Any]) -> None:
        seen.append(payload)

    async def bad(payload: dict[str, Any]) -> None:
        raise RuntimeError("handler broke")

    bus.subscribe("t", bad)
    bus.subscribe("t", good)
    await bus.publish("t", {"v": 1})
    await bus.publish("nobody", {"v": 2})
    assert seen == [{"v": 1}] and "handler broke" in caplog.text


async def test_the_memory_sink_keeps_the_last_lines_per_job() -> None:
    sink, job = MemoryLogSink(max_items=2), uuid.uuid4()
    for n in range(3):
        await sink.write(LogRecord(job, "stdout", f"line-{n}"))
    assert [r.message for r in await sink.get(job)] == ["line-1", "line-2"]
    assert await sink.get(uuid.uuid4()) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_metrics_server_serves_the_face_metrics() -> None:
    pjk_metrics.webhook_failures.inc()
    port = _free_port()
    assert pjk_metrics.start_metrics_server(port, host="127.0.0.1") is True
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "pyjobkit_webhook_failures_total" in text
    assert "pyjobkit_phase_duration_seconds_bucket" in text


def test_without_prometheus_the_server_is_not_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pjk_metrics, "_PROMETHEUS_AVAILABLE", False)
    assert pjk_metrics.start_metrics_server(_free_port()) is False


@pytest.fixture
def spans() -> Iterator[Any]:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = trace._TRACER_PROVIDER
    trace._TRACER_PROVIDER = provider  # the API allows one set_tracer_provider per process
    yield exporter
    trace._TRACER_PROVIDER = previous


async def test_enqueue_in_a_span_carries_its_context(spans: Any) -> None:
    from opentelemetry import trace

    assert inject_trace_context({"x": 1}) == {"x": 1}  # no span: unchanged
    backend = MemoryBackend()
    async with Engine(backend=backend) as engine:
        with trace.get_tracer("t").start_as_current_span("producer") as producer:
            job_id = await engine.enqueue(kind="noop", payload={"x": 1})
        payload = (await backend.get(job_id))["payload"]
    carrier = payload[TRACE_CONTEXT_PAYLOAD_KEY]
    assert format(producer.get_span_context().trace_id, "032x") in carrier["traceparent"]
    assert strip_trace_context(payload) == {"x": 1}
    assert "pyjobkit.enqueue" in [s.name for s in spans.get_finished_spans()]
    with restore_trace_context(payload), span("child", kind="x", absent=None) as child:
        assert child.get_span_context().trace_id == producer.get_span_context().trace_id
    assert dict(spans.get_finished_spans()[-1].attributes) == {"kind": "x"}


async def test_the_engine_logs_under_pyjobkits_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pyjobkit.engine")
    async with Engine(backend=MemoryBackend()) as engine:
        job_id = await engine.enqueue(kind="demo", payload={})
        await engine.cancel(job_id)
    said = [r.getMessage() for r in caplog.records if r.name == "pyjobkit.engine"]
    assert said[0].startswith("enqueue requested: kind=demo")
    assert said[1] == f"enqueue accepted: job_id={job_id} kind=demo priority=100"
    assert said[2] == f"cancel requested: job_id={job_id}"
