"""Commands on jobs: status, cancel, the jobs listing, a queue's counters."""

from __future__ import annotations

import argparse

from .. import flowshow
from ..client import Client
from ..flowview import Tree
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

ERROR_CHARS = 60
"""Characters of a job's error on a line of a flow's tree."""


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
    if job.depends_on:
        rows.append(("waits for", " ".join(job.depends_on)))
    if job.dependents:
        rows.append(("waited for by", " ".join(job.dependents)))
    return rows


def _tree_lines(tree: Tree, current: str) -> list[str]:
    """The tree as indented lines, one per job: id (queue/id of another queue), status,
    call, error shortened; the job ``queue/id`` `current` marked."""
    view = flowshow.shown(tree)
    lines = []
    for depth, node in view.rows:
        parts = [node.id if node.queue == tree.root.queue else node.ref, flowshow.status_of(node)]
        if node.job is not None:
            parts.append(node.job.call_text(CALL_CHARS))
            if node.job.error:
                parts.append(excerpt(node.job.error, ERROR_CHARS))
        if node.ref == current:
            parts.append("<- this job")
        lines.append("  " * depth + "  ".join(parts))
    if view.cut:
        lines.append("(cut: the flow has more jobs than are shown)")
    return lines


async def status(args: argparse.Namespace) -> int:
    """Show one job: status, progress, attempts, timestamps, result or error, and the tree of
    its flow (each job over the jobs it waits for) when it is in one."""
    async with connect(args.redis, args.command) as client:
        job = await find_job(client, args.job_id, args.queue)
        tree = None
        if flowshow.in_flow(job):
            queue, job_id = flowshow.tree_of(job)
            tree = await client.flow_tree(job_id, queue=queue)
    if args.json:
        document = job_document(job)
        if tree is not None:
            document["tree"] = flowshow.tree_json(tree)
        print_json(document)
        return 0
    print(table(_details(job)))
    if tree is not None:
        print("\nflow (each job over the jobs it waits for):")
        print("\n".join("  " + line for line in _tree_lines(tree, f"{job.queue}/{job.id}")))
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
