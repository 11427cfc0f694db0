"""A hot queue on a Redis Cluster: in one slot, and spread over partitions on every master.

Starts a local cluster (3 masters, no replicas), then for each case enqueues `--jobs` no-op jobs
and runs them with `--workers` worker processes (``redisjobs worker --url redis+cluster://...``),
and reports the jobs/s and each master's Redis CPU (``INFO cpu``, user + sys, over the case). On
a machine of few cores the rate is bound by the machine, not by Redis; the figure is the split
of Redis's work: one queue in one slot is one master's work, a partitioned one is shared.

    .venv/bin/python benchmarks/partitions.py [--jobs 20000] [--partitions 6] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from redisjobs import Client
from redisjobs.keys import QueueKeys
from redisjobs.partitions import partitions_of
from redisjobs.testing import RedisServer, unique_queue
from redisjobs.topologies import ClusterSetup

ROOT = Path(__file__).resolve().parent.parent
NOOP = ("call", {"fn": "benchmarks.partitions:noop"})


async def noop() -> None:
    """The job: nothing, so that the figures are the queue's own work."""


def cpu(node: RedisServer) -> float:
    """A node's Redis CPU so far (seconds, user + sys, main thread and children)."""
    info: Any = redis.Redis(port=node.port).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def enqueue(url: str, queue: str, partitions: int, jobs: int) -> list[str]:
    async with Client(url, queue=queue, partitions=partitions) as client:
        ids: list[str] = []
        for start in range(0, jobs, 1000):
            written = await client.enqueue_many([NOOP] * min(1000, jobs - start))
            ids += [job.id for job in written]
        return ids


async def until_done(url: str, queue: str, partitions: int, jobs: int) -> None:
    async with Client(url, queue=queue, partitions=partitions) as client:
        names = partitions_of(queue, partitions)
        while True:
            counts = await client.job_counts(names)
            ended = sum(c.totals["completed"] + c.totals["failed"] for c in counts)
            if ended >= jobs:
                failed = sum(c.totals["failed"] for c in counts)
                if failed:
                    raise SystemExit(f"{failed} jobs failed: see the workers' output")
                return
            await asyncio.sleep(0.05)


def case(setup: ClusterSetup, partitions: int, jobs: int, workers: int) -> dict[str, Any]:
    queue = unique_queue("bench")
    asyncio.run(enqueue(setup.url, queue, partitions, jobs))
    homes = {setup.node_of(QueueKeys(n).prefix).port for n in partitions_of(queue, partitions)}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": setup.url}
    argv = [sys.executable, "-m", "redisjobs", "worker", "--url", setup.url, "--queue", queue]
    argv += ["--partitions", str(partitions), "--functions", "benchmarks.partitions", "-c", "64"]
    masters = setup.masters()
    before = {m.port: cpu(m) for m in masters}
    t0 = time.monotonic()
    procs = [subprocess.Popen(argv, cwd=ROOT, env=env) for _ in range(workers)]
    try:
        asyncio.run(until_done(setup.url, queue, partitions, jobs))
        wall = time.monotonic() - t0
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
    used = {m.port: cpu(m) - before[m.port] for m in masters}
    return {"rate": jobs / wall, "cpu": used, "homes": len(homes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with ClusterSetup(replicas=0) as setup:
        for label, count in (("one slot", 1), (f"{args.partitions} partitions", args.partitions)):
            got = case(setup, count, args.jobs, args.workers)
            total = sum(got["cpu"].values()) or 1.0
            shares = sorted((100 * s / total for s in got["cpu"].values()), reverse=True)
            seconds = " + ".join(f"{s:.2f}" for s in sorted(got["cpu"].values(), reverse=True))
            print(
                f"{label:14} {got['rate']:>8,.0f} jobs/s on {got['homes']} master(s); Redis CPU "
                f"{seconds} s, the busiest master {shares[0]:.0f} % of it",
                flush=True,
            )


if __name__ == "__main__":
    main()
