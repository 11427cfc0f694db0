"""Turning jobs, events and msgpack values into JSON, and the small formats the pages use.

Payloads and results are msgpack in Redis; JSON cannot hold everything msgpack can, and
:func:`~redisjobs.jsonable.jsonable` bridges the gap (bytes become ``{"$bytes": "<base64>"}``,
times ISO 8601 text, tuples and sets arrays...), here as on the command line.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..events import Event
from ..job import Job
from ..jobtext import LONG, SHORT
from ..jsonable import jsonable
from ..workerinfo import WorkerInfo

PRETTY_CAP = 20_000
"""Characters of a payload or result shown on a page (the rest is cut, saying so)."""


def iso(value: datetime | None) -> str | None:
    """An aware datetime as RFC 3339 (UTC), None as None."""
    return None if value is None else jsonable(value)


def job_json(job: Job, *, payload: bool = True) -> dict[str, Any]:
    """The JSON form of a job (the API's ``Job`` schema)."""
    out: dict[str, Any] = {
        "id": job.id,
        "name": job.name,
        "queue": job.queue,
        "kind": job.kind,
        "status": job.status.value,
        "progress": job.progress if math.isfinite(job.progress) else 0.0,
        "progress_message": job.progress_message or None,
        "attempt": job.attempt,
        "max_retries": job.max_retries,
        "timeout": job.timeout,
        "worker": job.worker or None,
        "created_at": iso(job.created_at),
        "scheduled_at": iso(job.scheduled_at),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
        "result": jsonable(job.result),
        "error": job.error,
        "failure": job.failure,
        "priority": job.priority,
        "duplicate": job.duplicate,
        "depends_on": list(job.depends_on),
        "dependents": list(job.dependents),
        "flow": job.flow,
    }
    if payload:
        out["payload"] = jsonable(job.payload)
    return out


def call(job: Job, full: bool = False) -> str:
    """A job's call as it reads (:meth:`Job.call_text`): short for lists, `full` for its page."""
    return job.call_text(LONG if full else SHORT)


def worker_json(w: WorkerInfo) -> dict[str, Any]:
    """The JSON form of a worker (the API's ``Worker`` schema): every field, times as text."""
    out = dataclasses.asdict(w)
    for name in ("started_at", "heartbeat_at", "stopped_at"):
        out[name] = iso(out[name])
    return out


def event_json(ev: Event) -> dict[str, Any]:
    """The JSON form of an event (the API's ``Event`` schema)."""
    return {
        "id": ev.id,
        "type": ev.type,
        "queue": ev.queue,
        "job_id": ev.job_id,
        "attempt": ev.attempt,
        "ts": ev.ts,
        "data": jsonable(ev.data),
    }


def to_json(value: Any) -> str:
    """Compact JSON of an already plain value."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def pretty(value: Any, cap: int = PRETTY_CAP) -> str:
    """Indented JSON of a msgpack value, cut at `cap` characters (saying how long it was)."""
    text = json.dumps(jsonable(value), ensure_ascii=False, indent=2)
    if len(text) <= cap:
        return text
    return f"{text[:cap]}\n… cut here: {len(text):,} characters in all"


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the largest fitting unit: ``"12 s ago"``, ``"3 min ago"``."""
    if value is None:
        return "—"
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    if seconds < 0:
        return f"in {duration(-seconds)}"
    return "just now" if seconds < 1 else f"{duration(seconds)} ago"


def duration(seconds: float | None) -> str:
    """A span of time for people: ``"850 ms"``, ``"12 s"``, ``"3 min 4 s"``, ``"2 h 5 min"``."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


def rate(per_second: float) -> str:
    """A rate for people: ``"0"``, ``"0.25"``, ``"12.5"``, ``"1,204"``."""
    if per_second == 0:
        return "0"
    if per_second < 1:
        return f"{per_second:.2f}"
    return f"{per_second:,.1f}" if per_second < 100 else f"{per_second:,.0f}"


def size(n: int) -> str:
    """A byte count for people: ``"812 B"``, ``"4.2 MiB"``, ``"1.5 GiB"``."""
    value, unit = float(n), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.1f} {unit}"


def percent(value: float, digits: int = 1) -> str:
    """A progress value as ``"42%"`` or ``"42.5%"`` (no trailing zeros)."""
    text = f"{value:.{digits}f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + "%"


def number(value: int) -> str:
    """An integer with thousands separators."""
    return f"{value:,}"


def from_ms(ms: int) -> datetime:
    """A Redis millisecond timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def event_details(data: Mapping[str, Any], cap: int = 160) -> str:
    """The gist of an event's data on one line: progress, worker, error, retry time, result."""
    parts = []
    if "progress" in data:
        progress = data["progress"]
        pct = f"{progress:.0f}%" if isinstance(progress, int | float) else str(progress)
        parts.append(f"{pct} {data.get('message', '')}".strip())
    if "worker" in data:
        parts.append(f"on {data['worker']}")
    if "error" in data:
        parts.append(str(data["error"]))
    if "due" in data and isinstance(data["due"], int):
        parts.append(f"retry at {from_ms(data['due']).strftime('%H:%M:%S')} UTC")
    if "crashes" in data:
        parts.append(f"{data['crashes']} crashed deliveries")
    if data.get("requeued") is True:
        parts.append("back to the queue")
    if "result" in data:
        parts.append("→ " + to_json(jsonable(data["result"])))
    text = " · ".join(parts)
    return text if len(text) <= cap else text[: cap - 1] + "…"


def collapse_progress(events: list[Event]) -> list[tuple[Event, int]]:
    """Events with each run of progress events of one attempt folded into its last one.

    A job can report progress hundreds of times; a person wants to see where it got to, and
    the events around that. Returns (event, how many it stands for).
    """
    rows: list[tuple[Event, int]] = []
    for ev in events:
        if rows and ev.type == "progress":
            last, n = rows[-1]
            if last.type == "progress" and last.attempt == ev.attempt:
                rows[-1] = (ev, n + 1)
                continue
        rows.append((ev, 1))
    return rows
