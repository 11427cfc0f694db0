"""Commands that pause and resume a queue: `redisjobs pause QUEUE`, `redisjobs resume QUEUE`."""

from __future__ import annotations

import argparse

from .common import connect
from .render import print_json


async def pause_or_resume(args: argparse.Namespace) -> int:
    """Pause (``pause``) or resume (``resume``) the queue; exit 0 either way, saying whether
    this call changed it."""
    pause = args.command == "pause"
    async with connect(args.redis, args.command, args.queue) as client:
        changed = await (client.pause(args.queue) if pause else client.resume(args.queue))
    if args.json:
        print_json({"queue": args.queue, "paused": pause, "changed": changed})
    elif pause:
        print(f"paused queue {args.queue}" if changed else f"queue {args.queue} is paused already")
    else:
        print(f"resumed queue {args.queue}" if changed else f"queue {args.queue} was not paused")
    return 0
