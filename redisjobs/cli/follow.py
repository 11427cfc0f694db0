"""``redisjobs events``: a queue's events live, one line each, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from ..client import Client
from ..events import EVENT_TYPES, Event
from .common import connect, until_stop_signal
from .render import clock, excerpt, print_json_line, to_json

TYPE_WIDTH = max(map(len, EVENT_TYPES))


def line(ev: Event) -> str:
    """One event as a line: time, type, job, attempt, then its data as ``name=value``."""
    data = " ".join(f"{name}={excerpt(to_json(value), 60)}" for name, value in ev.data.items())
    return f"{clock(ev.ts)}  {ev.type:<{TYPE_WIDTH}}  {ev.job_id}  #{ev.attempt}  {data}".rstrip()


async def events(args: argparse.Namespace) -> int:
    """Print the queue's events (after replaying the log from ``--since``) until stopped."""
    async with connect(args.redis, args.command, args.queue) as client:
        await until_stop_signal(_print(client, args.since, as_json=args.json))
    return 0


async def _print(client: Client, since: str | None, *, as_json: bool) -> None:
    async for ev in client.events(since=since):
        if as_json:
            print_json_line(asdict(ev))
        else:
            print(line(ev), flush=True)
