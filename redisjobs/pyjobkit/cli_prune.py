"""Pyjobkit's retention command: delete finished jobs older than an age.

    redisjobs pyjobkit prune --dsn redis://... --older-than 30d --statuses success,cancelled

redisjobs also expires finished jobs by itself after their result TTL; this deletes sooner.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

from .cli_common import CLIError, backend_of
from .config import load_config
from .engine import Engine
from .scheduler import parse_interval

__all__ = ["main"]

log = logging.getLogger("pyjobkit.cli_prune")

FINAL = ("success", "failed", "timeout", "cancelled")


def _parse_age(value: str) -> timedelta:
    try:
        return parse_interval(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid --older-than value: {value!r}") from exc


def _parse_statuses(value: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in value.split(",") if p.strip())
    bad = sorted(set(parts) - set(FINAL))
    if bad:
        raise argparse.ArgumentTypeError(f"unknown status(es): {bad}; choose from {FINAL}")
    return parts


async def _run(args: argparse.Namespace) -> int:
    config = load_config(overrides={"dsn": args.dsn} if args.dsn else None)
    if not config.dsn:
        raise SystemExit("DSN required: pass --dsn, set PYJOBKIT_DSN, or configure .pyjobkit.toml")
    try:
        engine = Engine(backend=backend_of(config.dsn, args.queue))
    except CLIError as exc:
        raise SystemExit(str(exc)) from None
    try:
        count = await engine.purge_finished(args.older_than, args.statuses)
    finally:
        await engine.close()
    log.info("pruned %d job(s)", count)
    print(count)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, delete, and print how many jobs went."""
    parser = argparse.ArgumentParser(prog="pyjobkit-prune", description=__doc__)
    parser.add_argument("--dsn", help="redis:// or memory:// URL")
    parser.add_argument("--queue", default="default")
    parser.add_argument(
        "--older-than", type=_parse_age, help="e.g. 30d, 24h, 90m (default: any age)"
    )
    parser.add_argument("--statuses", type=_parse_statuses, default=FINAL, help="comma-separated")
    parser.add_argument("--log-level", default="INFO", choices=list(logging.getLevelNamesMapping()))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(message)s")
    raise SystemExit(asyncio.run(_run(args)))
