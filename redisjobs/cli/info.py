"""``redisjobs info``: each queue's jobs by status and throughput, and the live workers."""

from __future__ import annotations

import argparse
from typing import Any

from ..client import Client
from ..events import Event
from ..job import JobStatus, ms_to_datetime
from ..keys import WORKERS_KEY, QueueKeys, worker_key
from .common import connect, known_queues
from .render import age, print_json, table

WINDOW_MS = 60_000
STATUSES = [s.value for s in JobStatus]


async def info(args: argparse.Namespace) -> int:
    """Print the queues (counts, completed per second over the last minute) and the workers."""
    async with connect(args.redis, args.command) as client:
        seconds, micros = await client.redis.time()
        now_ms = seconds * 1000 + micros // 1000
        names = await known_queues(client)
        queues = {q: await _queue(client, client.keys(q), now_ms) for q in names}
        workers = await _workers(client)
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


async def _queue(client: Client, keys: QueueKeys, now_ms: int) -> dict[str, Any]:
    async with client.redis.pipeline(transaction=False) as pipe:
        for status in STATUSES:
            pipe.zcard(keys.status(status))
        counts = await pipe.execute()
    out: dict[str, Any] = dict(zip(STATUSES, map(int, counts), strict=True))
    out["completed_per_second"] = round(await completed_per_second(client, keys, now_ms), 3)
    return out


async def completed_per_second(client: Client, keys: QueueKeys, now_ms: int) -> float:
    """Jobs completed per second over the last minute, counted in the queue's event log.

    The log is capped; when it was trimmed and no longer reaches back a minute (a busy
    queue), the rate is taken over the span it still covers.
    """
    redis = client.redis
    entries: Any = await redis.xrange(keys.log, min=str(now_ms - WINDOW_MS), max="+")
    if not entries:
        return 0.0
    done = sum(1 for _, fields in entries if Event.decode(fields[b"e"]).type == "completed")
    span = WINDOW_MS
    stream: Any = await redis.xinfo_stream(keys.log)
    if stream.get("entries-added", 0) > stream["length"]:  # trimmed (Redis 7 tells; 6 does not)
        first_ms = int(stream["first-entry"][0].split(b"-")[0])
        span = min(span, now_ms - first_ms)
    return done * 1000 / max(span, 1)


def _int(fields: dict[str, str], name: str) -> int:
    try:
        return int(fields.get(name, 0))
    except ValueError:  # an entry written by something else (or by another version)
        return 0


async def _workers(client: Client) -> list[dict[str, Any]]:
    ids: Any = await client.redis.zrange(WORKERS_KEY, 0, -1)
    async with client.redis.pipeline(transaction=False) as pipe:
        for worker_id in ids:
            pipe.hgetall(worker_key(worker_id.decode()))
        entries: list[dict[bytes, bytes]] = await pipe.execute()
    seconds, micros = await client.redis.time()  # heartbeats are on Redis's clock too
    now = seconds + micros / 1e6
    workers = []
    for worker_id, entry in zip(ids, entries, strict=True):
        if not entry:
            continue  # its registry hash expired: a worker that died without deregistering
        f = {k.decode(): v.decode("utf-8", "replace") for k, v in entry.items()}
        beat = _int(f, "heartbeat_at")
        workers.append(
            {
                "id": worker_id.decode(),
                "host": f.get("host", "?"),
                "pid": _int(f, "pid"),
                "queue": f.get("queues", "?"),
                "concurrency": _int(f, "concurrency"),
                "running": _int(f, "held"),
                "hung_threads": _int(f, "hung_threads"),  # threads of stopped jobs still running
                "started_at": ms_to_datetime(_int(f, "started_at")),
                "heartbeat_at": ms_to_datetime(beat),
                "heartbeat_age": round(now - beat / 1000, 3),
            }
        )
    return workers


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
            f"{age(w['heartbeat_age'])} ago",
        ]
        for w in workers
    ]
    headers = ["WORKER", "HOST", "PID", "QUEUE", "CONCURRENCY", "RUNNING", "HEARTBEAT"]
    return table(rows, headers, right={2, 4, 5, 6})
