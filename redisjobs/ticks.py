"""When a schedule ticks, and which ticks to fire once it is due: pure functions of given times.

A schedule ticks on a cron expression, read by `cronsim` in the schedule's time zone
(`zoneinfo`), or every N seconds from an anchor (its `start_at`, else the Unix epoch, so
``every=60`` ticks at each whole minute and a spec ticks at the same instants whichever worker
computes it). Times are epoch milliseconds on Redis's clock; nothing here reads a clock, so the
worker passes Redis's now and the tests pass chosen instants (DST days among them).

cronsim follows Debian cron across DST changes: a job at a fixed local time that falls in the
hour skipped in spring runs at the first minute after it (02:30 becomes 03:00), one in the hour
repeated in autumn runs once (the first 02:30); expressions with ``*`` in the minute or hour
field tick on every real instant that matches (the repeated hour twice).

Misfire. A tick is missed when a worker gets to it more than :func:`grace` after its time (all
workers were down, or stalled). What happens to missed ticks is the schedule's ``misfire``:
``skip`` fires none of them, ``run_once`` fires one job for the latest of them, ``run_all`` one
per missed tick, :data:`FIRE_BATCH` per call (the worker calls again at once until it caught up,
so every missed tick gets its job, in order, with other clients' commands in between). Ticks
still within the grace window are on time and always fire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

Misfire = Literal["skip", "run_once", "run_all"]
MISFIRES: tuple[Misfire, ...] = ("skip", "run_once", "run_all")

FIRE_BATCH = 100
"""Jobs one ``fire`` call creates at most (a call stays around a millisecond of Redis time)."""
GRACE_MIN_MS = 2_000
"""A tick is on time for at least this long: a worker that wakes a moment late (a busy host, a
pause of its event loop) still fires it rather than calling it missed."""
GRACE_MAX_MS = 60_000
"""And for at most this long: a daily schedule whose workers were down for an hour missed it."""


def grace(period_ms: int) -> int:
    """How late a tick may be fired and still count as on time: half the schedule's period,
    within [:data:`GRACE_MIN_MS`, :data:`GRACE_MAX_MS`]."""
    return min(max(period_ms // 2, GRACE_MIN_MS), GRACE_MAX_MS)


def check_cron(expr: str) -> str:
    """`expr` when cronsim reads it (5 fields, or 6 with seconds first).

    Raises:
        ValueError: it does not parse (the message says which field).
    """
    if not isinstance(expr, str) or not expr.strip() or len(expr) > 200:
        raise ValueError(f"a cron expression is a string of 5 or 6 fields, got {expr!r}")
    try:
        CronSim(expr, datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC")))
    except (CronSimError, ValueError, IndexError) as exc:
        raise ValueError(f"invalid cron expression {expr!r}: {exc}") from None
    return expr


@dataclass(frozen=True, slots=True)
class Timing:
    """When a schedule ticks.

    Attributes:
        cron: a cron expression, or None for an interval.
        every_ms: the interval (0 with `cron`).
        tz: the IANA time zone a cron expression is read in.
        start_ms: no tick before it (epoch ms; 0: none), and the anchor of an interval.
        end_ms: no tick after it (0: none).
    """

    cron: str | None
    every_ms: int
    tz: str = "UTC"
    start_ms: int = 0
    end_ms: int = 0

    def next_after(self, t_ms: int) -> int | None:
        """The first tick strictly after `t_ms` and not before `start_ms` (None: never again;
        `end_ms` is not applied here, see :func:`plan`)."""
        t = max(t_ms, self.start_ms - 1)
        if self.cron is None:
            return self.start_ms + ((t - self.start_ms) // self.every_ms + 1) * self.every_ms
        return self._cron(t, reverse=False)

    def last_at_or_before(self, t_ms: int) -> int | None:
        """The latest tick at or before `t_ms` and not before `start_ms` (None: there is none)."""
        if t_ms < self.start_ms:
            return None
        if self.cron is None:
            return self.start_ms + (t_ms - self.start_ms) // self.every_ms * self.every_ms
        found = self._cron(t_ms, reverse=True)
        return found if found is not None and found >= self.start_ms else None

    def _cron(self, t_ms: int, *, reverse: bool) -> int | None:
        """The cron tick strictly after `t_ms`, or (`reverse`) at or before it.

        cronsim drops the fraction of a second and then steps: forward it returns a tick after
        the whole second, which (ticks being whole seconds) is after `t_ms`; in reverse it
        returns one at or before the whole second when there was a fraction, and strictly
        before it when there was none, hence the millisecond added to a whole second.
        """
        assert self.cron is not None
        if reverse and t_ms % 1000 == 0:
            t_ms += 1
        at = datetime.fromtimestamp(t_ms / 1000, ZoneInfo(self.tz))
        try:
            when = next(CronSim(self.cron, at, reverse=reverse))
        except StopIteration:  # no match within 50 years
            return None
        return round(when.timestamp() * 1000)

    def period_at(self, tick_ms: int) -> int:
        """The time from `tick_ms` to the tick after it (a day for a last tick)."""
        nxt = self.next_after(tick_ms)
        return 86_400_000 if nxt is None else nxt - tick_ms


class Plan(NamedTuple):
    """What one ``fire`` call does: the ticks to create a job for, and the next due time."""

    ticks: list[int]
    next_due: int | None
    """None: the schedule has no tick left (past its end, or its cron never matches again)."""


def plan(timing: Timing, misfire: Misfire, due_ms: int, now_ms: int, room: int) -> Plan:
    """The ticks to fire now for a schedule due at `due_ms` (a tick), at Redis time `now_ms`.

    Args:
        timing: when it ticks.
        misfire: what to do with missed ticks (see the module's doc).
        due_ms: its next due time as stored (the earliest tick not handled yet).
        now_ms: Redis's now.
        room: ticks it may fire in this call at most (:data:`FIRE_BATCH`, less when its
            `limit` leaves fewer runs).

    Returns:
        The ticks, oldest first, none after `now_ms` or `end_ms`, and the next due time: the
        first tick not handled (after `now_ms`, unless `room` ran out first).
    """
    missed_before = now_ms - grace(timing.period_at(due_ms))
    ticks: list[int] = []
    t: int | None = due_ms
    if due_ms < missed_before and misfire != "run_all":
        latest = timing.last_at_or_before(missed_before - 1)
        if misfire == "run_once" and latest is not None and latest >= due_ms:
            ticks.append(latest)
        t = timing.next_after(missed_before - 1)
    while t is not None and t <= now_ms and len(ticks) < room:
        if timing.end_ms and t > timing.end_ms:
            break
        ticks.append(t)
        t = timing.next_after(t)
    if timing.end_ms and t is not None and t > timing.end_ms:
        t = None
    return Plan(ticks, t)
