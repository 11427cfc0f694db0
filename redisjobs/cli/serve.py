"""``redisjobs worker``: one Worker over the queues in this process, stopped by a signal."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..app import App
from ..arbiter import QueueOrder
from ..client import Client
from ..connection import Backend
from ..durability import Durability
from ..worker import Worker
from .common import UsageError, import_module, import_ref, on_stop_signals, redis_url
from .executors import ExecutorFactory, factories
from .health import start_health_server
from .supervise import Supervisor

log = logging.getLogger("redisjobs.cli")


@dataclass(frozen=True, slots=True)
class Plan:
    """What every worker of the command runs, resolved (and so checked) from the options."""

    functions: list[Callable[..., Any]]
    modules: list[str]
    executors: list[ExecutorFactory]
    app: App | None


def plan(args: argparse.Namespace) -> Plan:
    """Import what the options name; raises UsageError on the first that fails."""
    functions = [import_ref(ref) for ref in args.function]
    modules = list(args.allow_module)
    for item in args.functions:
        if ":" in item:
            functions.append(import_ref(item))
        else:
            modules.append(item)
    for name in modules:
        import_module(name)
    app = None
    if args.app is not None:
        app = import_ref(args.app)
        if not isinstance(app, App):
            raise UsageError(f"{args.app} is {type(app).__name__}, not a redisjobs.App")
    return Plan(functions, modules, factories(args), app)


def queues_of(given: list[tuple[str, int | None]] | None) -> QueueOrder | None:
    """The ``--queue`` options as a Worker's `queues` (None: none given).

    As Sidekiq: no weight anywhere is strict order, any weight makes them weighted (a queue
    without one weighs 1).

    Raises:
        UsageError: a queue given twice with different weights.
    """
    if not given:
        return None
    unique = list(dict.fromkeys(given))
    names = [name for name, _ in unique]
    twice = [name for name in names if names.count(name) > 1]
    if twice:
        raise UsageError(f"--queue: queue {twice[0]!r} given twice with different weights")
    if all(weight is None for _, weight in unique):
        return names
    return {name: weight or 1 for name, weight in unique}


def make_workers(args: argparse.Namespace, what: Plan) -> list[Worker]:
    """The Worker of the options, over all their queues (signals are handled here)."""
    return [
        Worker(
            args.redis,
            queues=queues_of(args.queue),
            partitions=args.partitions,
            app=what.app,
            functions=what.functions,
            modules=what.modules,
            executors=[make() for make in what.executors],
            concurrency=args.concurrency,
            batch_size=args.batch_size,
            lease_ttl=args.lease_ttl,
            poll_interval=args.poll_interval,
            grace_period=args.grace,
            max_deliveries=args.max_deliveries,
            reclaim_interval=args.reclaim_interval,
            handle_signals=False,
            burst=args.burst,
            max_processes=args.task_processes,
            durable=Durability(args.durable, args.durable_timeout) if args.durable else False,
        )
    ]


class _Stopper:
    """The signal handler: the first signal stops every worker gracefully, the next at once."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self.signals = 0

    def __call__(self, sig: signal.Signals) -> None:
        self.signals += 1
        now = self.signals > 1
        log.info("%s: %s", sig.name, "handing jobs back now" if now else "stopping gracefully")
        for worker in self.workers:
            worker.stop(now=now)


def _check_options(args: argparse.Namespace) -> None:
    """Refuse options that cannot work in this worker process (or in each of ``--processes``).

    Raises:
        UsageError: no Redis URL at all (an implicit private store would serve nothing another
            process enqueues), a private one shared by ``--processes``, or a port for them.
    """
    # No reachability check: a worker waits for a Redis that is not up yet (it logs each retry),
    # so a fleet may start before its Redis. The client commands fail fast instead.
    for flag, port in (("--metrics-port", args.metrics_port), ("--health-port", args.health_port)):
        if args.processes > 1 and port is not None:
            raise UsageError(f"{flag} serves one process: it cannot go with --processes")
    args.redis = redis_url(args.redis, "worker", private_ok=True)
    if args.processes > 1 and Backend(args.redis).embedded:
        raise UsageError(f"--processes gives each process its own {args.redis}: use a Redis URL")


async def run_worker(args: argparse.Namespace) -> int:
    """Run the workers until a signal (or supervise ``--processes`` of them); exit status."""
    what = plan(args)
    args.redis = args.redis or (what.app.url if what.app else None)
    _check_options(args)
    if args.processes > 1:
        # Each child is this very command with one process; a later option wins in argparse.
        command = [sys.executable, "-m", "redisjobs", *args.argv, "--processes", "1"]
        return await Supervisor(command, args.processes, args.grace, burst=args.burst).run()
    workers = make_workers(args, what)
    on_stop_signals(_Stopper(workers))
    server = await _metrics_server(args, workers[0])
    probes = None
    if args.health_port is not None:
        probes = await start_health_server(args, workers)
        log.info("health at http://%s:%d/healthz and /readyz", args.health_host, probes.port)
    tasks = [asyncio.create_task(w.run(), name=f"worker {w.keys.queue}") for w in workers]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for worker in workers:  # when one worker failed, the others stop too
            worker.stop()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        if server is not None:
            await server.aclose()
        if probes is not None:
            await probes.aclose()
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return 0


async def _metrics_server(args: argparse.Namespace, worker: Worker) -> Any:
    """Start ``--metrics-port``'s server (None without it); its workers observe job durations."""
    if args.metrics_port is None:
        return None
    try:
        from .. import metrics
    except ImportError as exc:
        raise UsageError(
            f"--metrics-port needs its extra: pip install 'redisjobs[metrics]' ({exc})"
        ) from None
    metrics.enable_job_durations()
    # A client of the worker's own Redis (the embedded backend is shared by URL).
    client = Client(args.redis, queue=worker.keys.queue)
    server = metrics.MetricsServer(client, args.metrics_host, args.metrics_port)
    try:
        await server.start()
    except OSError as exc:
        raise UsageError(
            f"cannot serve metrics on {args.metrics_host}:{args.metrics_port}: {exc}"
        ) from None
    log.info("metrics at http://%s:%d/metrics", args.metrics_host, server.port)
    return server


def loop_factory(args: argparse.Namespace) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop for a worker process when installed (the supervisor keeps asyncio's own loop)."""
    if args.command != "worker" or args.no_uvloop or args.processes > 1:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
