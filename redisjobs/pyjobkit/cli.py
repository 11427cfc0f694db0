"""Pyjobkit's worker command: ``redisjobs pyjobkit ...`` (or ``python -m redisjobs.pyjobkit``)
takes ``pyjobkit``'s flags and runs a face worker with the HTTP and subprocess executors, the
``--executor`` factories and, with ``--enable-plugins``, the installed plugins.

Settings come from the flags, then ``PYJOBKIT_*`` variables, then ``.pyjobkit.toml`` (or
``--config``). ``--dsn`` is a ``redis://`` or ``memory://`` URL. SIGTERM and SIGINT stop the
worker gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

from . import metrics
from .cli_common import CLIError, backend_of, load_executor
from .config import Config, ConfigError, load_config
from .engine import Engine
from .executors.http import HttpExecutor
from .executors.subprocess import SubprocessExecutor
from .logging import configure_logging
from .worker import Worker

__all__ = ["CLIError", "build_parser", "main", "run"]

log = logging.getLogger("pyjobkit.cli")


def build_parser(prog: str = "pyjobkit") -> argparse.ArgumentParser:
    """Pyjobkit's worker flags."""
    p = argparse.ArgumentParser(prog=prog, description="Run a Pyjobkit worker on redisjobs.")
    p.add_argument("--dsn", "--url", dest="dsn", help="redis:// or memory:// URL")
    p.add_argument("--config", help="TOML file (default .pyjobkit.toml)")
    p.add_argument("--queue", default="default", help="the queue to serve")
    p.add_argument("--concurrency", type=int, help="jobs run at once")
    p.add_argument("--batch", type=int, help="jobs leased per fetch")
    p.add_argument("--lease-ttl", type=int, help="seconds a lease lasts without heartbeat")
    p.add_argument("--poll-interval", type=float, help="seconds between polls")
    p.add_argument("--max-attempts", type=int, help="(accepted; set per job or by the engine)")
    p.add_argument("--retry-policy", help="e.g. exponential:1:2, fixed:5")
    p.add_argument("--rate-limit", action="append", help="kind:rate[:burst], repeatable")
    p.add_argument("--watchdog-interval", type=float, dest="watchdog_interval_s")
    p.add_argument("--executor", action="append", help="module:factory, repeatable")
    p.add_argument("--enable-plugins", action="store_true", default=None)
    p.add_argument("--kind", action="append", help="run only jobs of this kind, repeatable")
    p.add_argument("--once", action="store_true", help="drain the queue, then exit")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    p.add_argument("--log-level", help="DEBUG, INFO, ...")
    p.add_argument("--log-format", choices=["text", "json"])
    p.add_argument("--disable-skip-locked", action="store_true", default=None, help="(ignored)")
    return p


def _config(args: argparse.Namespace) -> Config:
    flags = {
        "dsn": args.dsn,
        "concurrency": args.concurrency,
        "batch": args.batch,
        "lease_ttl": args.lease_ttl,
        "poll_interval": args.poll_interval,
        "max_attempts": args.max_attempts,
        "retry_policy": args.retry_policy,
        "rate_limits": ",".join(args.rate_limit) if args.rate_limit else None,
        "watchdog_interval_s": args.watchdog_interval_s,
        "extra_executors": args.executor,
        "enable_plugins": args.enable_plugins,
        "log_level": args.log_level,
        "log_format": args.log_format,
    }
    try:
        return load_config(
            config_path=args.config, overrides={k: v for k, v in flags.items() if v is not None}
        )
    except ConfigError as exc:
        raise CLIError(str(exc)) from exc


def _engine(config: Config, queue: str) -> Engine:
    executors: list[Any] = [HttpExecutor(), SubprocessExecutor()]
    executors += [load_executor(spec) for spec in config.extra_executors]
    if config.default_executor:
        executors.append(load_executor(config.default_executor))
    engine = Engine(
        backend=backend_of(config.dsn, queue),
        executors=executors,
        default_max_attempts=config.max_attempts,
    )
    if config.enable_plugins:
        loaded = engine.register_plugins()
        log.info("loaded executor plugins: %s", [e.kind for e in loaded])
    return engine


async def _run_worker(args: argparse.Namespace) -> None:
    """Run the worker the arguments describe until it is stopped (or, ``--once``, drained)."""
    config = _config(args)
    configure_logging(config.log_level, fmt=config.log_format)
    if args.metrics_port is not None:
        metrics.start_metrics_server(args.metrics_port)
    engine = _engine(config, args.queue)
    worker = Worker(
        engine,
        max_concurrency=config.concurrency,
        batch=config.batch,
        poll_interval=config.poll_interval,
        lease_ttl=config.lease_ttl,
        retry_policy=config.retry_policy,
        rate_limits=config.rate_limits,
        watchdog_interval_s=config.watchdog_interval_s,
        kinds=args.kind,
    )
    try:
        await worker.run(once=args.once)
    finally:
        await engine.close()


def run(argv: Sequence[str]) -> int:
    """``redisjobs pyjobkit [prune|simulate] ...``: the worker command, or ``prune`` /
    ``simulate`` with their own arguments; the exit status."""
    from . import cli_prune, cli_simulate

    commands = {"prune": cli_prune.main, "simulate": cli_simulate.main}
    command = commands.get(argv[0]) if argv else None
    try:
        if command is not None:
            command(argv[1:])
        else:
            main(argv)
    except SystemExit as done:
        if isinstance(done.code, str):  # a message, as the interpreter would print it
            print(done.code, file=sys.stderr)
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run the worker; exits 1 on a usage or backend error, 130 on
    Ctrl-C."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        asyncio.run(_run_worker(args))
    except KeyboardInterrupt:
        print("pyjobkit: interrupted, requesting worker shutdown", file=sys.stderr)
        raise SystemExit(130) from None
    except CLIError as exc:
        print(f"pyjobkit: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as exc:
        print(f"pyjobkit: unexpected failure: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
