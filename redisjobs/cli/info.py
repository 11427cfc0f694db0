"""``redisjobs info``: each queue's jobs by status and throughput, the live workers, and the
Redis nodes serving them."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from datetime import datetime
from typing import Any

from ..client import Client
from ..job import JobStatus
from ..queries import QueueCounts
from ..workerinfo import WorkerInfo
from .common import UsageError, connect, until_stop_signal
from .render import age, is_terminal, print_json, print_json_line, table

STATUSES = [s.value for s in JobStatus]
DEFAULT_INTERVAL = 2.0
CLEAR = "\x1b[H\x1b[2J"
"""Cursor home, clear the screen: each refresh of ``info --watch`` on a terminal redraws it."""


async def info(args: argparse.Namespace) -> int:
    """Print the queues (counts, completed per second over the last minute), the workers and
    the Redis nodes (address, role, replication state and lag).

    With ``--watch``, again every ``--interval`` seconds until Ctrl-C (exit 0) or until Redis
    stops answering (exit 1).
    """
    if args.interval is not None and not args.watch:
        raise UsageError("--interval goes with --watch")
    async with connect(args.redis, args.command) as client:
        if args.watch:
            interval = DEFAULT_INTERVAL if args.interval is None else args.interval
            await until_stop_signal(_refresh(client, interval, as_json=args.json))
        elif args.json:
            print_json(await _snapshot(client))
        else:
            print(_text(await _snapshot(client)))
    return 0


async def _snapshot(client: Client) -> dict[str, Any]:
    """The document ``info --json`` prints: queues, workers, Redis nodes, total completed per
    second."""
    counts = await client.job_counts()
    now_ms = int(counts[0].read_at * 1000) if counts else None
    rates = await client.event_rates([c.name for c in counts], now_ms=now_ms)
    live = await client.workers()
    now = await client.server_time()  # heartbeats are on Redis's clock too
    queues = {c.name: _queue(c, rates[c.name]) for c in counts}
    workers = [_worker(w, now) for w in live]
    nodes = [dataclasses.asdict(n) for n in await client.nodes()]
    total = round(sum(q["completed_per_second"] for q in queues.values()), 3)
    return {"queues": queues, "workers": workers, "nodes": nodes, "completed_per_second": total}


def _text(snapshot: dict[str, Any]) -> str:
    queues, workers = snapshot["queues"], snapshot["workers"]
    return "\n\n".join(
        [
            _queue_table(queues) if queues else "no queues",
            _worker_table(workers) if workers else "no live workers",
            _node_table(snapshot["nodes"]),  # never empty: at least the node talked to
            f"throughput: {snapshot['completed_per_second']:g} jobs/s completed over the last "
            "minute",
        ]
    )


async def _refresh(client: Client, interval: float, *, as_json: bool) -> None:
    """Show a snapshot every `interval` s: redrawn on a terminal, else one after the other
    (a blank line between; with `as_json`, one JSON document per line)."""
    live = is_terminal() and not as_json
    while True:
        snapshot = await _snapshot(client)
        if as_json:
            print_json_line(snapshot)
        elif live:
            stamp = datetime.now().astimezone().strftime("%H:%M:%S")
            header = f"every {interval:g}s, {stamp}; Ctrl-C to stop"
            sys.stdout.write(f"{CLEAR}{header}\n\n{_text(snapshot)}\n")
            sys.stdout.flush()
        else:
            print(_text(snapshot) + "\n", flush=True)
        await asyncio.sleep(interval)


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


def _node_table(nodes: list[dict[str, Any]]) -> str:
    rows = [
        [
            n["address"],
            n["role"],
            n["state"] or "-",
            "-" if n["lag_s"] is None else f"{n['lag_s']}s",
            "-" if n["offset_behind"] is None else n["offset_behind"],
        ]
        for n in nodes
    ]
    return table(rows, ["NODE", "ROLE", "STATE", "LAG", "BEHIND"], right={3, 4})
