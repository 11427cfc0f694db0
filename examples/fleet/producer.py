"""Enqueue a batch of ``resize`` jobs for the fleet, and optionally wait for all of them.

    python -m examples.fleet.producer --jobs 1000 --wait

Prints the job ids on stdout, one a line, and a summary on stderr: with ``--wait``, how long the
fleet took and how the jobs were spread over the workers. Exits 1 when a job failed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import time
from typing import Any

from redisjobs import Client, Job, RedisJobsError

from .tasks import RESIZE


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    p.add_argument(
        "--url",
        default=os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
        help="Redis URL (default: $REDIS_URL, else redis://localhost:6379/0)",
    )
    p.add_argument("--queue", "-q", default="default", help="queue name (default: default)")
    p.add_argument("--jobs", "-n", type=int, default=100, help="how many jobs (default: 100)")
    p.add_argument("--width", type=int, default=640, help="the width every image is resized to")
    p.add_argument("--wait", action="store_true", help="wait until every job has finished")
    p.add_argument(
        "--timeout", type=float, default=300.0, help="seconds --wait waits (default: 300)"
    )
    return p.parse_args(argv)


async def produce(args: argparse.Namespace) -> int:
    """Enqueue the jobs in one bulk call, print their ids, wait for them if asked to."""
    async with Client(args.url, queue=args.queue) as client:
        t0 = time.perf_counter()
        # enqueue_many batches the round trips; every payload is checked before any is written.
        jobs = await client.enqueue_many(
            ("call", {"fn": RESIZE, "args": {"image_id": i, "width": args.width}})
            for i in range(args.jobs)
        )
        enqueued = time.perf_counter() - t0
        print("\n".join(job.id for job in jobs), flush=True)
        log(f"enqueued {len(jobs)} jobs on queue {args.queue!r} in {enqueued:.2f} s")
        if not args.wait:
            return 0
        outcomes = await asyncio.gather(
            *(wait_one(client, job, args.timeout) for job in jobs), return_exceptions=True
        )
        elapsed = time.perf_counter() - t0
    return summarize(outcomes, elapsed)


async def wait_one(client: Client, job: Job, timeout: float) -> Any:
    """The job's result; a failure is raised (and counted by `summarize`)."""
    return await client.wait(job.id, timeout=timeout)


def summarize(outcomes: list[Any], elapsed: float) -> int:
    """Log throughput and the jobs per worker; the exit status (1 when any job failed)."""
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    per_worker = collections.Counter(o["worker"] for o in outcomes if isinstance(o, dict))
    done = len(outcomes) - len(failures)
    log(
        f"{done} done, {len(failures)} failed in {elapsed:.2f} s "
        f"({len(outcomes) / elapsed:.0f} jobs/s) by {len(per_worker)} workers"
    )
    for worker, count in sorted(per_worker.items()):
        log(f"  {worker}: {count}")
    for failure in failures[:5]:
        log(f"  {type(failure).__name__}: {failure}")
    return 1 if failures else 0


def log(line: str) -> None:
    """A summary line, on stderr so stdout stays a plain list of ids."""
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the producer; the exit status."""
    args = parse_args(argv)
    try:
        return asyncio.run(produce(args))
    except RedisJobsError as exc:  # e.g. Redis is not there: say so in one line
        log(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
