"""Periodic enqueues (Pyjobkit's ``pyjobkit.scheduler``): ``Scheduler(engine).every("5m",
name=..., kind=..., payload=...)`` and ``await scheduler.run()``.

Each run of an entry is enqueued with the idempotency key ``scheduler:<name>:<slot>``, the slot
being the interval's time bucket on Redis's clock (unless a `clock` is given), so schedulers
racing in several processes (say, during a leader handover) enqueue each slot once.

redisjobs' own schedules (``Client.schedule``, cron or interval) are the fleet-wide way: the
workers run them, with no scheduler process and no leader.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import metrics
from .leader import LeaderLock, stopped

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["Scheduler", "parse_interval"]

log = logging.getLogger("pyjobkit.scheduler")

_INTERVAL = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>[smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(value: str | float | timedelta) -> timedelta:
    """``"5m"``, ``"1h"``, ``"90"``, seconds or a timedelta as a timedelta.

    Raises:
        ValueError: anything else, or an interval that is not positive.
    """
    if isinstance(value, timedelta):
        interval = value
    elif isinstance(value, int | float):
        interval = timedelta(seconds=float(value))
    else:
        found = _INTERVAL.fullmatch(str(value).strip())
        if found is None:
            raise ValueError(f"interval {value!r} must be e.g. '5m', '1h', '90', or a timedelta")
        interval = timedelta(seconds=float(found["value"]) * _UNITS[found["unit"]])
    if interval.total_seconds() <= 0:
        raise ValueError("interval must be positive")
    return interval


@dataclass
class _Entry:
    interval: float
    kind: str
    payload: dict[str, Any]
    options: dict[str, Any]
    next_run: float | None  # None: set at the first tick (now, or one interval on)
    immediately: bool = False
    last_run: float = field(default=0.0)


class Scheduler:
    """Enqueues registered entries at their intervals.

    Args:
        engine: the engine to enqueue with.
        clock: seconds now (default: Redis's clock, read at each tick).
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], float] | None = None) -> None:
        self.engine = engine
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def every(
        self,
        interval: str | float | timedelta,
        *,
        name: str,
        kind: str,
        payload: dict[str, Any] | None = None,
        run_immediately: bool = False,
        **enqueue_kwargs: Any,
    ) -> None:
        """Enqueue a `kind` job every `interval` (the first one interval from now, or at the
        next tick with `run_immediately`); replaces an entry of the same `name`."""
        seconds = parse_interval(interval).total_seconds()
        start = None if self._clock is None else self._clock()
        first = None if start is None else start + (0 if run_immediately else seconds)
        self._entries[name] = _Entry(
            seconds, kind, dict(payload or {}), enqueue_kwargs, first, run_immediately
        )

    def remove(self, name: str) -> None:
        """Drop entry `name` (nothing if there is none)."""
        self._entries.pop(name, None)

    def entries(self) -> list[str]:
        """The entries' names, sorted."""
        return sorted(self._entries)

    async def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        return await (await self.engine.client()).server_time()

    async def tick(self) -> int:
        """Enqueue every entry that is due; how many were enqueued. An entry whose enqueue
        fails is logged, counted, and tried again at the next tick."""
        now, done = await self._now(), 0
        for name, entry in list(self._entries.items()):
            if entry.next_run is None:
                entry.next_run = now + (0 if entry.immediately else entry.interval)
            if entry.next_run > now:
                continue
            options = {
                "idempotency_key": f"scheduler:{name}:{int(entry.next_run // entry.interval)}"
            }
            try:
                await self.engine.enqueue(
                    kind=entry.kind, payload=entry.payload, **(options | entry.options)
                )
            except Exception as exc:
                metrics.scheduler_enqueue_failures_total.inc()
                log.warning(
                    "scheduler entry %r failed to enqueue (retried next tick): %s", name, exc
                )
                continue
            entry.last_run, entry.next_run, done = now, now + entry.interval, done + 1
        return done

    async def run(
        self,
        *,
        stop_event: asyncio.Event | None = None,
        leader_lock: LeaderLock | None = None,
        lock_ttl_s: float = 30.0,
        sleep_resolution_s: float = 1.0,
    ) -> None:
        """Tick every `sleep_resolution_s` until `stop_event` is set; with a `leader_lock`,
        only while holding it (released on the way out)."""
        stop = stop_event or asyncio.Event()
        try:
            while not stop.is_set():
                if leader_lock is None or await leader_lock.try_acquire(ttl_s=lock_ttl_s):
                    await self.tick()
                if await stopped(stop, sleep_resolution_s):
                    return
        finally:
            if leader_lock is not None:
                await leader_lock.release()
