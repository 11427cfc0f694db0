"""A worker's schedule loop: the due ticks of the queue's schedules become jobs.

Every worker of a queue runs one, beside the promote loop and woken the same way, by a message
on the queue's control channel: ``schedule:<ms>``, which an upsert publishes (a message of its
own, so that delayed enqueues and retries, which wake the promote loops, cost the schedule loops
nothing). One ``due_schedules`` call returns the schedules
due now, their specs and Redis's now; for each, the ticks to fire and the next due time are
computed here (:func:`redisjobs.ticks.plan`: cron, time zones, DST, misfire), and one ``fire``
call creates the jobs if the schedule is still as it was read (its rev and due time, a
compare-and-set token), so however many workers race, each tick makes one job. Then the loop
sleeps until the earliest next due time on Redis's clock (capped and jittered as the promote
loop's sleep), or until an upsert announces one.

At start it first upserts the schedules the worker's app declares (``@app.task(cron=...)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .connection import Backoff
from .keys import REGISTRY, QueueKeys, Registry
from .limits import TaskLimit
from .roundtrips import Flow, run
from .schedule_flows import Due, due_flow, fire_flow, upsert_flow
from .schedule_spec import ScheduleSpec
from .scripts import Scripts
from .ticks import FIRE_BATCH, Plan, plan

log = logging.getLogger("redisjobs.schedules")


def plan_due(due: Due, now_ms: int) -> tuple[ScheduleSpec, Plan]:
    """The spec of a due schedule and what to fire for it at `now_ms`.

    Raises:
        ValueError: its spec does not decode, or names what this host cannot compute (a time
            zone its tz database lacks).
    """
    spec = ScheduleSpec.decode(due.schedule_id, due.spec)
    room = FIRE_BATCH if not spec.limit else min(FIRE_BATCH, spec.limit - due.runs)
    try:
        return spec, plan(spec.timing, spec.misfire, due.due_ms, now_ms, max(room, 0))
    except (LookupError, ValueError, TypeError, ArithmeticError) as exc:
        raise ValueError(f"schedule {due.schedule_id!r}: cannot compute its ticks ({exc})") from exc


class ScheduleLoop:
    """Fires the due schedules of one queue.

    Args:
        redis: the worker's command client.
        scripts: the scripts on it.
        keys: the queue.
        declared: schedules, and task limits, to upsert before the first look (an app's
            tasks').
        on_fired: called after jobs were created (the embedded backend wakes its fetcher).
        max_sleep: the longest sleep between two looks (seconds).
        registry: the keys outside any queue (a cluster's, on a cluster), where a declared
            schedule lists its queue.
    """

    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        keys: QueueKeys,
        declared: Sequence[ScheduleSpec | TaskLimit] = (),
        on_fired: Callable[[], None] | None = None,
        *,
        max_sleep: float = 5.0,
        registry: Registry = REGISTRY,
    ) -> None:
        self._redis, self._scripts, self._keys = redis, scripts, keys
        self._registry = registry
        self._declared = list(declared)
        self._max_sleep = max_sleep
        self._on_fired = on_fired
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look now (a schedule may have become due earlier than planned)."""
        self._wake.set()

    async def run(self) -> None:
        """Upsert the declared schedules and limits, then fire due ticks forever (until
        cancelled)."""
        backoff = Backoff(f"schedules {self._keys.queue}", log)
        while self._declared:
            item = self._declared[0]
            flow: Flow[Any] | None
            if isinstance(item, TaskLimit):
                flow = item.upsert(self._keys)
            else:
                flow = upsert_flow(self._keys, item, self._registry)
            try:
                if flow is not None:
                    await run(self._redis, flow, self._scripts)
            except (RedisError, OSError) as exc:
                await backoff.failed(exc)
                continue
            backoff.ok()
            self._declared.pop(0)
        while True:
            self._wake.clear()
            try:
                sleep = await self.once()
            except (RedisError, OSError) as exc:
                await backoff.failed(exc)
                continue
            backoff.ok()
            if sleep > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), sleep)

    async def once(self) -> float:
        """Fire what is due now; returns the seconds until the next look."""
        read = await run(self._redis, due_flow(self._keys), self._scripts)
        acted = False
        for due in read.due:
            acted = await self._fire(due, read.now_ms) or acted
        if acted:
            return 0.0  # look again at once: a backlog, or a race another worker won
        sleep = self._max_sleep * random.uniform(0.8, 1.0)
        if read.next_due_ms > read.now_ms:
            sleep = min(sleep, (read.next_due_ms - read.now_ms) / 1000)
        return sleep  # nothing due, or only schedules this worker cannot compute

    async def _fire(self, due: Due, now_ms: int) -> bool:
        """Fire one due schedule; False when it cannot be computed (logged)."""
        try:
            spec, todo = plan_due(due, now_ms)
        except ValueError as exc:
            log.error("%s", exc)
            return False
        rows = [spec.row(tick) for tick in todo.ticks]
        flow = fire_flow(self._keys, due, todo.next_due, rows)
        fired, created = await run(self._redis, flow, self._scripts)
        if created and self._on_fired is not None:
            self._on_fired()
        if fired and todo.ticks:
            log.debug("schedule %s: %d ticks, %d jobs", due.schedule_id, len(todo.ticks), created)
        return True
