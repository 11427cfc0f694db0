"""The charts' data: a queue's history (or every queue's, summed) as columns, one value per
point, the form the page's charting library draws (see :mod:`redisjobs.history`).

Processed and failed are per minute between two notes; the depths and the latency are as each
note read them. Where no worker noted a minute for a while, a point of nothing (``None``)
breaks the lines, so a gap shows as a gap. ``last`` is the newest note's time and counters,
from which the page draws a live point as the queue's counts stream in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..client import Client
from ..history import DEPTHS, MINUTE_MS, Note, per_minute

RANGES = (60, 360, 1440)
"""The minutes a chart can span (the page's 1 h, 6 h and 24 h)."""
GAP_MS = 3 * MINUTE_MS
"""Notes further apart than this are drawn with a gap between them."""
PROCESSED = ("completed", "failed")
"""The counters a run that ended adds to (Sidekiq's "processed": failures included)."""


RATES = {"processed": PROCESSED, "failed": ("failed",), "enqueued": ("enqueued",)}
"""The per-minute series, by the counters each adds up."""
NAMES = (*RATES, *DEPTHS, "latency")

Point = tuple[float, dict[str, float | None]]


def _points(notes: Sequence[Note]) -> list[Point]:
    """A point per note: its time (Unix) and each series' value."""
    rates = {name: per_minute(notes, *counters) for name, counters in RATES.items()}
    return [
        (
            note.t / 1000,
            {name: rates[name][i] for name in RATES}
            | {name: note.depths[name] for name in DEPTHS}
            | {"latency": note.latency},
        )
        for i, note in enumerate(notes)
    ]


def _columns(points: Sequence[Point]) -> dict[str, list[Any]]:
    """The columns of `points` (by time), a point of nothing where they are far apart."""
    columns: dict[str, list[Any]] = {name: [] for name in ("t", *NAMES)}
    before: float | None = None
    for t, values in points:
        if before is not None and (t - before) * 1000 > GAP_MS:
            columns["t"].append(before + MINUTE_MS / 1000)
            for name in NAMES:
                columns[name].append(None)
        columns["t"].append(t)
        for name in NAMES:
            columns[name].append(values[name])
        before = t
    return columns


def _last(notes: Sequence[Note]) -> dict[str, Any] | None:
    """The time of the newest of `notes` (Unix) and the sum of their counters."""
    if not notes:
        return None
    totals = {name: sum(n.totals[name] for n in notes) for name in PROCESSED}
    return {"t": max(n.t for n in notes) / 1000, **totals}


async def queue_series(client: Client, queue: str, minutes: int) -> dict[str, Any]:
    """The charts of one queue over the last `minutes`."""
    notes = await client.history(queue, minutes=minutes)
    return {"queue": queue, **_columns(_points(notes)), "last": _last(notes[-1:])}


async def overall_series(client: Client, minutes: int) -> dict[str, Any]:
    """The charts of every queue over the last `minutes`, minute by minute: the rates and
    depths summed, the latency the longest."""
    buckets: dict[int, dict[str, float | None]] = {}
    newest: list[Note] = []
    for queue in await client.queues():
        notes = await client.history(queue, minutes=minutes)
        newest += notes[-1:]
        for t, values in _points(notes):
            bucket = buckets.setdefault(int(t * 1000) // MINUTE_MS, dict.fromkeys(NAMES))
            for name, value in values.items():
                bucket[name] = _merge(name, bucket[name], value)
    points = [(m * MINUTE_MS / 1000, buckets[m]) for m in sorted(buckets)]
    return {"queue": None, **_columns(points), "last": _last(newest)}


def _merge(name: str, a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return b if a is None else a
    return max(a, b) if name == "latency" else a + b
