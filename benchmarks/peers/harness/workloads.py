"""The workloads, identical for every library, and the driver that runs them in order.

Every workload gets a fresh queue; a failure (or an :class:`~harness.adapter.Unsupported`
workload) is recorded against the metrics it would have filled, never fatal to the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from harness.adapter import Adapter, Unsupported
from harness.probes import (
    InfoClient,
    calls_delta,
    per_job,
    percentile,
    script_calls,
    tree_cpu_seconds,
)
from harness.sizes import INFLIGHT, Sizes
from harness.workers import WorkerProcess, worker_processes

POLL_INTERVAL = 0.005
"""Seconds between two completed-count polls (5 ms: coarse polling would blur the 0.2 s run)."""
WAIT_TIMEOUT = 10.0
"""Seconds one latency sample may take before the workload counts as failed."""
FIRST_WAIT_TIMEOUT = 60.0
"""The warm-up sample also covers the worker's connection set-up."""
TOTALS = (
    ("cmds_total", ("cmds_enqueue", "cmds_process")),
    ("scripts_total", ("scripts_enqueue", "scripts_process")),
)
"""Metric -> the per-workload metrics it sums (enqueue + processing)."""

log = logging.getLogger("benchmarks.peers")


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


def timed_sync(adapter: Adapter, queue: str, n: int, threads: int) -> float:
    """jobs/s of `n` enqueues through the sync API from `threads` threads (one: a plain loop).

    Runs in a thread of its own (see :func:`w_enqueue_sync`) and times itself there, so the
    hand-over to that thread is not counted.
    """
    adapter.enqueue_sync(queue, "noop")  # warm-up: connection made, scripts loaded
    t0 = time.perf_counter()
    if threads == 1:
        for _ in range(n):
            adapter.enqueue_sync(queue, "noop")
    else:
        adapter.enqueue_threads(queue, "noop", n, threads)
    return n / (time.perf_counter() - t0)


async def w_enqueue_sync(ctx: Context) -> None:
    # Sync code has no event loop: the calls run in a thread while this loop waits idle for
    # them (a sync client may refuse, or block, a thread whose loop runs).
    n, queue = ctx.sizes.jobs, ctx.queue("sync")
    ctx.values["enqueue_sync"] = await asyncio.to_thread(timed_sync, ctx.adapter, queue, n, 1)


async def w_enqueue_sync_threads(ctx: Context) -> None:
    n, queue = ctx.sizes.jobs, ctx.queue("sync-threads")
    rate = await asyncio.to_thread(timed_sync, ctx.adapter, queue, n, INFLIGHT)
    ctx.values["enqueue_sync_threads"] = rate


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
        ("enqueue sync", ["enqueue_sync"], w_enqueue_sync),
        ("enqueue sync threads", ["enqueue_sync_threads"], w_enqueue_sync_threads),
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


async def attempt(ctx: Context, name: str, keys: list[str], workload: Workload) -> None:
    """Run one workload; a failure is recorded against `keys` (with a traceback on stderr)."""
    t0 = time.perf_counter()
    try:
        await workload(ctx)
    except Unsupported as exc:
        for k in keys:
            ctx.errors.setdefault(k, describe(exc))
        return
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        for k in keys:
            ctx.errors.setdefault(k, describe(exc))
    log.info("%s: %s done in %.1f s", ctx.adapter.name, name, time.perf_counter() - t0)


def add_totals(ctx: Context) -> None:
    """Fill the :data:`TOTALS` metrics whose parts were both measured."""
    for total, parts in TOTALS:
        if all(p in ctx.values for p in parts):
            ctx.values[total] = sum(ctx.values[p] for p in parts)
        else:
            ctx.errors.setdefault(total, "needs the enqueue and the processing counts")


async def drive(adapter: Adapter, module: str, url: str, sizes: Sizes, only: set[str]) -> Context:
    """Run every workload (or those named in `only`), each failure recorded, never fatal."""
    redis = InfoClient(url)
    ctx = Context(adapter, module, url, sizes, redis)
    try:
        await adapter.open(url)
        await measure_poll_profile(ctx)
        for name, keys, workload in workloads(sizes):
            if not only or name in only:
                await attempt(ctx, name, keys, workload)
        add_totals(ctx)
    finally:
        with contextlib.suppress(Exception):
            await adapter.close()
        redis.close()
    return ctx
