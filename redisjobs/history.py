"""A queue's history, for the dashboard's charts: its counters and depth, noted once a minute.

The workers note it. With its registry refresh (a heartbeat apart), a worker that has not noted
the current minute yet looks at the queue's ``history`` stream; if its last entry is of an
earlier minute, it reads the queue's counts (the read the dashboard makes) and adds an entry
whose id is the minute itself (``<minute ms>-0``). Entry ids only grow, so when two workers note
the same minute Redis refuses the second: one entry a minute, whoever comes first, with no lock
and no script. A job pays nothing for it (no command, no Python work); a queue pays one small
read per worker per refresh and one write a minute. The stream keeps :data:`HISTORY_MINUTES`
entries (trimmed as it is written); while no worker serves a queue, nothing is noted, and the
charts show the gap.

Each entry holds the counters (``enqueued completed failed retried cancelled``, running totals
since the queue began), the jobs in each waiting status (``waiting pending scheduled running``),
the oldest pending job's wait in ms (``latency``) and the read's time (``t``, Redis ms). A
chart's point per minute is the difference of two entries' counters over their ``t`` apart, so
a note taken some seconds into its minute still reads true.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from .keys import QueueKeys
from .queries import job_counts_flow
from .roundtrips import Flow, cmd, tolerant

HISTORY_MINUTES = 1440
"""Entries a queue's history keeps: a day of minutes."""
MINUTE_MS = 60_000
COUNTED = ("enqueued", "completed", "failed", "retried", "cancelled")
DEPTHS = ("waiting", "pending", "scheduled", "running")


@dataclass(frozen=True, slots=True)
class Note:
    """One minute of a queue's history.

    Attributes:
        t: when it was read (Redis ms).
        totals: the counters of :data:`COUNTED` then.
        depths: the jobs of each of :data:`DEPTHS` then.
        latency: how long the oldest pending job had waited (seconds; 0 when none was).
    """

    t: int
    totals: dict[str, int]
    depths: dict[str, int]
    latency: float


def note_flow(keys: QueueKeys) -> Flow[int]:
    """Note the current minute of the queue's history unless it is noted; returns the minute
    (Redis ms)."""
    now, last = yield [cmd("time"), cmd("xrevrange", keys.history, "+", "-", count=1)]
    minute = int(now[0]) * 1000 // MINUTE_MS * MINUTE_MS
    if last and _minute(last[0][0]) >= minute:
        return minute
    (read,) = yield from job_counts_flow([keys.queue])
    fields = {
        "t": int(read.read_at * 1000),
        **{name: read.totals.get(name, 0) for name in COUNTED},
        **{name: read.counts[name] for name in DEPTHS},
        "latency": round(read.pending_age * 1000),
    }
    # Refused ("equal or smaller than the target stream top item") when another worker noted
    # this minute since: its note stands.
    add = cmd(
        "xadd", keys.history, fields, id=f"{minute}-0", maxlen=HISTORY_MINUTES, approximate=True
    )
    yield [tolerant(add)]
    return minute


def history_flow(keys: QueueKeys, minutes: int) -> Flow[list[Note]]:
    """The queue's notes of the last `minutes` minutes, oldest first."""
    (now,) = yield [cmd("time")]
    since = int(now[0]) * 1000 - minutes * MINUTE_MS
    (entries,) = yield [cmd("xrange", keys.history, min=str(since), max="+")]
    return [note for _, fields in entries if (note := _note(fields)) is not None]


def _note(fields: dict[bytes, bytes]) -> Note | None:
    try:
        values = {k.decode(): int(v) for k, v in fields.items()}
        return Note(
            t=values["t"],
            totals={name: values.get(name, 0) for name in COUNTED},
            depths={name: values.get(name, 0) for name in DEPTHS},
            latency=values.get("latency", 0) / 1000,
        )
    except (KeyError, ValueError):  # an entry something else wrote
        return None


def _minute(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[0])


def per_minute(notes: Sequence[Note], *names: str) -> list[float | None]:
    """How many the counters `names` added up to each note, per minute: the difference with the
    note before over the time between them (None for the first note, and where the counters
    went back: the queue was obliterated and began again)."""
    out: list[float | None] = [None] if notes else []
    for before, after in itertools.pairwise(notes):
        added = sum(after.totals[name] - before.totals[name] for name in names)
        span = (after.t - before.t) / MINUTE_MS
        out.append(added / span if added >= 0 and span > 0 else None)
    return out
