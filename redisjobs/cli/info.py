"""``redisjobs info``: each queue's jobs by status and throughput, and the live workers."""

from __future__ import annotations

import argparse
from typing import Any

from ..job import JobStatus
from ..queries import QueueCounts, WorkerInfo
from .common import connect
from .render import age, print_json, table

STATUSES = [s.value for s in JobStatus]


async def info(args: argparse.Namespace) -> int:
    """Print the queues (counts, completed per second over the last minute) and the workers."""
    async with connect(args.redis, args.command) as client:
        counts = await client.job_counts()
        now_ms = int(counts[0].read_at * 1000) if counts else None
        rates = await client.event_rates([c.name for c in counts], now_ms=now_ms)
        live = await client.workers()
        now = await client.server_time()  # heartbeats are on Redis's clock too
    queues = {c.name: _queue(c, rates[c.name]) for c in counts}
    workers = [_worker(w, now) for w in live]
    total = round(sum(q["completed_per_second"] for q in queues.values()), 3)
    if args.json:
        print_json({"queues": queues, "workers": workers, "completed_per_second": total})
        return 0
    print(_queue_table(queues) if queues else "no queues")
    print()
    print(_worker_table(workers) if workers else "no live workers")
    print()
    print(f"throughput: {total:g} jobs/s completed over the last minute")
    return 0


def _queue(counts: QueueCounts, rates: dict[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {s: counts.counts[s] for s in STATUSES}
    out["completed_per_second"] = round(rates["completed"], 3)
    return out


def _worker(w: WorkerInfo, now: float) -> dict[str, Any]:
    beat = w.heartbeat_at
    return {
        "id": w.id,
        "host": w.host,
        "pid": w.pid,
        "queue": ",".join(w.queues),
        "concurrency": w.concurrency,
        "running": w.held,
        "hung_threads": w.hung_threads,  # threads of stopped jobs still running
        "started_at": w.started_at,
        "heartbeat_at": beat,
        "heartbeat_age": round(now - beat.timestamp(), 3) if beat is not None else None,
    }


def _queue_table(queues: dict[str, dict[str, Any]]) -> str:
    rows = [
        [name, *(q[s] for s in STATUSES), f"{q['completed_per_second']:.2f}"]
        for name, q in queues.items()
    ]
    headers = ["QUEUE", *(s.upper() for s in STATUSES), "COMPLETED/S"]
    return table(rows, headers, right=range(1, len(headers)))


def _worker_table(workers: list[dict[str, Any]]) -> str:
    rows = [
        [
            w["id"],
            w["host"],
            w["pid"],
            w["queue"],
            w["concurrency"],
            w["running"],
            "-" if w["heartbeat_age"] is None else f"{age(w['heartbeat_age'])} ago",
        ]
        for w in workers
    ]
    headers = ["WORKER", "HOST", "PID", "QUEUE", "CONCURRENCY", "RUNNING", "HEARTBEAT"]
    return table(rows, headers, right={2, 4, 5, 6})
