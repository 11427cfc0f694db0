"""Commands on jobs: status, cancel, the jobs listing, a queue's counters."""

from __future__ import annotations

import argparse

from ..client import Client
from ..flowview import MAX_NODES, Tree, shown_tree
from ..job import Job, JobStatus
from ..jobtext import LONG
from .common import change_job, connect, find_job
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
    for label, refs in (("depends_on", job.depends_on), ("dependents", job.dependents)):
        if refs:
            rows.append((label, " ".join(refs)))
    if job.flow:
        rows.append(("flow", job.flow))
    return rows


def tree_lines(tree: Tree, job: Job) -> list[str]:
    """`tree` one line per job, each under the one that waited for it: a ``*`` marks `job`,
    then id (``queue/id`` for another queue), status (and why it failed), name and error."""
    lines = []
    for depth, node in tree.root.walk():
        mark = "*" if (node.queue, node.id) == (job.queue, job.id) else "-"
        name = node.id if node.queue == job.queue else node.ref
        found = node.job
        if found is None:
            lines.append(f"{'  ' * depth}{mark} {name}  gone")
            continue
        state = f"{found.status} ({found.failure})" if found.failure else str(found.status)
        error = f"  {excerpt(found.error)}" if found.error else ""
        lines.append(f"{'  ' * depth}{mark} {name}  {state}  {found.name}{error}")
    if tree.cut:
        lines.append(f"(cut: only the first {MAX_NODES:,} jobs of the flow are read)")
    return lines


async def status(args: argparse.Namespace) -> int:
    """Show one job: status, progress, attempts, timestamps, result or error, and, when it is
    part of a flow, the flow's tree (the jobs each one waited for, under it)."""
    async with connect(args.redis, args.command) as client:
        job = await find_job(client, args.job_id, args.queue)
        tree = await shown_tree(client, job)
    if args.json:
        document = job_document(job)
        if tree is not None:
            document["tree"] = tree.plain()
        print_json(document)
        return 0
    print(table(_details(job)))
    if tree is not None:
        print("\nflow (each job above the ones it waited for):")
        print("\n".join(tree_lines(tree, job)))
    return 0


async def cancel(args: argparse.Namespace) -> int:
    """Cancel a job; exit status 1 when it had already finished."""
    job, cancelled, now = await change_job(args, Client.cancel, "cancelled")
    if not cancelled:
        said = f"job {job.id} is already {now}: not cancelled"
    elif now is JobStatus.RUNNING:
        said = f"cancel requested: job {job.id} is running, its worker stops it"
    else:
        said = f"cancelled job {job.id}"
    if not args.json:
        print(said)
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
