"""What clients and workers say to Redis about schedules, once, as flows (:mod:`.roundtrips`).

The async and the sync client drive :func:`upsert_flow`, :func:`unschedule_flow` and
:func:`list_flow`; a worker's schedule loop (:mod:`redisjobs.schedule_loop`) drives
:func:`due_flow` and :func:`fire_flow`. Every change is one Lua script (docs/architecture.md,
"Schedules").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

from .keys import QueueKeys, Registry
from .roundtrips import Flow, ScriptCall, cmd
from .schedule_spec import Schedule, ScheduleSpec, record
from .scriptcall import Arg
from .wire import EnqueueRow, row_args

log = logging.getLogger("redisjobs.schedules")

DUE_BATCH = 100
"""Due schedules one ``due_schedules`` call returns at most."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def upsert_flow(keys: QueueKeys, spec: ScheduleSpec, registry: Registry) -> Flow[bool]:
    """Store `spec` (see :meth:`redisjobs.Client.schedule`); True when created or changed.

    Its first due time is computed from Redis's now, read in the round trip that also lists
    the queue among the known ones in `registry` (the CLI and the dashboard find it there).
    """
    _, (seconds, micros) = yield [cmd("sadd", registry.queues, keys.queue), cmd("time")]
    due = spec.timing.next_after(int(seconds) * 1000 + int(micros) // 1000)
    if due is None or (spec.timing.end_ms and due > spec.timing.end_ms):
        due = -1
    args: list[Arg] = [spec.schedule_id, spec.encode(), due, spec.limit]
    return bool((yield ScriptCall("schedule", keys, args)))


def unschedule_flow(keys: QueueKeys, schedule_id: str) -> Flow[bool]:
    """Remove a schedule; True when there was one."""
    return bool((yield ScriptCall("unschedule", keys, [schedule_id])))


def list_flow(keys: QueueKeys) -> Flow[list[Schedule]]:
    """Every schedule of the queue, by id, in two round trips (a spec that does not decode is
    left out, with a warning)."""
    specs, dues = yield [
        cmd("hgetall", keys.schedules),
        cmd("zrange", keys.schedule_due, 0, -1, withscores=True),
    ]
    due = {_text(sid): int(score) for sid, score in dues}
    ids = sorted(_text(sid) for sid in specs)
    states = yield [cmd("hgetall", keys.schedule_state(sid)) for sid in ids]
    out = []
    for sid, state in zip(ids, states, strict=True):
        try:
            spec = ScheduleSpec.decode(sid, specs[sid.encode()])
        except ValueError as exc:
            log.warning("%s", exc)
            continue
        fields = {_text(k): _text(v) for k, v in state.items()}
        out.append(record(keys.queue, spec, due.get(sid), fields))
    return out


class Due(NamedTuple):
    """A schedule due now, as ``due_schedules`` returns it."""

    schedule_id: str
    due_ms: int
    rev: str
    """The fire token, with `due_ms`."""
    runs: int
    spec: bytes


class DueRead(NamedTuple):
    """One read of the due schedules, on Redis's clock."""

    now_ms: int
    next_due_ms: int
    """The earliest due time of any schedule (-1: none)."""
    due: list[Due]


def due_flow(keys: QueueKeys, limit: int = DUE_BATCH) -> Flow[DueRead]:
    """The schedules due now (at most `limit`), with Redis's now."""
    reply: list[Any] = yield ScriptCall("due_schedules", keys, [limit])
    now, next_due, rest = int(reply[0]), int(reply[1]), reply[2:]
    due = [
        Due(_text(rest[i]), int(rest[i + 1]), _text(rest[i + 2]), int(rest[i + 3]), rest[i + 4])
        for i in range(0, len(rest), 5)
    ]
    return DueRead(now, next_due, due)


def fire_flow(
    keys: QueueKeys, due: Due, next_due: int | None, rows: Sequence[EnqueueRow]
) -> Flow[tuple[bool, int]]:
    """Create the jobs of `rows` and move the schedule on to `next_due` (None: finished), if
    no other worker fired or changed it since `due` was read; returns (fired, jobs created)."""
    args: list[Arg] = [due.schedule_id, due.rev, due.due_ms, -1 if next_due is None else next_due]
    args += row_args(rows)
    fired, created, _now = yield ScriptCall("fire", keys, args)
    return bool(fired), int(created)
