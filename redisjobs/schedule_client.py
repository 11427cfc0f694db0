"""The schedule calls of :class:`redisjobs.Client`: schedule, unschedule, list schedules.

What they say to Redis is in :mod:`redisjobs.schedule_flows`, which :class:`redisjobs.sync.Client`
drives too; the jobs themselves are made by the workers' schedule loops
(:mod:`redisjobs.schedule_loop`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Unpack

from .getters import QueueGetters, reaching
from .jobrules import JobRules
from .options import JobOptions
from .roundtrips import run
from .schedule_flows import list_flow, unschedule_flow, upsert_flow
from .schedule_spec import Schedule, ScheduleSpec, check_schedule_id
from .ticks import Misfire


def spec_of(given: Mapping[str, Any], defaults: JobOptions, max_payload_bytes: int) -> ScheduleSpec:
    """The spec of a ``schedule`` call whose arguments are `given` (its ``locals()``, taken
    first thing), either client's.

    Raises:
        What :meth:`ScheduleSpec.build` raises.
    """
    args = {k: v for k, v in given.items() if k not in ("self", "queue", "options")}
    return ScheduleSpec.build(
        **args, options=given["options"], defaults=defaults, max_payload_bytes=max_payload_bytes
    )


class ScheduleOptions(JobRules, total=False):
    """The job options of a schedule's jobs, its rules among them (None, the default of each,
    keeps the client's)."""

    max_retries: int | None
    retry_delay: float | None
    retry_backoff: float | None
    retry_jitter: float | None
    timeout: float | None
    result_ttl: float | None
    priority: int | None


class Scheduling(QueueGetters):
    """The schedule calls of a :class:`~redisjobs.Client` (a mixin over its connection)."""

    max_payload_bytes: int
    options: JobOptions

    @reaching
    async def schedule(
        self,
        schedule_id: str,
        kind: str,
        payload: Any = None,
        *,
        cron: str | None = None,
        every: float | None = None,
        tz: str = "UTC",
        queue: str | None = None,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        limit: int | None = None,
        misfire: Misfire = "skip",
        **options: Unpack[ScheduleOptions],
    ) -> bool:
        """Create or change a recurring job: an idempotent upsert.

        The workers of the queue make one job per tick, whichever and however many of them
        run, with the id ``<schedule_id>@<tick epoch ms>`` (docs/architecture.md, "Schedules").

        Args:
            schedule_id: its name, a job id of at most 186 characters.
            kind, payload: what each job runs, as :meth:`enqueue`'s.
            cron: a cron expression (5 fields, or 6 with seconds first), read in `tz`.
            every: or an interval in seconds, ticking at ``start_at + k·every`` (without
                `start_at`, from the Unix epoch: ``every=60`` ticks at each whole minute).
            tz: the IANA time zone of `cron` (DST as Debian cron: see :mod:`redisjobs.ticks`).
            queue: its jobs' queue (default: the client's).
            start_at, end_at: no tick before, after (a naive datetime is UTC).
            limit: ticks fired at most; then it is finished (kept listed, never fires again).
            misfire: after its workers were away, ``skip`` makes no job for the ticks missed,
                ``run_once`` one, ``run_all`` one per tick (100 a call, until caught up).
            **options: its jobs' options, as :meth:`enqueue`'s but ``job_id delay at``
                (``unique="until_done"``: no tick's job while the last one runs).

        Returns:
            True when it was created or changed (its next run computed anew; its runs so far
            kept), False when this very spec was stored already (nothing changed, it keeps its
            next run).

        Raises:
            InvalidJobId: a bad `schedule_id`. ValueError, TypeError: a bad cron expression,
                time zone, interval, limit, misfire or option (nothing is written).
            CallRefused, SerializationError: a payload no worker would run or msgpack cannot
                encode. ConnectionFailed: Redis cannot be reached.
        """
        spec = spec_of(locals(), self.options, self.max_payload_bytes)
        redis, scripts = await self._conn(self.keys(queue))
        return await run(redis, upsert_flow(self.keys(queue), spec, self.registry), scripts)

    @reaching
    async def unschedule(self, schedule_id: str, *, queue: str | None = None) -> bool:
        """Remove a schedule (the jobs it made stay); True when there was one."""
        keys = self.keys(queue)
        redis, scripts = await self._conn(keys)
        return await run(redis, unschedule_flow(keys, check_schedule_id(schedule_id)), scripts)

    @reaching
    async def schedules(self, queue: str | None = None) -> list[Schedule]:
        """The queue's schedules by id, each with its spec, next run, last run and job, and
        runs so far (a finished one has no next run)."""
        redis, scripts = await self._conn(self.keys(queue))
        return await run(redis, list_flow(self.keys(queue)), scripts)
