"""A schedule's spec: checked, encoded once for Redis, and read back as a typed record.

The spec (what runs, when, with which job options) is one msgpack map in ``rj:{Q}:schedules``,
encoded here and never decoded by a script: an upsert compares it with the stored one byte for
byte, so its encoding is deterministic (fixed keys, fixed order). The few numbers the scripts
work with (``rev runs limit last_run last_job``) live in plain fields of the schedule's state
hash (docs/architecture.md, "Schedules").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgpack

from .errors import InvalidJobId
from .jobrules import RULE_NAMES
from .names import check_job_id
from .options import ENQUEUE_OPTIONS, JobOptions, _at_ms
from .serialization import DEFAULT_MAX_PAYLOAD_BYTES, unpackb
from .ticks import MISFIRES, Misfire, Timing, check_cron
from .wire import EnqueueRow, build_row

MAX_SCHEDULE_ID = 186
"""A schedule id is a job id of at most this many characters, so that a tick's job id,
``<schedule id>@<tick ms>`` (14 more), is a job id too."""

SPEC_VERSION = 1

JOB_OPTIONS = ENQUEUE_OPTIONS - {"job_id", "delay", "at", "depends_on", "on_parent_failure"}
"""The job options a schedule takes: an enqueue's, less those of one job (id, delay, at) and
the jobs it would wait for (a tick's job waits for none: its parents would be long gone by the
next ticks); its rules among them (with ``unique="until_done"``, a tick whose last job still
runs makes none)."""


def check_schedule_id(schedule_id: object) -> str:
    """`schedule_id` when it is a job id of at most :data:`MAX_SCHEDULE_ID` characters.

    Raises:
        InvalidJobId: it is not.
    """
    sid = check_job_id(schedule_id)
    if len(sid) > MAX_SCHEDULE_ID:
        raise InvalidJobId(
            f"a schedule id is at most {MAX_SCHEDULE_ID} characters (its jobs' ids add "
            f"'@<tick ms>'), got {len(sid)}"
        )
    return sid


def tick_job_id(schedule_id: str, tick_ms: int) -> str:
    """The id of the job of one tick: unique per tick, so a tick's job is created once."""
    return f"{schedule_id}@{tick_ms}"


def _zone(tz: object) -> str:
    if not isinstance(tz, str) or not tz:
        raise ValueError(f"tz must be an IANA time zone name, got {tz!r}")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r} ({exc})") from None
    return tz


def _every_ms(every: object) -> int:
    if isinstance(every, bool) or not isinstance(every, int | float) or not every > 0:
        raise ValueError(f"every must be a number of seconds > 0, got {every!r}")
    ms = round(every * 1000)
    if not 1 <= ms <= 366 * 86_400_000:
        raise ValueError(f"every must be 0.001 s .. 366 days, got {every!r}")
    return ms


def _limit(limit: object) -> int:
    if limit is None:
        return 0
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an int >= 1 (or None), got {limit!r}")
    return limit


def _moment_ms(at: object, name: str) -> int:
    if at is not None and not isinstance(at, datetime):
        raise TypeError(f"{name} must be a datetime (naive: UTC), got {type(at).__name__}")
    return _at_ms(at)


def check_timing(
    cron: str | None, every: float | None, tz: str, misfire: object
) -> tuple[str | None, int, str, Misfire]:
    """The when of a schedule, checked: exactly one of `cron` and `every`, a time zone that
    exists, a known misfire mode.

    Raises:
        ValueError: any of them is wrong.
    """
    if (cron is None) == (every is None):
        raise ValueError("a schedule needs exactly one of cron= and every=")
    if misfire not in MISFIRES:
        raise ValueError(f"misfire must be one of {', '.join(MISFIRES)}, got {misfire!r}")
    every_ms = 0 if every is None else _every_ms(every)
    return (None if cron is None else check_cron(cron)), every_ms, _zone(tz), misfire


def _stored_row(values: list[Any]) -> EnqueueRow:
    """A spec's row, less its id: eleven values, then the rules as a list of pairs, or, as
    stored before the row took its rules as pairs, one value per rule (0 or '' unset)."""
    row, rest = EnqueueRow("", *values[:11]), values[11:]
    if len(rest) == 1:
        return row._replace(rules=tuple((k, v) for k, v in rest[0]))
    # that older form had one value for each of the first eight rules, in their order
    pairs = zip(RULE_NAMES[:8], rest, strict=True) if rest else ()
    return row._replace(rules=tuple((k, v) for k, v in pairs if v))


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """What a schedule runs and when, checked and encoded (see :meth:`build`)."""

    schedule_id: str
    job: EnqueueRow
    """Its jobs' row, built as an enqueue builds one (kind, payload, policy, priority, rules),
    without an id of its own: each tick's job gets ``<schedule id>@<tick ms>``."""
    timing: Timing
    limit: int
    """Runs at most (0: no limit)."""
    misfire: Misfire

    @classmethod
    def build(
        cls,
        schedule_id: str,
        kind: str,
        payload: Any,
        *,
        cron: str | None = None,
        every: float | None = None,
        tz: str = "UTC",
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        limit: int | None = None,
        misfire: str = "skip",
        options: Mapping[str, Any] | None = None,
        defaults: JobOptions | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> ScheduleSpec:
        """A spec from :meth:`redisjobs.Client.schedule`'s arguments, every one checked.

        Raises:
            InvalidJobId: a bad id. ValueError, TypeError: a bad argument or job option.
            CallRefused: a ``call`` payload no worker would run.
            SerializationError: a payload msgpack cannot encode.
        """
        sid = check_schedule_id(schedule_id)
        cron_text, every_ms, zone, mode = check_timing(cron, every, tz, misfire)
        given = {k: v for k, v in (options or {}).items() if v is not None}
        unknown = set(given) - JOB_OPTIONS
        if unknown:
            raise TypeError(f"unknown schedule option(s): {', '.join(sorted(unknown))}")
        defaults = defaults or JobOptions()
        job = build_row(kind, payload, given, defaults, defaults.policy(), max_payload_bytes)
        start_ms, end_ms = _moment_ms(start_at, "start_at"), _moment_ms(end_at, "end_at")
        if end_ms and end_ms <= start_ms:
            raise ValueError("end_at must be after start_at")
        timing = Timing(cron_text, every_ms, zone, start_ms, end_ms)
        return cls(sid, job._replace(job_id=""), timing, _limit(limit), mode)

    def encode(self) -> bytes:
        """The spec as stored: one msgpack map, the same bytes for the same spec."""
        t = self.timing
        packed: bytes = msgpack.packb(
            {
                "v": SPEC_VERSION,
                "job": list(self.job[1:]),  # the row but its id, in the row's order
                "cron": t.cron,
                "every_ms": t.every_ms,
                "tz": t.tz,
                "start_ms": t.start_ms,
                "end_ms": t.end_ms,
                "limit": self.limit,
                "misfire": self.misfire,
            },
            use_bin_type=True,
        )
        return packed

    @classmethod
    def decode(cls, schedule_id: str, raw: bytes) -> ScheduleSpec:
        """A stored spec (one whose row is shorter than today's, written before the row grew,
        gets the defaults of the fields it lacks; see :func:`_stored_row`).

        Raises:
            ValueError: it is not one this version wrote (garbage, or a newer version's).
        """
        try:
            d = msgpack.unpackb(raw, raw=False)
            if d["v"] != SPEC_VERSION:
                raise ValueError(f"spec version {d['v']!r}")
            timing = Timing(d["cron"], d["every_ms"], d["tz"], d["start_ms"], d["end_ms"])
            job = _stored_row(d["job"])
            return cls(schedule_id, job, timing, d["limit"], d["misfire"])
        except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
            raise ValueError(f"schedule {schedule_id!r}: unreadable spec ({exc})") from None

    def row(self, tick_ms: int) -> EnqueueRow:
        """The enqueue row of the job of one tick (runnable at once)."""
        return self.job._replace(job_id=tick_job_id(self.schedule_id, tick_ms))


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule as :meth:`redisjobs.Client.schedules` lists it.

    Attributes:
        id: its id (the name of a task, for a task's schedule).
        queue: the queue its jobs go to.
        kind, payload: what each job runs (the payload decoded).
        cron, every: when (one of them; `every` in seconds), `tz` the cron's time zone.
        start_at, end_at: no tick before, after (None: none).
        limit: runs at most (None: no limit). misfire: ``skip``, ``run_once`` or ``run_all``.
        next_run: when it fires next (Redis's clock); None once finished (its limit reached,
            past its end, or a cron that never matches again).
        last_run: when it last fired (Redis's clock), `last_job` the id of the job it made then.
        runs: ticks fired so far.
    """

    id: str
    queue: str
    kind: str
    payload: Any
    cron: str | None
    every: float | None
    tz: str
    start_at: datetime | None
    end_at: datetime | None
    limit: int | None
    misfire: str
    next_run: datetime | None
    last_run: datetime | None
    last_job: str | None
    runs: int

    @property
    def timing(self) -> str:
        """When it ticks, short: ``*/5 * * * * (Europe/Berlin)`` or ``every 30s``."""
        if self.cron is not None:
            return self.cron if self.tz == "UTC" else f"{self.cron} ({self.tz})"
        return f"every {self.every:g}s"

    @property
    def finished(self) -> bool:
        """Whether it will not fire again (it stays listed until unscheduled)."""
        return self.next_run is None


def _moment(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


def record(queue: str, spec: ScheduleSpec, due: int | None, state: Mapping[str, str]) -> Schedule:
    """The :class:`Schedule` of a stored spec, its due time and its state fields."""
    t = spec.timing
    last_job = state.get("last_job") or None
    return Schedule(
        id=spec.schedule_id,
        queue=queue,
        kind=spec.job.kind,
        payload=unpackb(spec.job.payload),
        cron=t.cron,
        every=t.every_ms / 1000 if t.cron is None else None,
        tz=t.tz,
        start_at=_moment(t.start_ms),
        end_at=_moment(t.end_ms),
        limit=spec.limit or None,
        misfire=spec.misfire,
        next_run=_moment(due),
        last_run=_moment(int(state.get("last_run") or 0)),
        last_job=last_job,
        runs=int(state.get("runs") or 0),
    )
