"""``redisjobs limits [QUEUE]``, ``limits set QUEUE --rate 100/s ...``, ``limits clear QUEUE``:
a queue's rate limits, its limit keys' backlog, and changing them at run time."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ..limits import KeyState, Limit, parse_rate
from ..names import check_queue_name
from .args import add_json, add_redis
from .common import UsageError, connect
from .render import print_json, table

VERBS = ("list", "set", "clear")


def _words(args: argparse.Namespace) -> tuple[str, str]:
    """(verb, queue) of ``limits [VERB] [QUEUE]``."""
    words = list(args.words)
    verb = words.pop(0) if words and words[0] in VERBS else "list"
    if len(words) > 1:
        raise UsageError(f"limits {verb} takes one QUEUE, got {' '.join(words)}")
    try:
        return verb, check_queue_name(words[0] if words else "default")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _limit_row(lim: Limit) -> tuple[object, ...]:
    rate = "-" if lim.rate is None else f"{lim.rate:g}/{lim.per:g}s"
    return (
        "(queue)" if lim.key is None else lim.key,
        rate,
        lim.burst or "-",
        lim.max_running or "-",
        lim.max_pending or "-",
    )


def _key_row(s: KeyState) -> tuple[object, ...]:
    state = "at max_running" if s.next_at is None and s.backlog else "-"
    return (s.key, s.backlog, s.running, state)


async def _list(args: argparse.Namespace, queue: str) -> int:
    async with connect(args.redis, args.command, queue) as client:
        limits, keys = await client.limits(queue), await client.limit_keys(queue)
    if args.json:
        print_json(
            {
                "queue": queue,
                "limits": [dataclasses.asdict(lim) for lim in limits],
                "keys": [dataclasses.asdict(s) for s in keys],
            }
        )
        return 0
    if not limits and not keys:
        print(f"no limits and no limit keys in queue {queue}")
        return 0
    if limits:
        headers = ("KEY", "RATE", "BURST", "MAX RUNNING", "MAX PENDING")
        print(table([_limit_row(lim) for lim in limits], headers))
    if keys:
        rows = [_key_row(s) for s in keys]
        print(table(rows, ("LIMIT KEY", "BACKLOG", "RUNNING", "HELD"), right={1, 2}))
    return 0


async def _set(args: argparse.Namespace, queue: str) -> int:
    rate, per = (None, 1.0) if args.rate is None else parse_rate(args.rate)
    async with connect(args.redis, args.command, queue) as client:
        await client.set_limit(
            queue,
            rate,
            per,
            args.burst,
            key=args.key,
            max_running=args.max_running,
            max_pending=args.max_pending,
        )
    if args.json:
        print_json({"queue": queue, "key": args.key, "set": True})
    else:
        print(f"set the limit of queue {queue}" + (f", key {args.key}" if args.key else ""))
    return 0


async def _clear(args: argparse.Namespace, queue: str) -> int:
    async with connect(args.redis, args.command, queue) as client:
        removed = await client.clear_limit(queue, args.key)
    if args.json:
        print_json({"queue": queue, "key": args.key, "removed": removed})
    else:
        what = f"key {args.key}" if args.key else "the queue-wide limit"
        print(f"cleared {what} of queue {queue}" if removed else f"no limit for {what}")
    return 0 if removed else 1


async def limits(args: argparse.Namespace) -> int:
    """``limits [list] [QUEUE]``, ``limits set QUEUE ...`` or ``limits clear QUEUE``."""
    verb, queue = _words(args)
    try:
        if verb == "set":
            return await _set(args, queue)
        if verb == "clear":
            return await _clear(args, queue)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return await _list(args, queue)


def add_parser(sub: Any) -> None:
    """Add ``limits [list|set|clear] [QUEUE]`` to the subcommands `sub`."""
    s = sub.add_parser(
        "limits", help="list a queue's rate limits and limit keys, or set or clear one"
    )
    s.set_defaults(run=limits)
    s.add_argument("words", nargs="*", metavar="[list|set|clear] QUEUE")
    s.add_argument("--rate", help="set: jobs per period, like 100/s, 5/m, 1000/h, 10/2s")
    s.add_argument("--key", help="set/clear: a limit key ('*': every key) instead of the queue")
    s.add_argument("--burst", type=int, help="set: jobs that may start at once (default: rate)")
    s.add_argument("--max-running", type=int, help="set: jobs of one key running at once")
    s.add_argument("--max-pending", type=int, help="set: the queue's bound on its backlog")
    add_redis(s)
    add_json(s)
