"""Follow a queue's events live: progress, retries and outcomes of every job, as they happen.

    python -m examples.fleet.subscriber                    # until Ctrl-C
    python -m examples.fleet.subscriber --expect 1000      # until 1,000 jobs have finished

It follows the queue's event log from its end as it starts: start it before the producer, or
pass ``--since 0`` to replay the queue's capped event log first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys

from redisjobs import Client, Event, RedisJobsError

FINAL = frozenset({"completed", "failed", "cancelled"})
"""Event types that end a job: exactly one of them is recorded per job."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    p.add_argument(
        "--url",
        default=os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
        help="Redis URL (default: $REDIS_URL, else redis://localhost:6379/0)",
    )
    p.add_argument("--queue", "-q", default="default", help="queue name (default: default)")
    p.add_argument("--expect", type=int, help="exit 0 after this many jobs have finished")
    p.add_argument("--since", help="replay the event log after this id first (0: all of it)")
    p.add_argument(
        "--json-lines", action="store_true", help="print every event as one JSON object a line"
    )
    return p.parse_args(argv)


async def follow(args: argparse.Namespace) -> int:
    """Print events until `--expect` jobs have finished (or forever)."""
    finished = 0
    async with (
        Client(args.url, queue=args.queue) as client,
        # aclosing: leaving the loop early unsubscribes now, not when the loop is torn down
        contextlib.aclosing(client.events(since=args.since)) as events,
    ):
        async for event in events:
            line = as_json(event) if args.json_lines else as_text(event)
            if line is not None:
                print(line, flush=not args.json_lines)  # a person watches; a program reads at exit
            if event.type in FINAL:
                finished += 1
                if args.expect is not None and finished >= args.expect:
                    break
    return 0


def as_json(event: Event) -> str:
    """The whole event as one line of JSON (a result that is not JSON shows as its repr)."""
    return json.dumps(
        {"type": event.type, "job_id": event.job_id, "attempt": event.attempt, "ts": event.ts}
        | event.data,
        default=repr,
    )


def as_text(event: Event) -> str | None:
    """A line for a person: progress, retries and outcomes; None for the rest."""
    d = event.data
    if event.type == "progress":
        return f"{event.job_id}  {d.get('progress', 0):5.1f} %  {d.get('message') or ''}"
    if event.type == "completed":
        return f"{event.job_id}  done     {d.get('result')!r}"
    if event.type in ("failed", "cancelled", "retrying"):
        return f"{event.job_id}  {event.type:<8} {d.get('error')}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the subscriber; the exit status."""
    args = parse_args(argv)
    try:
        return asyncio.run(follow(args))
    except RedisJobsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C is how a person stops following
        with contextlib.suppress(BrokenPipeError):
            sys.stdout.flush()
        return 130


if __name__ == "__main__":
    sys.exit(main())
