"""How much work each workload does, and the rows of the results table."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from typing import Any

INFLIGHT = 32
"""Enqueue calls outstanding at once in the "in flight" workload (and a pre-fill without bulk),
and the threads of the threaded sync-API workload."""
SLEEP_SECONDS = 0.01
"""How long a ``sleep10`` job sleeps."""


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each workload does."""

    jobs: int
    sleep_jobs: int
    latency_samples: int
    memory_jobs: int
    concurrency: int
    processes: tuple[int, ...]

    @classmethod
    def from_json(cls, text: str) -> Sizes:
        """The sizes ``run.py`` passes on the command line."""
        data = json.loads(text)
        data["processes"] = tuple(data["processes"])
        return cls(**data)

    def to_json(self) -> str:
        """The inverse of :meth:`from_json`."""
        return json.dumps(asdict(self))


FULL = Sizes(
    jobs=20_000,
    sleep_jobs=2_000,
    latency_samples=1_000,
    memory_jobs=10_000,
    concurrency=100,
    processes=(1, 2, 4),
)
SMOKE = dataclasses.replace(FULL, jobs=200, sleep_jobs=100, latency_samples=20, memory_jobs=200)

HIGHER = "higher"
LOWER = "lower"


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One row of the results table: what is measured and which direction is better."""

    key: str
    label: str
    unit: str
    better: str
    digits: int


def metric_defs(sizes: Sizes) -> list[MetricDef]:
    """The rows of the table, in order, labelled with the sizes used."""
    ideal = sizes.sleep_jobs / sizes.concurrency * SLEEP_SECONDS
    c = sizes.concurrency
    rows = [
        MetricDef("enqueue_single", f"Enqueue one by one ({sizes.jobs:,})", "jobs/s", HIGHER, 0),
        MetricDef(
            "enqueue_inflight",
            f"Enqueue, {INFLIGHT} in flight ({sizes.jobs:,})",
            "jobs/s",
            HIGHER,
            0,
        ),
        MetricDef(
            "enqueue_bulk", f"Enqueue, library's bulk API ({sizes.jobs:,})", "jobs/s", HIGHER, 0
        ),
        MetricDef(
            "enqueue_sync", f"Enqueue one by one, sync API ({sizes.jobs:,})", "jobs/s", HIGHER, 0
        ),
        MetricDef(
            "enqueue_sync_threads",
            f"Enqueue, {INFLIGHT} threads, sync API ({sizes.jobs:,})",
            "jobs/s",
            HIGHER,
            0,
        ),
    ]
    for k in sizes.processes:
        procs = "1 worker process" if k == 1 else f"{k} worker processes"
        rows.append(
            MetricDef(
                f"process_{k}",
                f"Processing {sizes.jobs:,} pre-filled no-op jobs, {procs} (concurrency {c} each)",
                "jobs/s",
                HIGHER,
                0,
            )
        )
    rows += [
        MetricDef(
            "sleep_seconds",
            f"{sizes.sleep_jobs:,} jobs sleeping 10 ms, concurrency {c} (ideal {ideal:.2f} s)",
            "s",
            LOWER,
            2,
        ),
        MetricDef(
            "latency_p50",
            f"Enqueue → result latency p50 ({sizes.latency_samples:,} samples)",
            "ms",
            LOWER,
            2,
        ),
        MetricDef("latency_p99", "Enqueue → result latency p99", "ms", LOWER, 2),
        MetricDef("worker_cpu", "Worker CPU per job (processing, 1 process)", "µs/job", LOWER, 1),
        MetricDef("redis_cpu", "redis-server CPU per job (processing)", "µs/job", LOWER, 1),
        MetricDef("cmds_enqueue", "Redis commands per job: enqueue", "cmds/job", LOWER, 2),
        MetricDef("cmds_process", "Redis commands per job: processing", "cmds/job", LOWER, 2),
        MetricDef(
            "cmds_total", "Redis commands per job: enqueue + processing", "cmds/job", LOWER, 2
        ),
        MetricDef(
            "scripts_total",
            "… of which Lua script calls (EVALSHA, EVAL, FCALL), whose inner commands are "
            "counted above",
            "calls/job",
            LOWER,
            2,
        ),
        MetricDef(
            "memory", f"Redis memory per queued job ({sizes.memory_jobs:,})", "bytes/job", LOWER, 0
        ),
    ]
    return rows


def resized(sizes: Sizes, **overrides: int | None) -> Sizes:
    """`sizes` with every override that is not None applied (the command line's size flags)."""
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(sizes, **given)
