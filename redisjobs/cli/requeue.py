"""``redisjobs requeue``: a failed or cancelled job runs again, or every failed job of a queue."""

from __future__ import annotations

import argparse

from ..client import Client
from .common import UsageError, change_job, connect
from .render import print_json


async def requeue(args: argparse.Namespace) -> int:
    """Requeue ``JOB``, or with ``--failed --all`` every dead letter of ``--queue``.

    Exit status 1 when ``JOB`` is neither failed nor cancelled (nothing happens); 0 for
    ``--failed --all``, however many jobs it put back (none included).
    """
    if args.job_id is not None:
        if args.failed or args.all:
            raise UsageError("requeue takes a JOB or --failed --all, not both")
        return await _one(args)
    if not (args.failed and args.all):
        raise UsageError("requeue needs a JOB, or --failed --all for every failed job of a queue")
    queue = args.queue or "default"
    async with connect(args.redis, args.command, queue) as client:
        count = await client.retry_failed()  # in batches of 100, each one script call
    if args.json:
        print_json({"queue": queue, "requeued": count})
    else:
        print(f"requeued {count} failed jobs of queue {queue}")
    return 0


async def _one(args: argparse.Namespace) -> int:
    job, requeued, now = await change_job(args, Client.retry, "requeued")
    said = f"job {job.id} is {now}: only a failed or cancelled job is requeued"
    if not args.json:
        print(f"requeued job {job.id}" if requeued else said)
    return 0 if requeued else 1
