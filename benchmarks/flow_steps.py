"""What a flow step costs: Redis commands per job, and the latency of a hand-over.

Commands: four cases of `--jobs` no-op jobs each, in fresh queues, enqueued with no worker
running, then run by one worker (in this process, concurrency 100) until all completed:

* plain: jobs enqueued one by one (``client.enqueue``), none waiting for another;
* chain of 4: ``--jobs / 4`` chains, each written by one ``enqueue_flow``;
* chord: one chord of ``--jobs - 1`` jobs and a callback reading their results (past 1,001
  jobs, as many chords as a callback waits for 1,000 jobs at most);
* chain of 4, 2 queues: chains whose steps alternate between two queues (every step's end is
  handed over to the other queue).

Each phase's commands are ``INFO commandstats`` deltas (a script's inner commands counted, as
Redis counts them; the worker's start and idle loops included, the completion polls not), and
a ``MONITOR`` connection names the script of every ``FCALL`` and counts its inner commands.

Latency: `--chains` chains of 4 run one after another by one worker, on one queue and across
two; a hand-over is step i's ``completed`` event to step i+1's ``started`` (events' ``ts``,
Redis's clock in ms, so a sample is a whole number of ms). Starts its own redis-server (no
persistence) unless given `--url`::

    python benchmarks/flow_steps.py --jobs 2000 --chains 500
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any

import redis as sync_redis
from redis.asyncio import Redis

from redisjobs import Client, ExecContext, Worker, chain, chord, group, step
from redisjobs.composition import Chain
from redisjobs.deps import MAX_PARENTS
from redisjobs.keys import QueueKeys
from redisjobs.scripts import NAMES
from redisjobs.scripts.library import library
from redisjobs.testing import RedisServer, unique_queue

CONCURRENCY = 100
POLL = 0.01
"""Seconds between two reads of the completed counts (each one HGET, subtracted)."""


async def noop(previous_result: object = None) -> None:
    """A step: nothing, so that what is measured is the framework's own cost."""
    return None


async def fan_in(ctx: ExecContext) -> int:
    """A chord's callback: reads the results of the jobs it waited for, as a real one does."""
    return len(await ctx.children_results())


NOOP = ("call", {"fn": "noop"})
LIBRARY = library(NAMES)


def four(queues: list[str]) -> Chain:
    """A chain of 4 no-op steps, step i on ``queues[i % len(queues)]``."""
    return chain(*(step(*NOOP, queue=queues[i % len(queues)]) for i in range(4)))


# -- what each case enqueues ---------------------------------------------------------------------


async def plain(client: Client, queues: list[str], n: int) -> None:
    for _ in range(n):
        await client.enqueue(*NOOP, queue=queues[0])


async def chains(client: Client, queues: list[str], n: int) -> None:
    for _ in range(n // 4):
        await client.enqueue_flow(four(queues))


async def chords(client: Client, queues: list[str], n: int) -> None:
    count = -(-n // (MAX_PARENTS + 1))  # a job waits for 1,000 others at most
    for i in range(count):
        size = n // count + (i < n % count)
        await client.enqueue_flow(chord(group([NOOP] * (size - 1)), ("call", {"fn": "fan_in"})))


Enqueue = Callable[[Client, list[str], int], Awaitable[None]]
CASES: list[tuple[str, Enqueue, int]] = [
    ("plain", plain, 1),
    ("chain of 4", chains, 1),
    ("chord", chords, 1),
    ("chain of 4, 2 queues", chains, 2),
]
"""Name, what it enqueues, how many queues."""


# -- counting ------------------------------------------------------------------------------------


def script_names() -> dict[str, str]:
    """The function of each transition -> the transition's name."""
    return {LIBRARY.function(n): n for n in NAMES}


@dataclass
class Monitor:
    """A ``MONITOR`` connection in a thread: per phase, the calls of each script and the
    commands they ran. A phase starts with the command ``ECHO <phase>`` (Redis logs commands
    in the order it runs them, and a function's inner commands right after its ``FCALL``)."""

    url: str
    calls: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    inner: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Monitor:
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("MONITOR did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        with sync_redis.Redis.from_url(self.url) as r:
            r.echo("monitor-stop")
        if self._thread is not None:
            self._thread.join(30)

    def _read(self) -> None:
        names, phase, script = script_names(), "", ""
        with sync_redis.Redis.from_url(self.url).monitor() as m:  # type: ignore[no-untyped-call]
            self._ready.set()
            for entry in m.listen():
                words = entry["command"].split(" ", 2)
                if entry["client_type"] == "lua":
                    self.inner[phase][script] += 1
                elif words[0] == "FCALL":
                    script = names.get(words[1], "other")
                    self.calls[phase][script] += 1
                elif words[0] == "ECHO":
                    phase = words[1].strip('"')
                    if phase == "monitor-stop":
                        return


def label(case: str, phase: str) -> str:
    """A phase's name in ``MONITOR``'s log: one word."""
    return f"{case.replace(' ', '_').replace(',', '')}:{phase}"


async def command_calls(redis: Redis) -> Counter[str]:
    """``INFO commandstats``: calls by command name (``INFO`` itself left out)."""
    info: dict[str, Any] = await redis.info("commandstats")
    out = Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()})
    del out["info"]
    return out


async def until_completed(redis: Redis, queues: list[str], n: int) -> int:
    """Wait until the queues' jobs completed `n` in all; returns how many HGETs that took."""
    polls = 0
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        done = 0
        for q in queues:
            done += int(await redis.hget(QueueKeys(q).stats, "completed") or 0)
            polls += 1
        if done >= n:
            return polls
        await asyncio.sleep(POLL)
    raise TimeoutError(f"{n} jobs not completed within 600 s")


# -- one case ------------------------------------------------------------------------------------


@dataclass
class Phase:
    """One phase of a case: its commands by name."""

    commands: Counter[str]


@dataclass
class Case:
    """What one case measured."""

    name: str
    jobs: int
    enqueue: Phase
    run: Phase


async def measure(url: str, name: str, enqueue: Enqueue, nqueues: int, n: int) -> Case:
    """Enqueue case `name`'s jobs, then run them with one worker, counting each phase."""
    queues = [unique_queue("flow") for _ in range(nqueues)]
    redis = Redis.from_url(url)
    async with Client(url, queue=queues[0]) as client:
        # connects and loads the enqueue script, on a queue no worker serves
        await client.enqueue_flow(four([unique_queue("warm-up")]))
        phases: list[Phase] = []
        for phase in ("enqueue", "run"):
            await redis.echo(label(name, phase))
            before = await command_calls(redis)
            polls = await _phase(url, client, redis, phase, enqueue, queues, n)
            after = await command_calls(redis)
            phases.append(Phase(after - before - Counter({"hget": polls})))
    await redis.aclose()
    return Case(name, n, *phases)


async def _phase(
    url: str,
    client: Client,
    redis: Redis,
    phase: str,
    enqueue: Enqueue,
    queues: list[str],
    n: int,
) -> int:
    """Run one phase; returns the completion polls it sent (0 for the enqueue phase)."""
    if phase == "enqueue":
        await enqueue(client, queues, n)
        return 0
    worker = Worker(
        url, queues=queues, functions=[noop, fan_in], concurrency=CONCURRENCY, handle_signals=False
    )
    async with worker:
        return await until_completed(redis, queues, n)


# -- hand-over latency ---------------------------------------------------------------------------

BATCH = 100
"""Chains run between two reads of the queues' event logs (capped at about 10,000 events)."""


async def handover_latency(url: str, chains_n: int, nqueues: int) -> list[int]:
    """Hand-over samples (ms) of `chains_n` chains of 4, each run to its end before the next
    is written, by one worker serving the chains' `nqueues` queues."""
    queues = [unique_queue("handover") for _ in range(nqueues)]
    worker = Worker(
        url, queues=queues, functions=[noop], concurrency=CONCURRENCY, handle_signals=False
    )
    samples: list[int] = []
    async with Client(url, queue=queues[0]) as client, worker:
        for start in range(0, chains_n, BATCH):
            cursors = {q: await client.log_cursor(q) for q in queues}
            runs = []
            for _ in range(min(BATCH, chains_n - start)):
                run = await client.enqueue_flow(four(queues))
                await client.wait(run.id, queue=run.queue, timeout=30)
                runs.append(run)
            ts = await event_times(client, cursors)
            for run in runs:
                pairs = zip(run.jobs, run.jobs[1:], strict=False)
                samples += [ts[b.id, "started"] - ts[a.id, "completed"] for a, b in pairs]
    return samples


async def event_times(client: Client, cursors: dict[str, str]) -> dict[tuple[str, str], int]:
    """(job id, ``started`` or ``completed``) -> the event's ts, from each queue's log after
    its cursor."""
    out: dict[tuple[str, str], int] = {}
    for queue, since in cursors.items():
        async for ev in client.replay(queue=queue, since=since):
            if ev.type in ("started", "completed"):
                out[ev.job_id, ev.type] = ev.ts
    return out


# -- the report ----------------------------------------------------------------------------------


def _per_job(counts: Counter[str], n: int) -> float:
    return sum(counts.values()) / n


def _scripts(mon: Monitor, case: Case) -> str:
    """Each script a case's jobs called: calls per job (inner commands per call)."""
    calls = mon.calls[label(case.name, "enqueue")] + mon.calls[label(case.name, "run")]
    inner = mon.inner[label(case.name, "enqueue")] + mon.inner[label(case.name, "run")]
    return ", ".join(
        f"{name} {count / case.jobs:.2f} ({inner[name] / count:.1f})"
        for name, count in calls.most_common()
        if count * 100 >= case.jobs
    )


def command_table(cases: list[Case], mon: Monitor) -> Iterator[str]:
    """Commands per job, by phase and by script, then the inner commands by name."""
    yield f"## Redis commands per job ({cases[0].jobs:,} jobs a case, 1 worker)"
    yield ""
    yield "| case | enqueue | run | total | script calls | scripts: calls/job (inner cmds/call) |"
    yield "|---|---:|---:|---:|---:|---|"
    for case in cases:
        total = case.enqueue.commands + case.run.commands
        yield (
            f"| {case.name} | {_per_job(case.enqueue.commands, case.jobs):.2f} "
            f"| {_per_job(case.run.commands, case.jobs):.2f} | {_per_job(total, case.jobs):.2f} "
            f"| {total['fcall'] / case.jobs:.2f} | {_scripts(mon, case)} |"
        )
    yield ""
    yield "Commands per job by name, both phases (those of 0.01 a job and more):"
    yield ""
    for case in cases:
        total = case.enqueue.commands + case.run.commands
        named = (f"{k} {v / case.jobs:.2f}" for k, v in total.most_common() if v * 100 >= case.jobs)
        yield f"- {case.name}: {', '.join(named)}"


def latency_table(rows: list[tuple[str, list[int]]]) -> Iterator[str]:
    """p50/p99 of each hand-over's samples."""
    yield "## Hand-over latency: step i `completed` -> step i+1 `started` (events' ts, ms)"
    yield ""
    yield "| chains of 4, one at a time, 1 worker | hand-overs | mean | p50 | p99 | max |"
    yield "|---|---:|---:|---:|---:|---:|"
    for name, samples in rows:
        # whole ms each, but their mean is the mean latency's (the ms boundaries fall anywhere)
        cuts = statistics.quantiles(samples, n=100, method="inclusive")
        mean = statistics.fmean(samples)
        yield (
            f"| {name} | {len(samples):,} | {mean:.2f} | {cuts[49]:.0f} | {cuts[98]:.0f} "
            f"| {max(samples)} |"
        )


async def run_all(url: str, jobs: int, chains_n: int) -> list[str]:
    """Every case, then the latencies; the report's lines."""
    # loaded now, so that no first call loads it (a ResponseError: it was loaded already)
    with sync_redis.Redis.from_url(url) as r, suppress(sync_redis.ResponseError):
        r.function_load(LIBRARY.text)
    with Monitor(url) as mon:
        cases = [await measure(url, name, fn, nq, jobs) for name, fn, nq in CASES]
    rows = [
        ("one queue", await handover_latency(url, chains_n, 1)),
        ("steps alternating between 2 queues", await handover_latency(url, chains_n, 2)),
    ]
    return [*command_table(cases, mon), "", *latency_table(rows)]


def server(url: str | None) -> AbstractContextManager[Any]:
    """The Redis to use: `url`'s, or a redis-server of our own."""
    return nullcontext(_Given(url)) if url else RedisServer()


@dataclass
class _Given:
    url: str


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs a case (default 2000)")
    parser.add_argument("--chains", type=int, default=500, help="chains a latency row")
    parser.add_argument("--url", help="a Redis to use (default: start one)")
    args = parser.parse_args()
    if args.jobs < 8 or args.chains < 1:
        parser.error("--jobs is 8 at least, --chains 1 at least")
    with server(args.url) as redis_server:
        print("\n".join(asyncio.run(run_all(redis_server.url, args.jobs, args.chains))))


if __name__ == "__main__":
    main()
