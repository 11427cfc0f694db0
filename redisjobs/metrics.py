"""Prometheus metrics: every queue's state read from Redis on scrape, job durations in-process.

The queue metrics are not counted in this process: each scrape reads the queues' stats hashes,
status indexes, the worker registry and the master's replication state, so any process (the
dashboard, one worker of a fleet) shows the same numbers for the whole deployment. Only the job
duration histogram and the process collectors (``process_*``, ``python_*``) are this process's
own: the workers running here observe the durations (see :func:`enable_job_durations`).

prometheus-client (the ``[metrics]`` extra) is imported here and nowhere else.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import worker as _worker
from .client import Client
from .httpserve import Reply, TinyServer
from .job import JobStatus
from .queries import COUNTERS

log = logging.getLogger("redisjobs.metrics")

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
"""Seconds; jobs range from no-ops to long subprocesses, hence the long tail."""

# A registry of its own rather than prometheus-client's global one, so that importing this
# module never changes what an application's own /metrics shows.
_PROCESS = CollectorRegistry(auto_describe=True)
JOB_DURATION = Histogram(
    "redisjobs_job_duration_seconds",
    "Time from a job's start to its outcome, as observed by the workers of this process.",
    ["queue", "kind", "name", "outcome"],
    buckets=DURATION_BUCKETS,
    registry=_PROCESS,
)
# This process's CPU, memory, open files, garbage collections and Python version (the same
# families prometheus-client's default registry has).
ProcessCollector(registry=_PROCESS)
PlatformCollector(registry=_PROCESS)
GCCollector(registry=_PROCESS)


def _observe(queue: str, kind: str, name: str, outcome: str, seconds: float) -> None:
    JOB_DURATION.labels(queue, kind, name, outcome).observe(seconds)


def enable_job_durations() -> None:
    """Have the workers of this process observe :data:`JOB_DURATION` (idempotent).

    Until this is called the workers do not even read the clock for it.
    """
    if _observe not in _worker.JOB_OBSERVERS:
        _worker.JOB_OBSERVERS.append(_observe)


class _Families(Collector):
    """A collector that yields families read beforehand (collectors are sync, Redis is not)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self.families


async def queue_families(client: Client) -> list[Metric]:
    """Every queue's metrics, read from Redis now."""
    labels = ["queue"]
    depth = GaugeMetricFamily(
        "redisjobs_queue_jobs", "Jobs in the queue by status.", labels=["queue", "status"]
    )
    dead = GaugeMetricFamily("redisjobs_queue_dead_jobs", "Dead letters kept.", labels=labels)
    totals = {
        name: CounterMetricFamily(
            f"redisjobs_jobs_{name}", f"Jobs {name} since the queue began.", labels=labels
        )
        for name in COUNTERS
        if name != "throttled"
    }
    # not jobs: the calls a limit held back (one per call, however many jobs waited)
    totals["throttled"] = CounterMetricFamily(
        "redisjobs_throttled",
        "Lease calls a rate limit, max_running or hold held back, since the queue began.",
        labels=labels,
    )
    oldest = GaugeMetricFamily(
        "redisjobs_queue_oldest_pending_age_seconds",
        "How long the oldest pending job has waited (0 when none is pending).",
        labels=labels,
    )
    reads = await client.job_counts()
    for read in reads:
        q = read.name
        for status in JobStatus:
            depth.add_metric([q, status.value], read.counts[status.value])
        dead.add_metric([q], read.counts["dead"])
        for name, family in totals.items():
            family.add_metric([q], read.totals[name])
        oldest.add_metric([q], read.pending_age)
    names = [read.name for read in reads]
    throttled = await throttled_family(client, names)
    return [depth, dead, *totals.values(), oldest, throttled, *await worker_families(client, names)]


async def throttled_family(client: Client, names: Sequence[str]) -> Metric:
    """Pending jobs held back by their limit key, per queue (0 for a queue without limits,
    whose limit keys are then not even read)."""
    family = GaugeMetricFamily(
        "redisjobs_queue_throttled_jobs",
        "Pending jobs held back by their limit key: its rate, a hold or its max_running.",
        labels=["queue"],
    )
    now = await client.server_time()
    for q in names:
        held = 0
        if await client.limits(q):
            # next_at None: off the schedule, at its max_running (a backlog waits for a slot)
            states = await client.limit_keys(q)
            held = sum(k.backlog for k in states if k.next_at is None or k.next_at > now)
        family.add_metric([q], held)
    return family


async def worker_families(client: Client, names: Sequence[str] = ()) -> list[Metric]:
    """Workers taking jobs and their slots, the jobs running and hung threads of every live
    or quiet one, per queue they serve, and 0 for each of
    `names` (the known queues) that no live worker serves, so that an alert on
    ``redisjobs_workers == 0`` can fire."""
    labels = ["queue"]
    workers = GaugeMetricFamily(
        "redisjobs_workers", "Live workers taking jobs (quiet ones are not).", labels=labels
    )
    slots = GaugeMetricFamily(
        "redisjobs_worker_slots", "Jobs the live workers may run at once.", labels=labels
    )
    busy = GaugeMetricFamily(
        "redisjobs_worker_slots_busy", "Jobs the live workers run now.", labels=labels
    )
    hung = GaugeMetricFamily(
        "redisjobs_worker_hung_threads",
        "Threads of stopped jobs still running (sync functions cannot be interrupted).",
        labels=labels,
    )
    sums: dict[str, list[int]] = {q: [0, 0, 0, 0] for q in names}
    for info in await client.workers():
        # a quiet worker takes no jobs: not counted as serving, but what it runs still is
        taking = info.taking
        for q in info.queues:
            row = sums.setdefault(q, [0, 0, 0, 0])
            counted = (taking, info.concurrency * taking, info.held, info.hung_threads)
            for i, value in enumerate(counted):
                row[i] += value
    for q, (count, concurrency, held, threads) in sorted(sums.items()):
        workers.add_metric([q], count)
        slots.add_metric([q], concurrency)
        busy.add_metric([q], held)
        hung.add_metric([q], threads)
    return [workers, slots, busy, hung]


async def node_families(client: Client) -> list[Metric]:
    """The Redis nodes serving the client by role, and each replica's lag behind the master."""
    nodes = GaugeMetricFamily(
        "redisjobs_redis_nodes",
        "Redis nodes serving redisjobs, by role (master, replica, sentinel).",
        labels=["role"],
    )
    lag = GaugeMetricFamily(
        "redisjobs_replica_lag_seconds",
        "Seconds since the replica last acknowledged the master, as the master reports it.",
        labels=["address"],
    )
    roles: Counter[str] = Counter()
    for node in await client.nodes():
        roles[node.role] += 1
        if node.role == "replica" and node.lag_s is not None:
            lag.add_metric([node.address], node.lag_s)
    for role, count in sorted(roles.items()):
        nodes.add_metric([role], count)
    return [nodes, lag]


async def render(client: Client) -> bytes:
    """The Prometheus text exposition: every queue and the Redis nodes from Redis, and this
    process's durations."""
    registry = CollectorRegistry(auto_describe=False)
    read = [*await queue_families(client), *await node_families(client)]
    registry.register(_Families([*read, *_PROCESS.collect()]))
    return generate_latest(registry)


def metrics_route(client: Any, path: str = "/metrics") -> Any:
    """A Starlette route serving :func:`render` from `client`'s Redis (for ``create_app``).

    Args:
        client: a :class:`redisjobs.Client`; it connects on first use.
        path: where to serve it.
    """
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def endpoint(_request: Request) -> Response:
        body = await render(client)  # it connects on first use
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return Route(path, endpoint, methods=["GET"], name="metrics")


class MetricsServer(TinyServer):
    """A minimal HTTP server of ``/metrics`` on the event loop (for ``worker --metrics-port``).

    It runs on the worker's own loop rather than in prometheus-client's thread, because the
    queue metrics are read with the async Redis client (and the embedded backend lives on
    this loop).

    Args:
        client: where to read the queues from; the server closes it in :meth:`aclose`.
        host: the address to listen on (default: this machine only).
        port: the port (0 = any free one; see :attr:`port` once started).
    """

    def __init__(self, client: Client, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(self._reply, host, port, name="metrics")
        self.client = client

    async def aclose(self) -> None:
        """Stop listening and close the client."""
        await super().aclose()
        await self.client.aclose()

    async def _reply(self, path: str) -> Reply | None:
        if path not in ("/", "/metrics"):
            return None
        return Reply("200 OK", await render(self.client), CONTENT_TYPE_LATEST)
