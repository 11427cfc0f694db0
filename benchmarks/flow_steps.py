"""What a step of a flow costs: Redis commands per job and the hand-over's latency.

Runs `--jobs` no-op jobs through one worker (concurrency 32) in each shape, on a redis-server of
its own (no persistence) unless given `--url`, a fresh queue each:

* ``plain``: independent jobs (the reference);
* ``chain``: chains of 4 steps, each step receiving the previous result;
* ``chord``: chords of 99 members and a callback reading every result;
* ``chain across queues``: chains of 4 whose steps alternate between two queues (each edge a
  hand-over through the ``handover`` stream).

For each: Redis commands per job (``INFO commandstats``, enqueue and processing, every command
inside a script counted, as Redis counts them) and, for the chains, the latency of a hand-over:
from a step's ``completed`` event to the next step's ``started`` event, both stamped by Redis's
clock in the event log (p50 / p99)::

    python benchmarks/flow_steps.py --jobs 2000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from redisjobs import Client, ExecContext, Worker, chain, chord, deps, group, step
from redisjobs.events import Event
from redisjobs.testing import RedisServer, unique_queue


async def noop(previous_result: int = 0) -> int:
    return previous_result + 1


async def gather(ctx: ExecContext) -> int:
    return len(await ctx.children_results())


Shape = Callable[[Client, int, str, str], Awaitable[list[tuple[str, str]]]]
"""Enqueue `n` jobs of one shape on (queue, other queue); returns the (id, queue) of the jobs
to wait for."""


async def plain(client: Client, n: int, queue: str, other: str) -> list[tuple[str, str]]:
    jobs = await client.enqueue_many([("call", {"fn": "noop"}) for _ in range(n)])
    return [(job.id, queue) for job in jobs]


def _chains(across: bool) -> Shape:
    async def write(client: Client, n: int, queue: str, other: str) -> list[tuple[str, str]]:
        ends = []
        for _ in range(n // 4):
            steps = [
                step("call", {"fn": "noop"}, queue=other if across and i % 2 else queue)
                for i in range(4)
            ]
            run = await client.enqueue_flow(chain(*steps))
            ends.append((run.id, run.queue))
        return ends

    return write


async def fan_in(client: Client, n: int, queue: str, other: str) -> list[tuple[str, str]]:
    ends, size = [], min(CHORD, n - 1)
    for _ in range(n // (size + 1)):  # n jobs when n is a multiple of size + 1
        members = group([("call", {"fn": "noop"}) for _ in range(size)])
        run = await client.enqueue_flow(chord(members, ("call", {"fn": "gather"})))
        ends.append((run.id, queue))
    return ends


CHORD = 99
"""Members of one chord of the ``chord`` shape (fewer when --jobs is smaller; a callback waits
for 1..1000 jobs)."""


SHAPES: dict[str, Shape] = {
    "plain": plain,
    "chain": _chains(False),
    "chord": fan_in,
    "chain across queues": _chains(True),
}


async def _calls(redis: Redis) -> int:
    stats: dict[str, Any] = await redis.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_config", "cmdstat_info"))


async def _hand_overs(client: Client, queues: list[str]) -> list[float]:
    """ms from each job's `completed` to the `started` of a job waiting for it (Redis's ts)."""
    done: dict[str, int] = {}
    started: dict[str, int] = {}
    for queue in queues:
        entries: Any = await client.redis.xrange(client.keys(queue).log)
        for _, fields in entries:
            ev = Event.decode(fields[b"e"])
            if ev.type in ("completed", "started"):
                (done if ev.type == "completed" else started)[f"{ev.queue}/{ev.job_id}"] = ev.ts
    refs = list(started)
    async with client.redis.pipeline(transaction=False) as pipe:
        for ref in refs:
            queue, _, job_id = ref.partition("/")
            pipe.hget(client.keys(queue).job(job_id), "depends_on")
        specs = await pipe.execute()
    waits = []
    for ref, spec in zip(refs, specs, strict=True):
        queue = ref.partition("/")[0]
        for edge in deps.decode(spec.decode() if spec else ""):
            parent = "/".join(deps.split(edge.ref, queue))
            if parent in done:
                waits.append(float(started[ref] - done[parent]))
    return waits


async def measure(url: str, name: str, n: int) -> tuple[float, list[float]]:
    queue, other = unique_queue("flow"), unique_queue("flow")
    async with Client(url, queue=queue) as client:
        await client.enqueue("call", {"fn": "noop"})
        async with Worker(
            url,
            queues=[queue, other],
            functions=[noop, gather],
            concurrency=32,
            handle_signals=False,
        ):
            await asyncio.sleep(0.5)
            await client.redis.config_resetstat()
            before = await _calls(client.redis)
            ends = await SHAPES[name](client, n, queue, other)
            for end, where in ends:  # the last jobs: every other one ended before them
                await client.wait(end, timeout=120, queue=where)
            total = await _calls(client.redis) - before
        waits = await _hand_overs(client, [queue, other]) if "chain" in name else []
    return total / n, waits


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def main(url: str, jobs: int) -> None:
    for name in SHAPES:
        per_job, waits = await measure(url, name, jobs)
        line = f"{name:<20} {per_job:6.2f} commands/job"
        if waits:
            p50, p99 = statistics.median(waits), _percentile(waits, 0.99)
            line += f"   hand-over p50 {p50:.0f} ms, p99 {p99:.0f} ms ({len(waits)} edges)"
        print(line, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per shape (default 2000)")
    parser.add_argument("--url", help="a Redis to use (default: a redis-server of its own)")
    args = parser.parse_args()
    if args.url:
        asyncio.run(main(args.url, args.jobs))
    else:
        with RedisServer() as server:
            asyncio.run(main(server.url, args.jobs))
