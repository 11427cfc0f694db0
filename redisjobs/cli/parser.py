"""The grammar of the ``redisjobs`` command: subcommands, options, argument types."""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable
from typing import Any, NoReturn

from .. import __version__
from ..demo import run_demo
from ..job import JobStatus
from ..names import check_job_id, check_queue_name
from . import dashboard, executors, follow, health, info, jobs, schedules, serve, watch

STATUSES = [s.value for s in JobStatus]
_STREAM_ID = re.compile(r"^\d+(-\d+)?$")


class Parser(argparse.ArgumentParser):
    """argparse, with each error on one line (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        """Report a bad argument and exit."""
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _bounded(kind: type[int] | type[float], *, zero_ok: bool) -> Callable[[str], Any]:
    noun = "an integer" if kind is int else "a number"
    bound = ">= 0" if zero_ok else "> 0"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
            raise argparse.ArgumentTypeError(f"expected {noun} {bound}, got {text!r}")
        return value

    return parse


positive_int = _bounded(int, zero_ok=False)
non_negative_int = _bounded(int, zero_ok=True)
positive_float = _bounded(float, zero_ok=False)
non_negative_float = _bounded(float, zero_ok=True)


def queue_name(text: str) -> str:
    """A valid queue name (an argparse type)."""
    try:
        return check_queue_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def job_id(text: str) -> str:
    """A valid job id (an argparse type)."""
    try:
        return check_job_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def json_value(text: str) -> Any:
    """A JSON document (an argparse type)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from None


def stream_id(text: str) -> str:
    """An event log id, ``<ms>[-<seq>]`` (an argparse type)."""
    if not _STREAM_ID.match(text):
        raise argparse.ArgumentTypeError(f"expected an event id (0, 1700000000000-0), got {text!r}")
    return text


def _redis(p: argparse.ArgumentParser, fallback: str = "") -> None:
    p.add_argument(
        "--redis",
        "--dsn",
        "--url",
        dest="redis",
        metavar="URL",
        help=f"redis://[user:password@]host:port/db or rediss://… (default: $REDIS_URL{fallback})",
    )


def _json(p: argparse.ArgumentParser, what: str = "one JSON document") -> None:
    p.add_argument("--json", action="store_true", help=f"print {what}, for scripts")


def _queue(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queue", "-q", type=queue_name, default="default", help="default: default")


def _job(p: argparse.ArgumentParser) -> None:
    p.add_argument("job_id", metavar="JOB", type=job_id)
    p.add_argument(
        "--queue", "-q", type=queue_name, help="the job's queue (default: whichever holds it)"
    )


def _worker(sub: Any) -> None:
    w = sub.add_parser("worker", help="run workers until SIGTERM/SIGINT")
    w.set_defaults(run=serve.run_worker)
    w.add_argument(
        "app",
        nargs="?",
        metavar="MODULE:APP",
        help="an App (myapp.tasks:app) whose tasks to run, on the queues they use",
    )
    _redis(w, "; memory:// for a store private to this process")
    w.add_argument(
        "--queue",
        "-q",
        action="append",
        type=queue_name,
        help="a queue to serve; repeat it for several (one worker each; default: the app's "
        "queues, else default)",
    )
    w.add_argument("--concurrency", "-c", type=positive_int, default=100, help="jobs at once")
    w.add_argument(
        "--batch-size", type=positive_int, help="jobs leased per fetch (default: free slots)"
    )
    w.add_argument("--lease-ttl", type=positive_float, default=30.0, metavar="SECONDS")
    w.add_argument("--poll-interval", type=positive_float, default=0.5, metavar="SECONDS")
    w.add_argument(
        "--grace", type=non_negative_float, default=30.0, help="seconds jobs get on shutdown"
    )
    w.add_argument("--max-deliveries", type=positive_int, default=5)
    w.add_argument("--reclaim-interval", type=positive_float, metavar="SECONDS")
    w.add_argument(
        "--functions",
        action="extend",
        type=executors.comma_list,
        default=[],
        metavar="MODULE[,MODULE]",
        help="modules whose callables call jobs may run (a module:function allows just that)",
    )
    w.add_argument("--allow-module", "-m", action="append", default=[], help="one module")
    w.add_argument("--function", "-f", action="append", default=[], help="one module:function")
    w.add_argument(
        "--processes",
        type=positive_int,
        default=1,
        help="run N worker processes, restart any that dies, stop them all on SIGTERM/SIGINT",
    )
    w.add_argument(
        "--burst",
        action="store_true",
        help="stop once the queue has no job ready to run and none runs here (as RQ's --burst: "
        "jobs scheduled for later are not waited for)",
    )
    w.add_argument(
        "--task-processes",
        type=positive_int,
        metavar="N",
        help="child processes at once for isolation='process' tasks (default: the CPU count)",
    )
    w.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    w.add_argument(
        "--metrics-port",
        type=port_number,
        metavar="PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (needs redisjobs[metrics])",
    )
    w.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address of --metrics-port (default: 127.0.0.1, this machine)",
    )
    w.add_argument(
        "--health-port",
        type=port_number,
        metavar="PORT",
        help="serve probes: GET /healthz (liveness) and /readyz (readiness), 200 or 503",
    )
    w.add_argument(
        "--health-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address of --health-port (default: 127.0.0.1; 0.0.0.0 for probes from outside)",
    )
    executors.add_options(w)


def _jobs(sub: Any) -> None:
    e = sub.add_parser("enqueue", help="enqueue one job and print its id")
    e.set_defaults(run=jobs.enqueue)
    e.add_argument("kind", help="call, http, subprocess, ssh or your own")
    e.add_argument("payload", nargs="?", default="null", type=json_value, metavar="JSON")
    e.add_argument("--delay", type=non_negative_float, metavar="SECONDS")
    e.add_argument("--max-retries", type=non_negative_int)
    e.add_argument("--timeout", type=positive_float, metavar="SECONDS")
    e.add_argument(
        "--wait",
        nargs="?",
        const=math.inf,
        type=non_negative_float,
        metavar="SECONDS",
        help="wait (at most SECONDS) for the result and print it",
    )
    _queue(e)

    s = sub.add_parser("status", aliases=["get"], help="show a job")
    s.set_defaults(run=jobs.status)
    _job(s)

    w = sub.add_parser("watch", help="follow a job's progress until it ends")
    w.set_defaults(run=watch.watch)
    _job(w)

    c = sub.add_parser("cancel", help="cancel a job")
    c.set_defaults(run=jobs.cancel)
    _job(c)

    j = sub.add_parser("jobs", help="list a queue's jobs")
    j.set_defaults(run=jobs.list_jobs)
    _queue(j)
    j.add_argument("--status", "-s", choices=STATUSES)
    j.add_argument("--limit", "-n", type=positive_int, default=50)

    for p in (e, s, c, j):
        _redis(p)
        _json(p)
    _redis(w)
    _json(w, "a JSON object per change")


def _queues(sub: Any) -> None:
    i = sub.add_parser("info", help="queues, workers and throughput")
    i.set_defaults(run=info.info)
    _json(i)

    v = sub.add_parser("events", help="follow a queue's events until Ctrl-C")
    v.set_defaults(run=follow.events)
    _queue(v)
    v.add_argument(
        "--since", type=stream_id, metavar="ID", help="replay the event log after ID first (0: all)"
    )
    _json(v, "a JSON object per event")

    s = sub.add_parser("stats", help="a queue's counters")
    s.set_defaults(run=jobs.stats)
    _queue(s)
    _json(s)

    h = sub.add_parser("health", help="exit 0 if Redis answers (and a worker serves --queue)")
    h.set_defaults(run=health.health)
    h.add_argument(
        "--queue",
        "-q",
        type=queue_name,
        help="also require a live worker on this queue (heartbeat younger than 3 lease TTLs)",
    )
    _json(h)

    for p in (i, v, s, h):
        _redis(p)
    schedules.add_parser(sub, _common)


def _common(p: argparse.ArgumentParser) -> None:
    """``--redis --queue --json``: the options of a command on one queue's contents."""
    _redis(p)
    _queue(p)
    _json(p)


def port_number(text: str) -> int:
    """A TCP port, 1-65535 (an argparse type)."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port 1-65535, got {text!r}")
    return int(text)


def _dashboard(sub: Any) -> None:
    d = sub.add_parser("dashboard", help="serve the live dashboard and the JSON API")
    d.set_defaults(run=dashboard.run_dashboard)
    _redis(d)
    d.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine)"
    )
    d.add_argument("--port", "-p", type=port_number, default=8080, help="default: 8080")
    d.add_argument(
        "--read-only", action="store_true", help="hide the buttons; refuse every change (405)"
    )
    d.add_argument(
        "--basic-auth",
        metavar="USER:PASSWORD",
        help=f"require HTTP basic auth (default: ${dashboard.BASIC_AUTH_ENV})",
    )
    d.add_argument(
        "--api-token",
        metavar="TOKEN",
        help=f"bearer token the API requires; needed to bind beyond loopback "
        f"(default: ${dashboard.TOKEN_ENV})",
    )
    d.add_argument(
        "--allowed-host",
        metavar="NAME",
        action="append",
        help="also answer requests whose Host is NAME (a proxy's or DNS name, *.domain, or *); "
        "a Host that is none of these, localhost, this machine's addresses or --host gets 400; "
        "repeatable "
        f"(default: ${dashboard.ALLOWED_HOSTS_ENV}, comma-separated)",
    )


async def _demo(args: argparse.Namespace) -> int:
    return await run_demo(args.redis, jobs=args.jobs, workers=args.workers)


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
    _worker(sub)
    _jobs(sub)
    _queues(sub)
    _dashboard(sub)
    d = sub.add_parser("demo", help="producer, workers and a live progress view in one process")
    d.set_defaults(run=_demo)
    _redis(d, ", else the embedded memory://")
    d.add_argument("--jobs", type=int, default=12)
    d.add_argument("--workers", type=int, default=2)
    return parser
