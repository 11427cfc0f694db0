"""Enqueue one by one: redisjobs.sync.Client against the async Client (asyncio and uvloop).

Starts its own redis-server (no persistence) on a free port, enqueues `--jobs` jobs one call at
a time with each client, `--runs` times, each run in a fresh queue, and prints jobs/s::

    python benchmarks/sync_enqueue.py --jobs 20000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

from redisjobs import Client
from redisjobs.sync import Client as SyncClient
from redisjobs.testing import RedisServer, unique_queue

PAYLOAD = {"fn": "add", "args": {"a": 1, "b": 2}}


def sync_run(url: str, jobs: int) -> float:
    with SyncClient(url, queue=unique_queue("bench")) as client:
        client.ping()
        start = time.perf_counter()
        for _ in range(jobs):
            client.enqueue("call", PAYLOAD)
        return jobs / (time.perf_counter() - start)


async def async_run(url: str, jobs: int) -> float:
    async with Client(url, queue=unique_queue("bench")) as client:
        start = time.perf_counter()
        for _ in range(jobs):
            await client.enqueue("call", PAYLOAD)
        return jobs / (time.perf_counter() - start)


def loops() -> dict[str, Callable[[str, int], float]]:
    """Each client (and event loop) to measure, by name."""
    out: dict[str, Callable[[str, int], float]] = {"sync": sync_run}
    out["async (asyncio)"] = lambda url, jobs: asyncio.run(async_run(url, jobs))
    try:
        import uvloop
    except ImportError:
        return out
    out["async (uvloop)"] = lambda url, jobs: uvloop.run(async_run(url, jobs))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with RedisServer() as server:
        results: dict[str, list[float]] = {name: [] for name in loops()}
        for _ in range(args.runs):  # interleaved, so a busy moment of the machine hits all
            for name, measure in loops().items():
                results[name].append(measure(server.url, args.jobs))
    for name, rates in results.items():
        runs = ", ".join(f"{r:,.0f}" for r in rates)
        print(f"{name:16} median {statistics.median(rates):>8,.0f} jobs/s  (runs: {runs})")


if __name__ == "__main__":
    main()
