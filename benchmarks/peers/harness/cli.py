"""An adapter's command line: drive the workloads and write the JSON report, or be a worker."""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.adapter import Adapter
from harness.probes import loop_name, run
from harness.sizes import SMOKE, Sizes
from harness.workers import worker_main
from harness.workloads import Context, drive


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
