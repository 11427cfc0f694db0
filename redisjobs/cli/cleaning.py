"""Commands that clean a queue: purge finished jobs, drain waiting ones, obliterate it all."""

from __future__ import annotations

import argparse
import sys

from .common import UsageError, connect
from .render import print_json


async def purge(args: argparse.Namespace) -> int:
    """Delete the queue's finished jobs of one status (older than ``--older-than`` s)."""
    async with connect(args.redis, args.command, args.queue) as client:
        n = await client.purge(args.queue, status=args.status, older_than=args.older_than)
    if args.json:
        print_json({"queue": args.queue, "status": args.status, "purged": n})
    else:
        age = f" finished {args.older_than:g} s ago or earlier" if args.older_than else ""
        print(f"purged {n} {args.status} jobs{age} from queue {args.queue}")
    return 0


async def drain(args: argparse.Namespace) -> int:
    """Drop the queue's pending and scheduled jobs; running ones finish."""
    async with connect(args.redis, args.command, args.queue) as client:
        n = await client.drain(args.queue)
    if args.json:
        print_json({"queue": args.queue, "drained": n})
    else:
        print(f"drained {n} waiting jobs from queue {args.queue}")
    return 0


def _confirmed(queue: str) -> bool:
    """Whether the person at the terminal confirms deleting `queue` (asked on stderr)."""
    if not sys.stdin.isatty():
        raise UsageError(
            f"obliterate deletes every job and key of queue {queue!r}: pass --yes "
            "(there is no terminal to ask on)"
        )
    print(f"Delete every job and key of queue {queue!r}? [y/N] ", end="", file=sys.stderr)
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


async def obliterate(args: argparse.Namespace) -> int:
    """Delete every key of the queue, after a confirmation unless ``--yes``; refused (exit
    status 1) while live workers serve it, unless ``--force``."""
    if not args.yes and not _confirmed(args.queue):
        print("not obliterated", file=sys.stderr)
        return 1
    async with connect(args.redis, args.command, args.queue) as client:
        n = await client.obliterate(args.queue, force=args.force)
    if args.json:
        print_json({"queue": args.queue, "obliterated": n})
    else:
        print(f"obliterated queue {args.queue}: {n} jobs and every key deleted")
    return 0
