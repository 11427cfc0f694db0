"""Throughput, latency and memory benchmark of redisjobs on a real redis-server.

Usage::

    python benchmarks/throughput.py [--jobs N] [--sleep-jobs N] [--latency-samples N]
                                    [--memory-jobs N] [--concurrency N] [--url URL]
                                    [--json PATH] [--smoke]

Unless ``--url`` is given, a private redis-server (no persistence, free loopback port) is started
with :class:`redisjobs.testing.RedisServer`. Every measurement uses a fresh queue:

1. enqueue one by one: ``--jobs`` sequential ``client.enqueue`` calls;
2. bulk enqueue: one ``client.enqueue_many`` of ``--jobs`` jobs;
3. processing: one worker *process* (concurrency ``--concurrency``) is started on an empty queue
   and waits until ready; then ``--jobs`` no-op jobs are enqueued in one go and the clock runs
   from just before that enqueue until ``stats()["completed"]`` reaches ``--jobs`` (polled every
   20 ms). Also measured over that window: the worker's CPU (``/proc/<pid>/stat``), the
   redis-server's CPU (``INFO cpu``) and the Redis commands run (``INFO commandstats``, which
   counts the commands run inside Lua scripts too; the benchmark's own ``INFO`` and polling
   commands are subtracted);
4. ``--sleep-jobs`` jobs that each sleep 10 ms, the same way (ideal: jobs / concurrency * 10 ms);
5. enqueue -> result latency: ``--latency-samples`` sequential ``enqueue`` + ``wait`` with a worker
   running (p50, p99);
6. Redis memory per queued job: ``used_memory`` growth for ``--memory-jobs`` jobs, no worker.

The results are printed as a Markdown table (and written as JSON with ``--json``). Nothing is
asserted on the numbers. ``--smoke`` uses tiny sizes for a quick check that everything runs.
The worker subprocesses run this same file with the hidden ``--_worker`` flag.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from redisjobs import Client, Worker
from redisjobs.testing import RedisServer, unique_queue

# The measuring helpers are shared with the side-by-side suite (benchmarks/peers/harness.py, which
# imports nothing but the standard library, so every peer's venv can run it too).
sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
from harness import Snapshot, calls_delta, loop_name, percentile, run, tree_cpu_seconds

SCRIPT = Path(__file__).resolve()
BENCH_DIR = SCRIPT.parent
REPO_ROOT = BENCH_DIR.parent

FULL_SIZES = {"jobs": 20_000, "sleep_jobs": 2_000, "latency_samples": 1_000, "memory_jobs": 10_000}
SMOKE_SIZES = {"jobs": 200, "sleep_jobs": 100, "latency_samples": 50, "memory_jobs": 500}

POLL_INTERVAL = 0.02
"""Seconds between two ``stats()`` polls while waiting for a batch to complete."""
WORKER_START_TIMEOUT = 30.0
WORKER_STOP_TIMEOUT = 60.0
SLEEP_JOB_SECONDS = 0.01

log = logging.getLogger("benchmarks.throughput")


# -- the worker subprocess ----------------------------------------------------------------------


def make_worker(url: str, queue: str, concurrency: int) -> Worker:
    """The benchmark's worker: the no-op and 10 ms jobs, stopped gracefully by SIGTERM.

    ``benchmarks/peers`` builds its redisjobs worker here too, so both benchmarks measure the
    same configuration.
    """
    from jobs import noop, sleep10  # benchmarks/ is on sys.path (script dir and PYTHONPATH)

    return Worker(
        url, queue=queue, functions=[noop, sleep10], concurrency=concurrency, handle_signals=True
    )


async def serve(url: str, queue: str, concurrency: int) -> None:
    """Worker-process mode: serve `queue`, print ``ready`` once fetching, run until SIGTERM."""
    worker = make_worker(url, queue, concurrency)
    running = asyncio.create_task(worker.run(), name="worker")
    ready = asyncio.create_task(worker.wait_ready(), name="ready")
    await asyncio.wait([running, ready], return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        print("ready", flush=True)
    else:
        ready.cancel()
    await running


def worker_env() -> dict[str, str]:
    """The environment of a worker subprocess: benchmarks/ and the repo first on PYTHONPATH."""
    env = dict(os.environ)
    paths = [str(BENCH_DIR), str(REPO_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


async def start_worker(url: str, queue: str, concurrency: int) -> asyncio.subprocess.Process:
    """Start a worker process on `queue` and return once it has printed ``ready``."""
    cmd = [sys.executable, str(SCRIPT), "--_worker", "--url", url]
    cmd += ["--queue", queue, "--concurrency", str(concurrency)]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, env=worker_env(), cwd=str(REPO_ROOT)
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), WORKER_START_TIMEOUT)
    except TimeoutError:
        line = b""
    if line.strip() != b"ready":
        await stop_worker(proc)
        raise RuntimeError(f"worker process did not get ready (exit code {proc.returncode})")
    return proc


async def stop_worker(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the worker (a graceful stop) and wait for it; SIGKILL it if that takes too long."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), WORKER_STOP_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        log.warning("worker process %d exited with code %s", proc.pid, proc.returncode)


@contextlib.asynccontextmanager
async def worker_process(
    url: str, queue: str, concurrency: int
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A ready worker process on `queue` for the duration of the block."""
    proc = await start_worker(url, queue, concurrency)
    try:
        yield proc
    finally:
        await stop_worker(proc)


# -- measuring ----------------------------------------------------------------------------------


async def server_snapshot(redis: Redis) -> Snapshot:
    """Read ``INFO cpu`` and ``INFO commandstats`` (the ``info`` command itself left out)."""
    cpu: dict[str, Any] = await redis.info("cpu")
    stats: dict[str, Any] = await redis.info("commandstats")
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    calls.pop("info", None)
    return Snapshot(float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), calls)


async def stats_profile(client: Client) -> dict[str, int]:
    """The Redis commands one ``client.stats()`` call runs (subtracted for every poll)."""
    queue = unique_queue("bench-probe")
    before = await server_snapshot(client.redis)
    await client.stats(queue)
    after = await server_snapshot(client.redis)
    return calls_delta(before, after)


async def wait_completed(
    client: Client, queue: str, n: int, proc: asyncio.subprocess.Process
) -> int:
    """Poll ``stats()`` every 20 ms until `n` jobs completed; returns the number of polls."""
    deadline = time.monotonic() + 120 + n / 100
    polls = 0
    while True:
        polls += 1
        if (await client.stats(queue))["completed"] >= n:
            return polls
        if proc.returncode is not None:
            raise RuntimeError(f"worker process exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{n} jobs on {queue} did not complete in time")
        await asyncio.sleep(POLL_INTERVAL)


@dataclass(frozen=True, slots=True)
class Batch:
    """One timed batch: enqueued in one go into a fresh queue, run by one worker process."""

    jobs: int
    seconds: float
    enqueue_seconds: float
    worker_cpu: float | None
    redis_cpu: float
    calls: dict[str, int]


async def run_batch(
    client: Client, url: str, fn: str, n: int, concurrency: int, profile: dict[str, int]
) -> Batch:
    """Start a worker on a fresh queue, enqueue `n` jobs calling `fn`, time until all complete."""
    queue = unique_queue("bench")
    specs = [("call", {"fn": fn}) for _ in range(n)]
    async with worker_process(url, queue, concurrency) as proc:
        cpu0 = tree_cpu_seconds([proc.pid])
        before = await server_snapshot(client.redis)
        t0 = time.perf_counter()
        await client.enqueue_many(specs, queue=queue)
        enqueued = time.perf_counter() - t0
        polls = await wait_completed(client, queue, n, proc)
        elapsed = time.perf_counter() - t0
        after = await server_snapshot(client.redis)
        cpu1 = tree_cpu_seconds([proc.pid])
    own = {k: v * polls for k, v in profile.items()}
    worker_cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    calls = calls_delta(before, after, own)
    return Batch(n, elapsed, enqueued, worker_cpu, after.cpu - before.cpu, calls)


async def enqueue_one_by_one(client: Client, n: int) -> float:
    """Seconds for `n` sequential ``enqueue`` calls into a fresh queue (after one warm-up)."""
    queue = unique_queue("bench")
    await client.enqueue("call", {"fn": "noop"}, queue=queue)  # scripts loaded, queue registered
    t0 = time.perf_counter()
    for _ in range(n):
        await client.enqueue("call", {"fn": "noop"}, queue=queue)
    return time.perf_counter() - t0


async def enqueue_bulk(client: Client, n: int) -> float:
    """Seconds for one ``enqueue_many`` of `n` jobs into a fresh queue."""
    queue = unique_queue("bench")
    specs = [("call", {"fn": "noop"}) for _ in range(n)]
    t0 = time.perf_counter()
    await client.enqueue_many(specs, queue=queue)
    return time.perf_counter() - t0


async def latencies(client: Client, url: str, samples: int, concurrency: int) -> list[float]:
    """Milliseconds of `samples` sequential enqueue + wait round trips, with a worker running."""
    queue = unique_queue("bench")
    out: list[float] = []
    async with worker_process(url, queue, concurrency):
        job = await client.enqueue("call", {"fn": "noop"}, queue=queue)  # warm-up
        await client.wait(job.id, timeout=5, queue=queue)
        for _ in range(samples):
            t0 = time.perf_counter()
            job = await client.enqueue("call", {"fn": "noop"}, queue=queue)
            await client.wait(job.id, timeout=5, queue=queue)
            out.append((time.perf_counter() - t0) * 1000)
    return out


async def memory_per_job(client: Client, n: int) -> float:
    """Growth of Redis ``used_memory`` per job for `n` queued jobs, no worker."""
    queue = unique_queue("bench")
    specs = [("call", {"fn": "noop"}) for _ in range(n)]
    before: dict[str, Any] = await client.redis.info("memory")
    await client.enqueue_many(specs, queue=queue)
    after: dict[str, Any] = await client.redis.info("memory")
    return (int(after["used_memory"]) - int(before["used_memory"])) / n


# -- reporting ----------------------------------------------------------------------------------

ROWS: dict[str, tuple[str, str, int]] = {
    "enqueue_single_jobs_per_s": ("Enqueue one by one ({jobs} jobs)", "jobs/s", 0),
    "enqueue_bulk_jobs_per_s": ("Enqueue in bulk, enqueue_many ({jobs} jobs)", "jobs/s", 0),
    "process_jobs_per_s": ("Processing, 1 worker process ({jobs} no-op jobs)", "jobs/s", 0),
    "process_seconds": ("Processing: wall time, enqueue start -> all completed", "s", 3),
    "process_enqueue_seconds": ("Processing: of which the enqueue_many call", "s", 3),
    "worker_cpu_us_per_job": ("Processing: worker process CPU per job", "us/job", 1),
    "redis_cpu_us_per_job": ("Processing: redis-server CPU per job (enqueue + run)", "us/job", 1),
    "redis_commands_per_job": ("Processing: Redis commands per job (incl. in Lua)", "cmds/job", 2),
    "redis_evalsha_per_job": ("Processing: EVALSHA calls per job", "calls/job", 3),
    "sleep_seconds": (
        "{sleep_jobs} x 10 ms sleep jobs, concurrency {concurrency} (ideal {ideal:.2f} s)",
        "s",
        3,
    ),
    "sleep_jobs_per_s": ("Sleep jobs: throughput", "jobs/s", 0),
    "latency_p50_ms": ("Enqueue -> result latency p50 ({latency_samples} samples)", "ms", 2),
    "latency_p99_ms": ("Enqueue -> result latency p99 ({latency_samples} samples)", "ms", 2),
    "memory_bytes_per_job": ("Redis memory per queued job ({memory_jobs} jobs)", "bytes/job", 0),
}
"""Metric key -> (label, with sizes as format fields; unit; decimals shown)."""


@dataclass(frozen=True, slots=True)
class Metric:
    """One row of the results table."""

    key: str
    label: str
    value: float | None
    unit: str
    digits: int = 0


def per_job_us(seconds: float | None, n: int) -> float | None:
    """Microseconds per job, or None when `seconds` is unknown."""
    return None if seconds is None else seconds / n * 1e6


def batch_values(b: Batch) -> dict[str, float | None]:
    """The numbers of the no-op processing batch."""
    return {
        "process_jobs_per_s": b.jobs / b.seconds,
        "process_seconds": b.seconds,
        "process_enqueue_seconds": b.enqueue_seconds,
        "worker_cpu_us_per_job": per_job_us(b.worker_cpu, b.jobs),
        "redis_cpu_us_per_job": per_job_us(b.redis_cpu, b.jobs),
        "redis_commands_per_job": sum(b.calls.values()) / b.jobs,
        "redis_evalsha_per_job": b.calls.get("evalsha", 0) / b.jobs,
    }


def metrics_of(values: dict[str, float | None], sizes: Sizes) -> list[Metric]:
    """The table rows, in :data:`ROWS` order, labelled with the sizes used."""
    ideal = sizes.sleep_jobs / sizes.concurrency * SLEEP_JOB_SECONDS
    fields = {**asdict(sizes), "ideal": ideal}
    return [
        Metric(key, label.format(**fields), values.get(key), unit, digits)
        for key, (label, unit, digits) in ROWS.items()
    ]


def fmt(m: Metric) -> str:
    """The value of `m` for the table: thousands separated, ``n/a`` when unknown."""
    return "n/a" if m.value is None else f"{m.value:,.{m.digits}f}"


def table(metrics: list[Metric]) -> str:
    """A Markdown table of `metrics`."""
    rows = ["| Metric | Value | Unit |", "|---|---:|---|"]
    rows += [f"| {m.label} | {fmt(m)} | {m.unit} |" for m in metrics]
    return "\n".join(rows)


# -- the whole benchmark ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each measurement does."""

    jobs: int
    sleep_jobs: int
    latency_samples: int
    memory_jobs: int
    concurrency: int


@dataclass(slots=True)
class Report:
    """Everything measured, for the table and the JSON file."""

    metrics: list[Metric]
    process_calls: dict[str, int]
    redis_version: str


async def benchmark(url: str, sizes: Sizes) -> Report:
    """Run every measurement against `url`, one fresh queue each."""
    async with Client(url) as client:
        info: dict[str, Any] = await client.redis.info("server")
        profile = await stats_profile(client)
        single = await enqueue_one_by_one(client, sizes.jobs)
        bulk = await enqueue_bulk(client, sizes.jobs)
        noop = await run_batch(client, url, "noop", sizes.jobs, sizes.concurrency, profile)
        sleep = await run_batch(client, url, "sleep10", sizes.sleep_jobs, sizes.concurrency, {})
        lat = await latencies(client, url, sizes.latency_samples, sizes.concurrency)
        mem = await memory_per_job(client, sizes.memory_jobs)
    values = {
        "enqueue_single_jobs_per_s": sizes.jobs / single,
        "enqueue_bulk_jobs_per_s": sizes.jobs / bulk,
        **batch_values(noop),
        "sleep_seconds": sleep.seconds,
        "sleep_jobs_per_s": sleep.jobs / sleep.seconds,
        "latency_p50_ms": percentile(lat, 50),
        "latency_p99_ms": percentile(lat, 99),
        "memory_bytes_per_job": mem,
    }
    return Report(metrics_of(values, sizes), noop.calls, str(info.get("redis_version", "?")))


def measure(url: str | None, sizes: Sizes) -> Report:
    """Run the benchmark on `url`, or on a private redis-server when it is None."""
    if url is not None:
        return run(benchmark(url, sizes))
    with RedisServer() as server:
        return run(benchmark(server.url, sizes))


def header(report: Report, sizes: Sizes, url: str | None) -> str:
    """Lines describing the set-up, printed above the table."""
    where = "private redis-server" if url is None else "shared Redis at --url"
    return "\n".join(
        [
            "# redisjobs throughput benchmark",
            "",
            f"- Python {platform.python_version()}, {loop_name()}, redis-server "
            f"{report.redis_version} ({where}), {os.cpu_count()} CPUs",
            f"- worker: 1 process, concurrency {sizes.concurrency}; "
            "every measurement on a fresh queue",
        ]
    )


def write_json(path: str, report: Report, sizes: Sizes, seconds: float) -> None:
    """Write the numbers to `path`."""
    data = {
        "sizes": asdict(sizes),
        "python": platform.python_version(),
        "event_loop": loop_name(),
        "redis_version": report.redis_version,
        "total_seconds": seconds,
        "metrics": {m.key: {"value": m.value, "unit": m.unit} for m in report.metrics},
        "processing_redis_commands": report.process_calls,
    }
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


# -- command line -------------------------------------------------------------------------------


def positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (sizes left None fall back to the full or ``--smoke`` defaults)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--jobs", type=positive, help="jobs for enqueue and processing (20000)")
    p.add_argument("--sleep-jobs", type=positive, help="10 ms sleep jobs (2000)")
    p.add_argument("--latency-samples", type=positive, help="enqueue -> result samples (1000)")
    p.add_argument("--memory-jobs", type=positive, help="queued jobs for memory (10000)")
    p.add_argument("--concurrency", type=positive, default=100, help="worker concurrency (100)")
    p.add_argument("--url", help="use this Redis instead of starting a private redis-server")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, for a quick check")
    p.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--queue", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def sizes_of(args: argparse.Namespace) -> Sizes:
    """The sizes asked for: explicit flags win over the (smoke) defaults."""
    defaults = SMOKE_SIZES if args.smoke else FULL_SIZES
    chosen = {k: getattr(args, k) or v for k, v in defaults.items()}
    return Sizes(concurrency=args.concurrency, **chosen)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or, with ``--_worker``, be one worker process)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args._worker:
        if args.url is None or args.queue is None:
            raise SystemExit("--_worker needs --url and --queue")
        run(serve(args.url, args.queue, args.concurrency))
        return 0
    sizes = sizes_of(args)
    t0 = time.perf_counter()
    report = measure(args.url, sizes)
    seconds = time.perf_counter() - t0
    print(header(report, sizes, args.url), end="\n\n")
    print(table(report.metrics), end="\n\n")
    print(f"Total benchmark time: {seconds:.1f} s")
    if args.json:
        write_json(args.json, report, sizes, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
