"""The shared driver of the side-by-side benchmark: the same workloads for every library.

An adapter (``adapters/<lib>.py``) implements a handful of primitives on one library's documented
API (enqueue one job, enqueue in bulk, wait for a result, count completed jobs, run a worker)
and calls :func:`main`. This module does the rest identically for every library: fresh queue
names, timing, worker subprocesses, ``INFO`` snapshots, ``/proc`` CPU readings and the JSON
report that ``run.py`` aggregates. It imports nothing outside the standard library because it
runs inside every peer's own venv (their Redis clients conflict, so there is no common one): the
driver talks to Redis for its measurements over a tiny RESP client of its own.

Method, the same for every library:

- every workload gets a fresh queue name; ``run.py`` FLUSHALLs the private server between
  libraries, never inside one adapter run;
- *enqueue* workloads time ``n`` enqueues (one by one, 32 in flight, or one bulk call) after one
  warm-up enqueue into the same queue;
- *processing* workloads are pre-filled: the jobs are enqueued first (bulk API, else 32 in
  flight), then the worker process(es) are started and import everything, print ``ready`` and
  block on stdin; the clock, the CPU counters and the ``INFO`` snapshot start when the driver
  writes ``go``, and stop when the library's own completed count reaches ``n`` (polled every
  5 ms; the polling commands are subtracted from the command counts). Interpreter start-up and
  imports are thus excluded for everyone, the library's connection set-up is included;
- *latency* is ``enqueue`` + the library's documented wait, one at a time, with a worker running;
- *memory* is the growth of ``used_memory`` while ``n`` jobs are enqueued one by one (one
  connection, so no client buffers of note) with no worker.
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import signal
import socket
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

POLL_INTERVAL = 0.005
"""Seconds between two completed-count polls (5 ms: coarse polling would blur the 0.2 s run)."""
READY_TIMEOUT = 90.0
"""Seconds a worker process may take to import its library (slow on a loaded 2-core machine)."""
STOP_TIMEOUT = 5.0
WAIT_TIMEOUT = 10.0
"""Seconds one latency sample may take before the workload counts as failed."""
FIRST_WAIT_TIMEOUT = 60.0
"""The warm-up sample also covers the worker's connection set-up."""
INFLIGHT = 32
SLEEP_SECONDS = 0.01

log = logging.getLogger("benchmarks.peers")


# -- sizes and metrics --------------------------------------------------------------------------


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
SMOKE = Sizes(
    jobs=200,
    sleep_jobs=100,
    latency_samples=20,
    memory_jobs=200,
    concurrency=100,
    processes=(1, 2, 4),
)

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


# -- a minimal Redis client for the measurements --------------------------------------------------


class RedisError(Exception):
    """An error reply from Redis."""


class InfoClient:
    """A blocking RESP2 client for ``INFO``, ``FLUSHALL`` and ``PING`` (nothing else is needed).

    Blocking on purpose: a snapshot takes well under a millisecond on loopback, and being
    independent of every library's client keeps the measurement identical for all of them.

    Args:
        url: ``redis://host:port/db``.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.db = int(parts.path.strip("/") or 0)
        self.sock = socket.create_connection((self.host, self.port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file: IO[bytes] = self.sock.makefile("rb")
        if self.db:
            self.command("SELECT", str(self.db))

    def close(self) -> None:
        """Close the connection."""
        self.file.close()
        self.sock.close()

    def command(self, *args: str) -> Any:
        """Send one command and return its decoded reply."""
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def _reply(self) -> Any:
        line = self.file.readline()
        if not line:
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.file.read(size + 2)[:-2].decode()
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise RedisError(f"unexpected reply {line!r}")

    def info(self, section: str) -> dict[str, str]:
        """``INFO section`` as a flat dict of strings."""
        text: str = self.command("INFO", section)
        pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
        return {k: v for k, v in pairs}

    def snapshot(self) -> Snapshot:
        """The server's CPU seconds and per-command call counts now (``INFO`` left out)."""
        cpu = self.info("cpu")
        calls: dict[str, int] = {}
        for key, value in self.info("commandstats").items():
            stats = dict(kv.split("=", 1) for kv in value.split(","))
            calls[key.removeprefix("cmdstat_")] = int(stats["calls"])
        calls.pop("info", None)
        return Snapshot(float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), calls)

    def used_memory(self) -> int:
        """``used_memory`` in bytes."""
        return int(self.info("memory")["used_memory"])


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Redis-server CPU seconds and command counts at one moment."""

    cpu: float
    calls: dict[str, int]


def calls_delta(
    before: Snapshot, after: Snapshot, minus: dict[str, int] | None = None
) -> dict[str, int]:
    """Commands run between two snapshots less `minus` (the driver's own), nonzero only."""
    minus = minus or {}
    out = {k: v - before.calls.get(k, 0) - minus.get(k, 0) for k, v in after.calls.items()}
    return dict(sorted(((k, v) for k, v in out.items() if v), key=lambda kv: -kv[1]))


# -- CPU of a process tree ------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()  # fields[0] is field 3 of proc(5), the state


def tree_cpu_seconds(pids: Sequence[int]) -> float | None:
    """User + system CPU seconds of `pids` and all their descendants, or None without /proc.

    Live descendants are found through their parent pid; children already reaped count through
    the parent's ``cutime``/``cstime`` (a forking worker's job processes, for instance).
    """
    if not Path("/proc/self/stat").exists():
        return None
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (f := _stat_fields(int(entry.name))) is not None:
            parents[int(entry.name)] = int(f[1])
    tree = set(pids)
    grew = True
    while grew:
        new = {p for p, pp in parents.items() if pp in tree and p not in tree}
        tree |= new
        grew = bool(new)
    total = 0
    for pid in tree:
        f = _stat_fields(pid)
        if f is not None:
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / os.sysconf("SC_CLK_TCK")


# -- event loop ---------------------------------------------------------------------------------


def loop_name() -> str:
    """``uvloop <version>`` when uvloop is installed, else ``asyncio``."""
    try:
        return f"uvloop {importlib.metadata.version('uvloop')}"
    except importlib.metadata.PackageNotFoundError:
        return "asyncio"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on uvloop when it is importable (every async peer's venv has it)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def split(n: int, lanes: int) -> list[int]:
    """`n` jobs shared as evenly as possible among at most `lanes` lanes (none empty)."""
    lanes = max(1, min(lanes, n))
    return [n // lanes + (1 if i < n % lanes else 0) for i in range(lanes)]


# -- the adapter interface ------------------------------------------------------------------------


class Unsupported(Exception):
    """The library has no API for this workload; the message says why (it becomes a footnote)."""


class Adapter(abc.ABC):
    """One library's side of the benchmark, on its documented API.

    Subclasses set :attr:`name`, :attr:`packages` and :attr:`notes` and implement the abstract
    methods. Jobs are named ``"noop"`` (returns at once) and ``"sleep10"`` (``asyncio.sleep``
    10 ms, or ``time.sleep`` for a synchronous library).
    """

    name: str = "?"
    packages: tuple[str, ...] = ()
    """Distributions whose installed versions are reported."""
    notes: tuple[str, ...] = ()
    """How the library is configured and called (printed under the table)."""

    async def open(self, url: str) -> None:
        """Connect the producer side (in the driver process)."""
        self.url = url

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the producer side's connections."""

    @abc.abstractmethod
    async def enqueue(self, queue: str, fn: str) -> Any:
        """Enqueue one job calling `fn` on `queue`; return a handle :meth:`wait` accepts."""

    async def enqueue_inflight(self, queue: str, fn: str, n: int, inflight: int) -> None:
        """Enqueue `n` jobs with `inflight` enqueue calls outstanding at any time."""

        async def lane(count: int) -> None:
            for _ in range(count):
                await self.enqueue(queue, fn)

        await asyncio.gather(*(lane(c) for c in split(n, inflight)))

    async def enqueue_bulk(self, queue: str, fn: str, n: int) -> None:
        """Enqueue `n` jobs through the library's own bulk API."""
        raise Unsupported(f"{self.name} has no bulk enqueue API")

    @abc.abstractmethod
    async def wait(self, queue: str, handle: Any, timeout: float) -> None:
        """Wait for the job behind `handle` through the library's documented wait."""

    async def roundtrip(self, queue: str, fn: str, timeout: float) -> None:
        """Enqueue one job and wait for its result (overridden where the wait needs set-up)."""
        await self.wait(queue, await self.enqueue(queue, fn), timeout)

    @abc.abstractmethod
    async def completed(self, queue: str, n: int) -> int:
        """How many of the `n` jobs enqueued into `queue` have completed, by the library."""

    async def serve(self, url: str, queue: str, concurrency: int) -> None:
        """Worker-process body: run the library's worker on `queue` until SIGTERM."""
        raise NotImplementedError

    def serve_blocking(self, url: str, queue: str, concurrency: int) -> None:
        """Run :meth:`serve` on uvloop (a synchronous library overrides this instead)."""
        run(self.serve(url, queue, concurrency))

    def versions(self) -> dict[str, str]:
        """Installed versions of :attr:`packages` (``-`` when not installed)."""
        out: dict[str, str] = {}
        for dist in self.packages:
            try:
                out[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                out[dist] = "-"
        return out

    async def prefill(self, queue: str, fn: str, n: int) -> str:
        """Enqueue `n` jobs as fast as the library allows; returns the method used."""
        try:
            await self.enqueue_bulk(queue, fn, n)
        except Unsupported:
            await self.enqueue_inflight(queue, fn, n, INFLIGHT)
            return f"{INFLIGHT} in flight"
        return "bulk"


# -- worker processes ---------------------------------------------------------------------------


class WorkerProcess:
    """A worker subprocess of the adapter module, gated: it runs the library only after ``go``.

    Args:
        module: the adapter's module name (``adapters.<lib>``), run with ``python -m``.
        url: the Redis URL.
        queue: the queue to serve.
        concurrency: the worker's concurrency.
    """

    def __init__(self, module: str, url: str, queue: str, concurrency: int) -> None:
        self.cmd = [sys.executable, "-m", module, "--worker", "--url", url, "--queue", queue]
        self.cmd += ["--concurrency", str(concurrency)]
        # Closed in stop(); a file, not a pipe, so a chatty worker can never block on it.
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.proc is not None
        return self.proc.pid

    async def spawn(self) -> None:
        """Start the process (without waiting for it)."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self.stderr,
        )

    def stderr_tail(self, chars: int = 600) -> str:
        """The end of what the process wrote to stderr, for error messages."""
        self.stderr.seek(0)
        text = self.stderr.read().decode(errors="replace").strip()
        return text[-chars:]

    def failure(self, what: str) -> RuntimeError:
        """An error naming the exit code and the process's last words."""
        code = None if self.proc is None else self.proc.returncode
        return RuntimeError(f"{what} (exit code {code}): {self.stderr_tail() or 'no stderr'}")

    async def ready(self) -> None:
        """Wait until the process has imported everything and printed ``ready``."""
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                line = await asyncio.wait_for(
                    self.proc.stdout.readline(), max(0.1, deadline - time.monotonic())
                )
            except TimeoutError:
                raise self.failure(f"worker not ready within {READY_TIMEOUT:.0f} s") from None
            if not line:
                await self.proc.wait()
                raise self.failure("worker exited before it was ready")
            if line.strip() == b"ready":
                return

    def go(self) -> None:
        """Let the worker start its library's run loop."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")

    def check(self) -> None:
        """Raise if the worker has exited."""
        if self.proc is not None and self.proc.returncode is not None:
            raise self.failure("worker process exited")

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT` (measurements are already taken)."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        self.stderr.close()


@contextlib.asynccontextmanager
async def worker_processes(
    module: str, url: str, queue: str, concurrency: int, count: int
) -> AsyncIterator[list[WorkerProcess]]:
    """`count` ready (imported, gated) worker processes on `queue` for the block."""
    procs = [WorkerProcess(module, url, queue, concurrency) for _ in range(count)]
    try:
        for p in procs:
            await p.spawn()
        for p in procs:
            await p.ready()
        yield procs
    finally:
        await asyncio.gather(*(p.stop() for p in procs))


def worker_main(adapter: Adapter, args: argparse.Namespace) -> None:
    """Worker-process mode: imports are done; say ``ready``, wait for ``go``, serve."""
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    # Nobody reads stdout any more: a chatty library must not fill the pipe and stall.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    adapter.serve_blocking(args.url, args.queue, args.concurrency)


# -- the workloads ------------------------------------------------------------------------------


@dataclass
class Context:
    """What every workload needs."""

    adapter: Adapter
    module: str
    url: str
    sizes: Sizes
    redis: InfoClient
    poll_profile: dict[str, int] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    commands: dict[str, dict[str, float]] = field(default_factory=dict)
    prefill: str = ""

    def queue(self, workload: str) -> str:
        """A fresh queue name."""
        return f"bench-{workload}-{uuid.uuid4().hex[:8]}"


async def measure_poll_profile(ctx: Context) -> None:
    """The Redis commands of one ``completed`` call, subtracted for every poll."""
    queue = ctx.queue("probe")
    await ctx.adapter.completed(queue, 0)  # first call may load scripts or create groups
    before = ctx.redis.snapshot()
    await ctx.adapter.completed(queue, 0)
    ctx.poll_profile = calls_delta(before, ctx.redis.snapshot())


async def w_enqueue_single(ctx: Context) -> None:
    n, queue = ctx.sizes.jobs, ctx.queue("single")
    await ctx.adapter.enqueue(queue, "noop")  # warm-up: scripts loaded, groups created
    before = ctx.redis.snapshot()
    t0 = time.perf_counter()
    for _ in range(n):
        await ctx.adapter.enqueue(queue, "noop")
    seconds = time.perf_counter() - t0
    calls = calls_delta(before, ctx.redis.snapshot())
    ctx.values["enqueue_single"] = n / seconds
    ctx.values["cmds_enqueue"] = sum(calls.values()) / n
    ctx.values["scripts_enqueue"] = script_calls(calls) / n
    ctx.commands["enqueue"] = per_job(calls, n)


async def w_enqueue_inflight(ctx: Context) -> None:
    n, queue = ctx.sizes.jobs, ctx.queue("inflight")
    await ctx.adapter.enqueue(queue, "noop")
    t0 = time.perf_counter()
    await ctx.adapter.enqueue_inflight(queue, "noop", n, INFLIGHT)
    ctx.values["enqueue_inflight"] = n / (time.perf_counter() - t0)


async def w_enqueue_bulk(ctx: Context) -> None:
    n, queue = ctx.sizes.jobs, ctx.queue("bulk")
    await ctx.adapter.enqueue(queue, "noop")
    t0 = time.perf_counter()
    await ctx.adapter.enqueue_bulk(queue, "noop", n)
    ctx.values["enqueue_bulk"] = n / (time.perf_counter() - t0)


async def w_memory(ctx: Context) -> None:
    n, queue = ctx.sizes.memory_jobs, ctx.queue("memory")
    await ctx.adapter.enqueue(queue, "noop")  # the queue's fixed structures exist before
    before = ctx.redis.used_memory()
    # One by one, on one connection: a bulk call or 32 connections would leave query buffers
    # in used_memory that have nothing to do with what a queued job costs.
    for _ in range(n):
        await ctx.adapter.enqueue(queue, "noop")
    ctx.values["memory"] = (ctx.redis.used_memory() - before) / n


async def w_latency(ctx: Context) -> None:
    queue = ctx.queue("latency")
    samples: list[float] = []
    async with worker_processes(ctx.module, ctx.url, queue, ctx.sizes.concurrency, 1) as procs:
        procs[0].go()
        await ctx.adapter.roundtrip(queue, "noop", FIRST_WAIT_TIMEOUT)
        for _ in range(ctx.sizes.latency_samples):
            t0 = time.perf_counter()
            await ctx.adapter.roundtrip(queue, "noop", WAIT_TIMEOUT)
            samples.append((time.perf_counter() - t0) * 1000)
            procs[0].check()
    ctx.values["latency_p50"] = percentile(samples, 50)
    ctx.values["latency_p99"] = percentile(samples, 99)


@dataclass(frozen=True, slots=True)
class Batch:
    """One pre-filled batch run by `processes` worker processes."""

    jobs: int
    seconds: float
    worker_cpu: float | None
    redis_cpu: float
    calls: dict[str, int]


async def run_batch(ctx: Context, fn: str, n: int, processes: int) -> Batch:
    """Pre-fill `n` jobs calling `fn`, start the workers, time from ``go`` until all completed."""
    queue = ctx.queue(f"{fn}-{processes}p")
    ctx.prefill = await ctx.adapter.prefill(queue, fn, n)
    done = await ctx.adapter.completed(queue, n)
    if done:
        raise RuntimeError(f"{done} jobs completed before any worker ran")
    c = ctx.sizes.concurrency
    async with worker_processes(ctx.module, ctx.url, queue, c, processes) as procs:
        pids = [p.pid for p in procs]
        cpu0 = tree_cpu_seconds(pids)
        before = ctx.redis.snapshot()
        t0 = time.perf_counter()
        for p in procs:
            p.go()
        polls = await wait_completed(ctx.adapter, queue, n, procs)
        seconds = time.perf_counter() - t0
        after = ctx.redis.snapshot()
        cpu1 = tree_cpu_seconds(pids)
    own = {k: v * polls for k, v in ctx.poll_profile.items()}
    worker_cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    return Batch(n, seconds, worker_cpu, after.cpu - before.cpu, calls_delta(before, after, own))


async def wait_completed(adapter: Adapter, queue: str, n: int, procs: list[WorkerProcess]) -> int:
    """Poll the library's completed count until it reaches `n`; returns the number of polls."""
    budget = 60 + n / 20
    deadline = time.monotonic() + budget
    polls = 0
    while True:
        polls += 1
        if await adapter.completed(queue, n) >= n:
            return polls
        for p in procs:
            p.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{n} jobs did not complete within {budget:.0f} s")
        await asyncio.sleep(POLL_INTERVAL)


async def w_process(ctx: Context, processes: int) -> None:
    b = await run_batch(ctx, "noop", ctx.sizes.jobs, processes)
    ctx.values[f"process_{processes}"] = b.jobs / b.seconds
    if processes != 1:
        return
    if b.worker_cpu is not None:
        ctx.values["worker_cpu"] = b.worker_cpu / b.jobs * 1e6
    ctx.values["redis_cpu"] = b.redis_cpu / b.jobs * 1e6
    ctx.values["cmds_process"] = sum(b.calls.values()) / b.jobs
    ctx.values["scripts_process"] = script_calls(b.calls) / b.jobs
    ctx.commands["process"] = per_job(b.calls, b.jobs)


async def w_sleep(ctx: Context) -> None:
    b = await run_batch(ctx, "sleep10", ctx.sizes.sleep_jobs, 1)
    ctx.values["sleep_seconds"] = b.seconds


SCRIPT_COMMANDS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")


def script_calls(calls: dict[str, int]) -> int:
    """How many of `calls` were script invocations (their inner commands are counted apart)."""
    return sum(calls.get(name, 0) for name in SCRIPT_COMMANDS)


def per_job(calls: dict[str, int], n: int) -> dict[str, float]:
    """Commands per job by name, those below 0.01 per job left out."""
    return {k: round(v / n, 2) for k, v in calls.items() if v * 100 >= n}


def percentile(values: Sequence[float], pct: int) -> float:
    """The `pct`-th percentile (inclusive method; one value is every percentile)."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


Workload = Callable[[Context], Awaitable[None]]


def workloads(sizes: Sizes) -> list[tuple[str, list[str], Workload]]:
    """(name, metric keys it fills, coroutine) in the order they run."""

    def process(k: int) -> Workload:
        async def w(ctx: Context) -> None:
            await w_process(ctx, k)

        return w

    out: list[tuple[str, list[str], Workload]] = [
        (
            "enqueue one by one",
            ["enqueue_single", "cmds_enqueue", "scripts_enqueue"],
            w_enqueue_single,
        ),
        ("enqueue in flight", ["enqueue_inflight"], w_enqueue_inflight),
        ("enqueue bulk", ["enqueue_bulk"], w_enqueue_bulk),
        ("memory", ["memory"], w_memory),
        ("latency", ["latency_p50", "latency_p99"], w_latency),
        ("sleep jobs", ["sleep_seconds"], w_sleep),
    ]
    for k in sizes.processes:
        keys = [f"process_{k}"]
        if k == 1:
            keys += ["worker_cpu", "redis_cpu", "cmds_process", "scripts_process"]
        out.append((f"processing, {k} process(es)", keys, process(k)))
    return out


def describe(exc: BaseException) -> str:
    """A one-line reason for a footnote."""
    if isinstance(exc, Unsupported):
        return str(exc)
    text = str(exc).strip().replace("\n", " ") or "no message"
    return f"failed: {type(exc).__name__}: {text}"[:400]


async def drive(adapter: Adapter, module: str, url: str, sizes: Sizes, only: set[str]) -> Context:
    """Run every workload (or those named in `only`), each failure recorded, never fatal."""
    redis = InfoClient(url)
    ctx = Context(adapter, module, url, sizes, redis)
    try:
        await adapter.open(url)
        await measure_poll_profile(ctx)
        for name, keys, workload in workloads(sizes):
            if only and name not in only:
                continue
            t0 = time.perf_counter()
            try:
                await workload(ctx)
            except Unsupported as exc:
                for k in keys:
                    ctx.errors.setdefault(k, describe(exc))
                continue
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                for k in keys:
                    ctx.errors.setdefault(k, describe(exc))
            log.info("%s: %s done in %.1f s", adapter.name, name, time.perf_counter() - t0)
        for total, parts in (
            ("cmds_total", ("cmds_enqueue", "cmds_process")),
            ("scripts_total", ("scripts_enqueue", "scripts_process")),
        ):
            if all(p in ctx.values for p in parts):
                ctx.values[total] = sum(ctx.values[p] for p in parts)
            else:
                ctx.errors.setdefault(total, "needs the enqueue and the processing counts")
    finally:
        with contextlib.suppress(Exception):
            await adapter.close()
        redis.close()
    return ctx


def report(ctx: Context, seconds: float) -> dict[str, Any]:
    """The JSON document ``run.py`` reads."""
    return {
        "lib": ctx.adapter.name,
        "versions": ctx.adapter.versions(),
        "python": platform.python_version(),
        "event_loop": loop_name(),
        "notes": list(ctx.adapter.notes),
        "prefill": ctx.prefill,
        "values": ctx.values,
        "errors": ctx.errors,
        "commands": ctx.commands,
        "poll_profile": ctx.poll_profile,
        "seconds": seconds,
    }


# -- command line -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The adapter command line (``run.py`` builds it; ``--worker`` is for the subprocesses)."""
    p = argparse.ArgumentParser(description="One library's side of benchmarks/peers/run.py.")
    p.add_argument("--url", required=True, help="the Redis URL")
    p.add_argument("--sizes", default=SMOKE.to_json(), help="Sizes as JSON (smoke by default)")
    p.add_argument("--out", help="write the JSON report here (default: stdout)")
    p.add_argument("--only", action="append", default=[], help="run only this workload")
    p.add_argument("--worker", action="store_true", help="be a worker process (internal)")
    p.add_argument("--queue", help="the queue a worker serves (internal)")
    p.add_argument("--concurrency", type=int, default=100, help="worker concurrency (internal)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return p.parse_args(argv)


def main(adapter: Adapter, module: str, argv: Sequence[str] | None = None) -> int:
    """The entry point of every adapter: driver mode, or ``--worker`` mode."""
    args = parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.worker:
        if args.queue is None:
            raise SystemExit("--worker needs --queue")
        worker_main(adapter, args)
        return 0
    t0 = time.perf_counter()
    sizes = Sizes.from_json(args.sizes)
    ctx = run(drive(adapter, module, args.url, sizes, set(args.only)))
    text = json.dumps(report(ctx, time.perf_counter() - t0), indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    return 0


def ceil_seconds(timeout: float) -> int:
    """`timeout` rounded up to whole seconds, for APIs that take an int."""
    return max(1, math.ceil(timeout))
