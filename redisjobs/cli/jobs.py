"""Commands on jobs: enqueue, status, cancel, the jobs listing, a queue's counters."""

from __future__ import annotations

import argparse
import math
from typing import Any

from ..client import Client
from ..errors import CallRefused, JobCancelled, JobFailed
from ..job import Job, JobStatus
from ..jobtext import LONG
from .common import UsageError, connect, find_job
from .render import (
    CALL_CHARS,
    excerpt,
    job_document,
    percent,
    print_json,
    table,
    to_json,
    when,
)


async def enqueue(args: argparse.Namespace) -> int:
    """Enqueue one job; print its id (and with ``--wait``, its result).

    With ``--wait --json`` the document is the job as it ended: its final status with its result
    or error (exit status 1 unless it completed).
    """
    async with connect(args.redis, args.command, args.queue) as client:
        try:
            job = await client.enqueue(
                args.kind,
                args.payload,
                delay=args.delay,
                max_retries=args.max_retries,
                timeout=args.timeout,
            )
        except CallRefused as exc:  # the payload argument is wrong: exit status 2
            raise UsageError(str(exc)) from None
        document: dict[str, Any] = {"id": job.id, "queue": job.queue, "status": job.status}
        if not args.json:
            print(job.id, flush=True)  # before waiting: the id is worth having if the wait fails
        if args.wait is not None:
            await _wait(client, document, args.wait, as_json=args.json)
    if args.json:
        print_json(document)
    return 1 if document["status"] in (JobStatus.FAILED, JobStatus.CANCELLED) else 0


async def _wait(client: Client, document: dict[str, Any], wait: float, *, as_json: bool) -> None:
    """Wait for the job of `document` and record how it ended there (and print its result).

    Without `as_json`, a job that failed or was cancelled raises (one line, exit status 1), as
    does a wait that times out in both modes.
    """
    try:
        document["result"] = await client.wait(
            document["id"], timeout=None if math.isinf(wait) else wait
        )
    except JobFailed as exc:  # JobCancelled too
        if not as_json:
            raise
        cancelled = isinstance(exc, JobCancelled)
        document["status"] = JobStatus.CANCELLED if cancelled else JobStatus.FAILED
        document["error"] = exc.error
        return
    document["status"] = JobStatus.COMPLETED
    if not as_json:
        print(to_json(document["result"]))


def _details(job: Job) -> list[tuple[str, object]]:
    progress = percent(job.progress)
    if job.progress_message:
        progress += f"  {job.progress_message}"
    rows: list[tuple[str, object]] = [
        ("id", job.id),
        ("name", job.name),
        ("runs", job.call_text(LONG)),
        ("queue", job.queue),
        ("kind", job.kind),
        ("status", job.status),
        ("progress", progress),
        ("attempt", f"{job.attempt} of {job.max_retries + 1}"),
        ("worker", job.worker or "-"),
        ("created", when(job.created_at)),
        ("scheduled", when(job.scheduled_at)),
        ("started", when(job.started_at)),
        ("finished", when(job.completed_at)),
    ]
    if job.status is JobStatus.COMPLETED:
        rows.append(("result", to_json(job.result)))
    if job.error:
        rows.append(("error", job.error))
    return rows


async def status(args: argparse.Namespace) -> int:
    """Show one job: status, progress, attempts, timestamps, result or error."""
    async with connect(args.redis, args.command) as client:
        job = await find_job(client, args.job_id, args.queue)
    if args.json:
        print_json(job_document(job))
    else:
        print(table(_details(job)))
    return 0


async def cancel(args: argparse.Namespace) -> int:
    """Cancel a job; exit status 1 when it had already finished."""
    async with connect(args.redis, args.command) as client:
        job = await find_job(client, args.job_id, args.queue)
        cancelled = await client.cancel(job.id, queue=job.queue)
        after = await client.get(job.id, queue=job.queue)
    now = after.status if after is not None else job.status
    if args.json:
        print_json({"id": job.id, "queue": job.queue, "cancelled": cancelled, "status": now})
    elif not cancelled:
        print(f"job {job.id} is already {now}: not cancelled")
    elif now is JobStatus.RUNNING:
        print(f"cancel requested: job {job.id} is running, its worker stops it")
    else:
        print(f"cancelled job {job.id}")
    return 0 if cancelled else 1


async def list_jobs(args: argparse.Namespace) -> int:
    """A table of a queue's jobs, newest first within each status."""
    async with connect(args.redis, args.command, args.queue) as client:
        page = await client.list_jobs(args.status, limit=args.limit)
    if args.json:
        print_json({"queue": args.queue, "jobs": [job_document(j) for j in page.jobs]})
        return 0
    if not page.jobs:
        label = f"{args.status} " if args.status else ""
        print(f"no {label}jobs in queue {args.queue}")
        return 0
    rows = [
        (
            j.id,
            j.call_text(CALL_CHARS),
            j.status,
            percent(j.progress),
            j.attempt,
            when(j.created_at),
            excerpt(j.error or ""),
        )
        for j in page.jobs
    ]
    headers = ("ID", "NAME", "STATUS", "PROGRESS", "ATTEMPT", "CREATED", "ERROR")
    print(table(rows, headers, right={3, 4}))
    return 0


async def stats(args: argparse.Namespace) -> int:
    """A queue's running counters and the jobs waiting in it now."""
    async with connect(args.redis, args.command, args.queue) as client:
        counters = await client.stats()
    if args.json:
        print_json(counters)
    else:
        print(table(list(counters.items()), right={1}))
    return 0
