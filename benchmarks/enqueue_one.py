"""Enqueue one job per call through an App's task: one by one, and with calls in flight.

Measures ``await task.enqueue(...)`` one at a time and from `--lanes` concurrent lanes
(``asyncio.gather``), on asyncio's loop and on uvloop, then ``task.enqueue_sync(...)`` one at a
time and from `--lanes` threads. Starts its own redis-server (no persistence) unless given
`--url`; each run uses a fresh queue. Prints jobs/s and the CPU time of this process per job
(steadier than jobs/s on a busy machine)::

    python benchmarks/enqueue_one.py --jobs 20000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from redisjobs import App
from redisjobs.testing import RedisServer, unique_queue


def _task(url: str) -> Callable[..., object]:
    app = App(url, queue=unique_queue("bench"))

    @app.task(name="add")
    async def add(a: int, b: int) -> int:
        return a + b

    return add


async def _async(url: str, jobs: int, lanes: int) -> tuple[float, float]:
    add: Any = _task(url)
    await add.enqueue(0, 0)  # connects, loads the script, registers the queue

    async def lane(n: int) -> None:
        for i in range(n):
            await add.enqueue(i, 1)

    with _Clock((jobs // lanes) * lanes) as clock:
        await asyncio.gather(*(lane(jobs // lanes) for _ in range(lanes)))
    await add.app.aclose()
    return clock.result


def _sync(url: str, jobs: int, lanes: int) -> tuple[float, float]:
    add: Any = _task(url)
    add.enqueue_sync(0, 0)

    def lane(n: int) -> None:
        for i in range(n):
            add.enqueue_sync(i, 1)

    threads = [threading.Thread(target=lane, args=(jobs // lanes,)) for _ in range(lanes)]
    with _Clock((jobs // lanes) * lanes) as clock:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    add.app.sync_client().close()
    return clock.result


class _Clock:
    """Jobs/s (wall clock) and this process's CPU µs per job over a block."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self.result = (0.0, 0.0)

    def __enter__(self) -> _Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        wall, cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu
        self.result = (self.jobs / wall, cpu / self.jobs * 1e6)


def cases(lanes: int) -> dict[str, Callable[[str, int], tuple[float, float]]]:
    """Each way of enqueueing to measure, by name."""
    import uvloop

    return {
        "async uvloop 1": lambda url, n: uvloop.run(_async(url, n, 1)),
        "async asyncio 1": lambda url, n: asyncio.run(_async(url, n, 1)),
        f"async uvloop {lanes}": lambda url, n: uvloop.run(_async(url, n, lanes)),
        f"async asyncio {lanes}": lambda url, n: asyncio.run(_async(url, n, lanes)),
        "sync 1": lambda url, n: _sync(url, n, 1),
        f"sync {lanes} threads": lambda url, n: _sync(url, n, lanes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lanes", type=int, default=32)
    parser.add_argument("--url", help="a Redis to use (default: start one)")
    parser.add_argument("--only", help="run only the cases whose name contains this")
    args = parser.parse_args()
    todo = {k: v for k, v in cases(args.lanes).items() if not args.only or args.only in k}
    with RedisServer() if args.url is None else _Given(args.url) as server:
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in todo}
        for _ in range(args.runs):  # interleaved, so a busy moment of the machine hits all
            for name, measure in todo.items():
                results[name].append(measure(server.url, args.jobs))
    for name, got in results.items():
        rates, cpus = [r for r, _ in got], [c for _, c in got]
        runs = ", ".join(f"{r:,.0f}" for r in rates)
        print(
            f"{name:20} median {statistics.median(rates):>8,.0f} jobs/s, "
            f"{statistics.median(cpus):5.1f} CPU µs/job  (runs: {runs})"
        )


class _Given:
    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> _Given:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    main()
