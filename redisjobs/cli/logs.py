"""``redisjobs logs JOB``: a job's ``ctx.log`` lines; with ``--follow``, new ones until it ends."""

from __future__ import annotations

import argparse
import asyncio

from ..client import Client
from ..errors import JobNotFound
from ..events import FINAL_EVENTS, Event
from ..job import FINAL_STATUSES, Job
from .common import connect, find_job
from .render import print_json, print_json_line
from .watch import RECHECK_SECONDS, job_events

POLL_SECONDS = 1.0
"""How often a followed job's log is read while it runs: a log line has no event to wait for
(the worker writes its lines within moments of ``ctx.log``, before the job's outcome)."""


async def logs(args: argparse.Namespace) -> int:
    """Print the job's log lines, oldest first; with ``--follow``, then new ones as they come.

    Exit status: 0, or with ``--follow`` 0 when the job completed and 1 when it failed or was
    cancelled (as ``watch``).
    """
    async with connect(args.redis, args.command) as client:
        job = await find_job(client, args.job_id, args.queue)
        if args.follow:
            status = await _follow(client, job, args.json)
            return 0 if status == "completed" else 1
        lines = await client.logs(job.id, queue=job.queue)
    if args.json:
        print_json({"id": job.id, "queue": job.queue, "lines": lines})
    else:
        for line in lines:
            print(line)
    return 0


def new_lines(known: list[str], now: list[str]) -> list[str]:
    """The lines of `now` (the log as read now) after those of `known` (as read before).

    The log keeps its last 1,000 lines, so once it is full the lines read before are found
    again shifted to the front: the smallest shift that matches wins. (Of a full log whose
    lines repeat, lines identical to those they pushed out may go unseen.)
    """
    for dropped in range(len(known)):
        kept = known[dropped:]
        if now[: len(kept)] == kept:
            return now[len(kept) :]
    return now  # every line read before was pushed out


async def _follow(client: Client, job: Job, as_json: bool) -> str:
    """Print the job's lines as they come until it ends; its final status."""
    # The log position before reading the job's status: replaying from it misses no event.
    cursor = await client.log_cursor(job.queue)
    status = await _status(client, job)
    known: list[str] = []
    if status not in FINAL_STATUSES:  # a job that has ended has no event to wait for
        loop = asyncio.get_running_loop()
        recheck_at = loop.time() + RECHECK_SECONDS
        async with job_events(client, job.id, job.queue, cursor) as events:
            while status not in FINAL_STATUSES:
                known = await _print_new(client, job, known, as_json)
                status = await _final_event(events, POLL_SECONDS) or status
                if status not in FINAL_STATUSES and loop.time() >= recheck_at:
                    # a pub/sub reconnect may have lost the final event: read the status itself
                    status, recheck_at = await _status(client, job), loop.time() + RECHECK_SECONDS
    await _print_new(client, job, known, as_json)  # a worker writes the lines before the outcome
    return status


async def _print_new(client: Client, job: Job, known: list[str], as_json: bool) -> list[str]:
    """Print the lines of the job's log not in `known` (the log as read last); the log now."""
    now = await client.logs(job.id, queue=job.queue)
    for line in new_lines(known, now):
        if as_json:
            print_json_line({"id": job.id, "line": line})
        else:
            print(line, flush=True)
    return now


async def _final_event(events: asyncio.Queue[Event], timeout: float) -> str | None:
    """The job's final status when its final event comes within `timeout` s, else None."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                event = await events.get()
                if event.type in FINAL_EVENTS:
                    return event.type
    except TimeoutError:
        return None


async def _status(client: Client, job: Job) -> str:
    now = await client.get(job.id, queue=job.queue)
    if now is None:
        raise JobNotFound(f"job {job.id!r} no longer exists (expired after its result_ttl)")
    return str(now.status)
