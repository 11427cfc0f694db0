"""``redisjobs schedules [list|rm ID]``: a queue's schedules, and removing one."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ..schedule_spec import MAX_SCHEDULE_ID, Schedule, check_schedule_id
from .args import add_json, add_queue, add_redis
from .common import UsageError, connect
from .render import print_json, table, when


def schedule_document(s: Schedule) -> dict[str, Any]:
    """Every field of a schedule, for JSON."""
    return {**dataclasses.asdict(s), "finished": s.finished}


async def list_schedules(args: argparse.Namespace) -> int:
    """A table of the queue's schedules: when, next run, last run and job, runs."""
    async with connect(args.redis, args.command, args.queue) as client:
        found = await client.schedules()
    if args.json:
        print_json({"queue": args.queue, "schedules": [schedule_document(s) for s in found]})
        return 0
    if not found:
        print(f"no schedules in queue {args.queue}")
        return 0
    rows = [
        (
            s.id,
            s.timing,
            "finished" if s.finished else when(s.next_run),
            when(s.last_run),
            s.last_job or "-",
            s.runs if s.limit is None else f"{s.runs}/{s.limit}",
        )
        for s in found
    ]
    print(table(rows, ("ID", "WHEN", "NEXT RUN", "LAST RUN", "LAST JOB", "RUNS"), right={5}))
    return 0


async def remove(args: argparse.Namespace) -> int:
    """Remove one schedule; exit status 1 when there was none."""
    async with connect(args.redis, args.command, args.queue) as client:
        removed = await client.unschedule(args.schedule_id)
    if args.json:
        print_json({"id": args.schedule_id, "queue": args.queue, "removed": removed})
    elif removed:
        print(f"removed schedule {args.schedule_id} (the jobs it made are kept)")
    else:
        print(f"no schedule {args.schedule_id!r} in queue {args.queue}")
    return 0 if removed else 1


def _schedule_id(text: str) -> str:
    try:
        return check_schedule_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def schedules(args: argparse.Namespace) -> int:
    """``schedules`` (or ``schedules list``), or ``schedules rm ID``."""
    if args.verb == "rm":
        if args.schedule_id is None:
            raise UsageError("schedules rm needs the ID of the schedule to remove")
        return await remove(args)
    if args.schedule_id is not None:
        raise UsageError(
            f"schedules list takes no ID (to remove one: schedules rm {args.schedule_id})"
        )
    return await list_schedules(args)


def add_parser(sub: Any) -> None:
    """Add ``schedules [list|rm ID]`` to the subcommands `sub`."""
    s = sub.add_parser("schedules", help="list a queue's schedules, or remove one (rm ID)")
    s.set_defaults(run=schedules)
    s.add_argument("verb", nargs="?", choices=["list", "rm"], default="list")
    s.add_argument(
        "schedule_id",
        nargs="?",
        metavar="ID",
        type=_schedule_id,
        help=f"the schedule to remove (1-{MAX_SCHEDULE_ID} characters of a job id)",
    )
    add_redis(s)
    add_queue(s)
    add_json(s)
