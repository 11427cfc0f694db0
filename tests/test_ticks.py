"""The tick computation, a pure function, at chosen instants: cron in a time zone across both
DST changes, intervals, start and end, and the three misfire modes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from redisjobs.ticks import FIRE_BATCH, GRACE_MAX_MS, GRACE_MIN_MS, Timing, check_cron, grace, plan

BERLIN = ZoneInfo("Europe/Berlin")


def ms(*parts: int, tz: ZoneInfo | None = None, fold: int = 0) -> int:
    return round(datetime(*parts, tzinfo=tz or UTC, fold=fold).timestamp() * 1000)  # type: ignore[arg-type,misc]


def utc(t: int | None) -> str:
    assert t is not None
    return datetime.fromtimestamp(t / 1000, UTC).strftime("%m-%d %H:%M:%S")


def walk(timing: Timing, after: int, n: int) -> list[str]:
    out = []
    t: int | None = after
    for _ in range(n):
        t = timing.next_after(t)  # type: ignore[arg-type]
        out.append(utc(t))
    return out


def test_fixed_local_time_across_spring_forward() -> None:
    # 2026-03-29: Berlin skips 02:00-03:00 (CET -> CEST); Debian cron runs 02:30 at 03:00.
    daily = Timing("30 2 * * *", 0, "Europe/Berlin")
    assert walk(daily, ms(2026, 3, 27, 12), 4) == [
        "03-28 01:30:00",  # 02:30 CET
        "03-29 01:00:00",  # 03:00 CEST: the skipped 02:30, once
        "03-30 00:30:00",  # 02:30 CEST
        "03-31 00:30:00",
    ]


def test_fixed_local_time_across_fall_back_runs_once() -> None:
    # 2026-10-25: Berlin repeats 02:00-03:00 (CEST -> CET); 02:30 runs at its first occurrence.
    daily = Timing("30 2 * * *", 0, "Europe/Berlin")
    assert walk(daily, ms(2026, 10, 24, 12), 3) == [
        "10-25 00:30:00",  # 02:30 CEST
        "10-26 01:30:00",  # 02:30 CET: not a second run on the 25th
        "10-27 01:30:00",
    ]
    # Computing from inside the repeated hour (its second pass) does not fire 02:30 again.
    second_pass = ms(2026, 10, 25, 2, 45, tz=BERLIN, fold=1)
    assert utc(daily.next_after(second_pass)) == "10-26 01:30:00"


def test_every_half_hour_ticks_on_every_real_instant_of_the_repeated_hour() -> None:
    half = Timing("*/30 * * * *", 0, "Europe/Berlin")
    assert walk(half, ms(2026, 10, 25, 1, 50, tz=BERLIN), 5) == [
        "10-25 00:00:00",  # 02:00 CEST
        "10-25 00:30:00",  # 02:30 CEST
        "10-25 01:00:00",  # 02:00 CET
        "10-25 01:30:00",  # 02:30 CET
        "10-25 02:00:00",  # 03:00 CET
    ]
    # and no tick in the hour skipped in spring: 01:30 CET, then 03:00 CEST
    assert walk(half, ms(2026, 3, 29, 1, 10, tz=BERLIN), 2) == ["03-29 00:30:00", "03-29 01:00:00"]


def test_last_tick_at_or_before() -> None:
    half = Timing("*/30 * * * *", 0, "Europe/Berlin")
    at = ms(2026, 10, 25, 0, 30)
    assert half.last_at_or_before(at) == at
    assert half.last_at_or_before(at - 1) == at - 1_800_000
    assert half.last_at_or_before(at + 999) == at
    every = Timing(None, 10_000, start_ms=5_000)
    assert every.last_at_or_before(25_000) == 25_000
    assert every.last_at_or_before(24_999) == 15_000
    assert every.last_at_or_before(4_999) is None


def test_intervals_tick_from_start_or_the_epoch() -> None:
    assert Timing(None, 60_000).next_after(ms(2026, 1, 1, 10, 0, 30)) == ms(2026, 1, 1, 10, 1)
    anchored = Timing(None, 60_000, start_ms=ms(2026, 1, 1, 10, 0, 7))
    assert anchored.next_after(0) == anchored.start_ms  # the start is the first tick
    assert anchored.next_after(anchored.start_ms) == anchored.start_ms + 60_000


def test_start_bounds_cron_ticks() -> None:
    start = ms(2026, 6, 1, 12, 0, 1)
    hourly = Timing("0 * * * *", 0, "UTC", start_ms=start)
    assert hourly.next_after(0) == ms(2026, 6, 1, 13)


def test_grace_is_half_the_period_within_bounds() -> None:
    assert grace(1_000) == GRACE_MIN_MS
    assert grace(10_000) == 5_000
    assert grace(86_400_000) == GRACE_MAX_MS


EVERY_10 = Timing(None, 10_000)


def test_on_time_ticks_fire_whatever_the_mode() -> None:
    for mode in ("skip", "run_once", "run_all"):
        assert plan(EVERY_10, mode, 100_000, 100_040, FIRE_BATCH) == ([100_000], 110_000)
        # a worker that is a moment late (within the grace) still fires the tick
        assert plan(EVERY_10, mode, 100_000, 104_900, FIRE_BATCH) == ([100_000], 110_000)


def test_misfire_after_an_outage() -> None:
    # Due at 100 s, workers back at 200.4 s: ticks 100..190 s are missed (grace 5 s), 200 s is
    # on time.
    now = 200_400
    assert plan(EVERY_10, "skip", 100_000, now, FIRE_BATCH) == ([200_000], 210_000)
    assert plan(EVERY_10, "run_once", 100_000, now, FIRE_BATCH) == ([190_000, 200_000], 210_000)
    every_tick = list(range(100_000, 200_001, 10_000))
    assert plan(EVERY_10, "run_all", 100_000, now, FIRE_BATCH) == (every_tick, 210_000)
    # back at 206 s: 200 s is missed too, and nothing is on time
    assert plan(EVERY_10, "skip", 100_000, 206_000, FIRE_BATCH) == ([], 210_000)
    assert plan(EVERY_10, "run_once", 100_000, 206_000, FIRE_BATCH) == ([200_000], 210_000)


def test_run_all_goes_a_batch_at_a_time() -> None:
    first = plan(EVERY_10, "run_all", 0, 5_000_000, FIRE_BATCH)
    assert first.ticks == list(range(0, 1_000_000, 10_000))  # 100 ticks
    assert first.next_due == 1_000_000  # still in the past: the worker calls again at once
    assert plan(EVERY_10, "run_all", 0, 5_000_000, 3) == ([0, 10_000, 20_000], 30_000)


def test_end_stops_the_ticks() -> None:
    ending = Timing(None, 10_000, end_ms=125_000)
    assert plan(ending, "run_all", 100_000, 200_000, FIRE_BATCH) == (
        [100_000, 110_000, 120_000],
        None,
    )
    assert plan(ending, "skip", 120_000, 120_001, FIRE_BATCH) == ([120_000], None)


def test_skip_over_a_long_outage_of_a_cron_schedule_is_cheap() -> None:
    # Every second for a year: the catch-up point is computed, not walked to.
    every_second = Timing("* * * * * *", 0, "Europe/Berlin")
    base = ms(2026, 1, 1)
    began = time.monotonic()
    # at base + 0.3 s the grace (2 s) keeps the ticks of base - 1 s and base
    todo = plan(every_second, "skip", ms(2025, 1, 1), base + 300, FIRE_BATCH)
    assert todo == ([base - 1000, base], base + 1000)
    once = plan(every_second, "run_once", ms(2025, 1, 1), base + 300, FIRE_BATCH)
    assert once.ticks == [base - 2000, base - 1000, base]
    assert time.monotonic() - began < 1


@pytest.mark.parametrize("expr", ["", "* * *", "61 * * * *", "* * 31 2 *", "x" * 300, "@daily"])
def test_bad_cron_is_refused(expr: str) -> None:
    with pytest.raises(ValueError, match="cron"):
        check_cron(expr)


def test_good_cron_is_kept() -> None:
    assert check_cron("*/5 * * * *") == "*/5 * * * *"
    assert check_cron("0 30 9 * * MON-FRI") == "0 30 9 * * MON-FRI"
