"""The grammar of the ``redisjobs`` command: its subcommands and their options.

Conventions every subcommand (verb) follows:

* **Declaring it.** A ``_group(sub)`` function here (or in a ``parser_*.py`` module of its own
  for a large group) adds the subparser, with ``set_defaults(run=module.verb)``: ``verb`` is
  ``async def verb(args: argparse.Namespace) -> int``, returning the exit status, in a module
  of ``redisjobs/cli`` for its group. It talks to Redis inside ``common.connect(args.redis,
  args.command, queue)``. Argument types and shared options come from ``args.py``:
  ``add_redis`` (every verb), ``add_queue`` (a verb on a queue, default ``default``),
  ``add_job`` (a verb on one job: positional ``JOB`` and a ``--queue`` that narrows the search;
  find it with ``common.find_job``).
* **--json.** Every verb but the servers (``worker``, ``dashboard``, ``demo``: their output is
  their log, ``--log-format json``) takes ``add_json``. With it the verb prints exactly one JSON
  document on stdout (``render.print_json``), always an object (never a bare list or number:
  fields can be added later), and nothing else; a verb that follows something live prints one
  JSON object per line instead (``render.print_json_line``, flushed). Its shape goes in the
  README's "Command line" table of ``--json`` documents.
* **Exit status.** 0 done; 1 failed: what was asked did not happen (raise a
  ``RedisJobsError``, such as ``JobNotFound``, or print the outcome and return 1, as ``cancel``
  does for a job that already ended); 2 a usage error: argparse's (types raise
  ``argparse.ArgumentTypeError``), or ``common.UsageError`` for what is found wrong after
  parsing (a bad combination of options); 130 interrupted. ``cli.main`` prints any raised
  error as one line on stderr (``redisjobs: …``), never a traceback.
* **Following.** A verb that runs until Ctrl-C wraps its loop in ``common.until_stop_signal``
  (SIGINT/SIGTERM end it with status 0); a lost Redis still ends it with status 1.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from .. import __version__
from ..demo import run_demo
from ..job import FINAL_STATUSES, JobStatus
from . import (
    cleaning,
    enqueue,
    follow,
    health,
    info,
    jobs,
    limits,
    logs,
    pausing,
    requeue,
    schedules,
    watch,
)
from .args import (
    Parser,
    add_job,
    add_json,
    add_queue,
    add_redis,
    job_id,
    moment,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    queue_name,
    stream_id,
)
from .parser_serve import add_dashboard, add_worker

STATUSES = [s.value for s in JobStatus]


def _enqueue(sub: Any) -> argparse.ArgumentParser:
    e: argparse.ArgumentParser = sub.add_parser("enqueue", help="enqueue one job and print its id")
    e.set_defaults(run=enqueue.enqueue)
    e.add_argument("kind", help="call, http, subprocess, ssh or your own")
    e.add_argument(
        "payload",
        nargs="?",
        default="null",
        type=enqueue.payload,
        metavar="JSON",
        help="the payload as JSON; - reads it from stdin (default: null)",
    )
    when = e.add_mutually_exclusive_group()
    when.add_argument("--delay", type=non_negative_float, metavar="SECONDS")
    when.add_argument(
        "--at", type=moment, metavar="TIME", help="ISO 8601 (no zone: UTC) or epoch seconds"
    )
    e.add_argument("--job-id", type=job_id, metavar="ID", help="an id of yours (idempotent)")
    e.add_argument("--priority", type=non_negative_int, help="lower runs sooner (default 100)")
    e.add_argument("--max-retries", type=non_negative_int)
    e.add_argument("--retry-delay", type=non_negative_float, metavar="SECONDS")
    e.add_argument("--timeout", type=positive_float, metavar="SECONDS")
    e.add_argument("--result-ttl", type=positive_float, metavar="SECONDS")
    e.add_argument(
        "--wait",
        nargs="?",
        const=math.inf,
        type=non_negative_float,
        metavar="SECONDS",
        help="wait (at most SECONDS) for the result and print it",
    )
    add_queue(e)
    return e


def _jobs(sub: Any) -> None:
    e = _enqueue(sub)

    s = sub.add_parser("status", aliases=["get"], help="show a job")
    s.set_defaults(run=jobs.status)
    add_job(s)

    w = sub.add_parser("watch", help="follow a job's progress until it ends")
    w.set_defaults(run=watch.watch)
    add_job(w)

    c = sub.add_parser("cancel", help="cancel a job")
    c.set_defaults(run=jobs.cancel)
    add_job(c)

    j = sub.add_parser("jobs", help="list a queue's jobs")
    j.set_defaults(run=jobs.list_jobs)
    add_queue(j)
    j.add_argument("--status", "-s", choices=STATUSES)
    j.add_argument("--limit", "-n", type=positive_int, default=50)

    for p in (e, s, c, j):
        add_redis(p)
        add_json(p)
    add_redis(w)
    add_json(w, "a JSON object per change")
    _requeue_and_logs(sub)


def _requeue_and_logs(sub: Any) -> None:
    r = sub.add_parser("requeue", help="run a failed or cancelled job again (or every failed one)")
    r.set_defaults(run=requeue.requeue)
    r.add_argument("job_id", nargs="?", metavar="JOB", type=job_id)
    r.add_argument("--failed", action="store_true", help="with --all: every failed job")
    r.add_argument("--all", action="store_true", help="with --failed: of the whole queue")
    r.add_argument(
        "--queue", "-q", type=queue_name, help="the queue (default: JOB's, or default for --all)"
    )
    add_json(r)

    g = sub.add_parser("logs", help="a job's log lines (ctx.log)")
    g.set_defaults(run=logs.logs)
    add_job(g)
    g.add_argument("--follow", "-f", action="store_true", help="print new lines until it ends")
    add_json(g, "one JSON document (with --follow: a JSON object per line)")
    for p in (r, g):
        add_redis(p)


def _queues(sub: Any) -> None:
    i = sub.add_parser("info", help="queues, workers and throughput")
    i.set_defaults(run=info.info)
    i.add_argument("--watch", "-w", action="store_true", help="redraw every --interval, Ctrl-C")
    i.add_argument(
        "--interval", type=positive_float, metavar="SECONDS", help="with --watch (default: 2)"
    )
    add_json(i, "one JSON document (with --watch: one per line per refresh)")

    v = sub.add_parser("events", help="follow a queue's events until Ctrl-C")
    v.set_defaults(run=follow.events)
    add_queue(v)
    v.add_argument(
        "--since", type=stream_id, metavar="ID", help="replay the event log after ID first (0: all)"
    )
    add_json(v, "a JSON object per event")

    s = sub.add_parser("stats", help="a queue's counters")
    s.set_defaults(run=jobs.stats)
    add_queue(s)
    add_json(s)

    h = sub.add_parser("health", help="exit 0 if Redis answers (and a worker serves --queue)")
    h.set_defaults(run=health.health)
    h.add_argument(
        "--queue",
        "-q",
        type=queue_name,
        help="also require a live worker on this queue (heartbeat younger than 3 lease TTLs)",
    )
    add_json(h)

    for p in (i, v, s, h, *_pausing(sub)):
        add_redis(p)
    schedules.add_parser(sub)
    limits.add_parser(sub)


def _pausing(sub: Any) -> list[argparse.ArgumentParser]:
    made = []
    for verb, text in (
        ("pause", "stop a queue's workers from starting jobs (running ones finish)"),
        ("resume", "let a paused queue's workers start jobs again"),
    ):
        p = sub.add_parser(verb, help=text)
        p.set_defaults(run=pausing.pause_or_resume)
        p.add_argument("queue", type=queue_name, metavar="QUEUE")
        add_json(p)
        made.append(p)
    return made


async def _demo(args: argparse.Namespace) -> int:
    return await run_demo(args.redis, jobs=args.jobs, workers=args.workers)


def _cleaning(sub: Any) -> None:
    p = sub.add_parser("purge", help="delete a queue's finished jobs of one status")
    p.set_defaults(run=cleaning.purge)
    p.add_argument(
        "--status", "-s", choices=sorted(FINAL_STATUSES), default="failed", help="default: failed"
    )
    p.add_argument(
        "--older-than",
        type=non_negative_float,
        metavar="SECONDS",
        help="only jobs that finished at least SECONDS ago (default: all)",
    )
    d = sub.add_parser("drain", help="drop a queue's pending and scheduled jobs")
    d.set_defaults(run=cleaning.drain)
    o = sub.add_parser(
        "obliterate", help="delete every job and key of a queue (refused while workers serve it)"
    )
    o.set_defaults(run=cleaning.obliterate)
    o.add_argument("--force", action="store_true", help="even while live workers serve it")
    o.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    for c in (p, d, o):
        c.add_argument("queue", metavar="QUEUE", type=queue_name)
        add_redis(c)
        add_json(c)


PYJOBKIT = "pyjobkit"
"""The verb whose command line is Pyjobkit's (see :mod:`redisjobs.pyjobkit.cli`)."""


def build() -> Parser:
    """The ``redisjobs`` parser; each subcommand sets ``run``, its coroutine function."""
    parser = Parser(
        prog="redisjobs", description="Run workers, enqueue and inspect jobs, run the demo."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default: INFO for worker, WARNING otherwise",
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="json: one JSON object per line (time, level, logger, message, exc_info)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_worker(sub)
    _jobs(sub)
    _queues(sub)
    _cleaning(sub)
    add_dashboard(sub)
    d = sub.add_parser("demo", help="producer, workers and a live progress view in one process")
    d.set_defaults(run=_demo)
    add_redis(d, ", else the embedded memory://")
    d.add_argument("--jobs", type=int, default=12)
    d.add_argument("--workers", type=int, default=2)
    # Listed for --help; `main` hands its command line to the face before this parser runs.
    k = sub.add_parser(
        PYJOBKIT,
        help="Pyjobkit's commands: a worker with its flags, prune, simulate",
        add_help=False,
    )
    k.add_argument("rest", nargs=argparse.REMAINDER, help="pyjobkit's own arguments")
    return parser
