"""The grammar of the serving commands: ``worker`` and ``dashboard``."""

from __future__ import annotations

from typing import Any

from . import dashboard, executors, serve
from .args import (
    add_redis,
    non_negative_float,
    port_number,
    positive_float,
    positive_int,
    weighted_queue,
)


def add_worker(sub: Any) -> None:
    """``worker``: run workers until SIGTERM/SIGINT."""
    w = sub.add_parser("worker", help="run workers until SIGTERM/SIGINT")
    w.set_defaults(run=serve.run_worker)
    w.add_argument(
        "app",
        nargs="?",
        metavar="MODULE:APP",
        help="an App (myapp.tasks:app) whose tasks to run, on the queues they use",
    )
    add_redis(w, "; memory:// for a store private to this process")
    _queue_options(w)
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
    _worker_process_options(w)
    _durable_options(w)
    executors.add_options(w)


def _queue_options(w: Any) -> None:
    """The queues a worker serves, and their partitions."""
    w.add_argument(
        "--queue",
        "-q",
        action="append",
        type=weighted_queue,
        metavar="NAME[:WEIGHT]",
        help="a queue to serve; repeat it for several, which share --concurrency: in the order "
        "given (a queue only while those before it have nothing ready), or, once any has a "
        "WEIGHT (a whole number >= 1; 1 where none is given), free slots go to the queues with "
        "work in the ratio of their weights (default: the app's queues, equal weights, else "
        "default)",
    )
    w.add_argument(
        "--partitions",
        type=positive_int,
        default=1,
        metavar="N",
        help="each queue is spread over N partitions (its producers' count): serve them all, "
        "with equal shares",
    )


def _durable_options(w: Any) -> None:
    """The worker's durable outcomes (redisjobs.durability)."""
    w.add_argument(
        "--durable",
        type=positive_int,
        nargs="?",
        const=1,
        metavar="REPLICAS",
        help="record an outcome only once REPLICAS replicas (default 1) confirmed it (WAIT), "
        "so that a failover cannot lose it",
    )
    w.add_argument(
        "--durable-timeout",
        type=positive_float,
        default=1.0,
        metavar="SECONDS",
        help="how long --durable waits for the replicas before the outcome is sent again",
    )


def _worker_process_options(w: Any) -> None:
    """The worker's process options: processes, burst, uvloop, metrics and health probes."""
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


def add_dashboard(sub: Any) -> None:
    """``dashboard``: serve the live dashboard and the JSON API."""
    d = sub.add_parser("dashboard", help="serve the live dashboard and the JSON API")
    d.set_defaults(run=dashboard.run_dashboard)
    add_redis(d)
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
