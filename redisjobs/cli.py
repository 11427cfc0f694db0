"""The ``redisjobs`` command: run workers, enqueue and inspect jobs, run the demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from .client import Client
from .errors import RedisJobsError
from .worker import Worker


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="Redis URL (default: $REDIS_URL, else memory://)")
    p.add_argument("--queue", "-q", default="default", help="queue name (default: default)")


def _import(ref: str) -> Callable[..., Any]:
    import importlib

    module, _, name = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def _executor_options(w: argparse.ArgumentParser) -> None:
    x = w.add_argument_group("executors (call is always on; the others only when asked for)")
    x.add_argument(
        "--executor",
        "-x",
        action="append",
        default=[],
        metavar="KIND|module:attr",
        help="also run http, subprocess or ssh jobs, or your own executor (a class, a factory "
        "or an instance named module:attr)",
    )
    x.add_argument("--allow-shell", action="store_true", help="subprocess: run cmd strings")
    x.add_argument(
        "--pass-env",
        action="append",
        default=[],
        metavar="NAME",
        help="subprocess: pass this variable on",
    )
    x.add_argument("--http-allow-host", action="append", metavar="HOST", help="http allow-list")
    x.add_argument("--http-timeout", type=float, default=30.0)
    x.add_argument("--http-header", action="append", default=[], metavar="'Name: value'")
    x.add_argument("--http-follow-redirects", action="store_true")
    x.add_argument("--ssh-known-hosts", metavar="PATH", help="default ~/.ssh/known_hosts")
    x.add_argument("--ssh-user", help="default remote user")
    x.add_argument("--ssh-key", action="append", metavar="PATH", help="client key file")
    x.add_argument("--ssh-key-dir", metavar="DIR", help="where a payload's key_path may point")
    x.add_argument("--ssh-allow-host", action="append", metavar="HOST", help="ssh allow-list")
    x.add_argument(
        "--ssh-insecure-skip-host-key-check",
        action="store_true",
        help="accept any host key (never on a network you do not control)",
    )


def _executors(args: argparse.Namespace) -> list[Any]:
    """The executors the worker's options ask for."""
    from . import executors

    wanted = list(args.executor)
    if args.allow_shell or args.pass_env:
        wanted.append("subprocess")
    made: list[Any] = []
    for ref in dict.fromkeys(wanted):
        if ref == "subprocess":
            made.append(
                executors.SubprocessExecutor(allow_shell=args.allow_shell, pass_env=args.pass_env)
            )
        elif ref == "http":
            headers = dict(_header(h) for h in args.http_header)
            made.append(
                executors.HTTPExecutor(
                    allow_hosts=args.http_allow_host,
                    timeout=args.http_timeout,
                    headers=headers,
                    follow_redirects=args.http_follow_redirects,
                )
            )
        elif ref == "ssh":
            made.append(
                executors.SSHExecutor(
                    known_hosts=args.ssh_known_hosts,
                    insecure_skip_host_key_check=args.ssh_insecure_skip_host_key_check,
                    username=args.ssh_user,
                    client_keys=args.ssh_key,
                    key_dir=args.ssh_key_dir,
                    allow_hosts=args.ssh_allow_host,
                )
            )
        elif ":" in ref:
            obj = _import(ref)
            made.append(obj() if isinstance(obj, type) or not hasattr(obj, "run") else obj)
        else:
            raise RedisJobsError(
                f"unknown executor {ref!r}: use http, subprocess, ssh or module:attr"
            )
    return made


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise RedisJobsError(f"--http-header {text!r}: expected 'Name: value'")
    return name.strip(), value.strip()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="redisjobs", description=__doc__)
    parser.add_argument("--log-level", help="default: INFO for worker, WARNING otherwise")
    sub = parser.add_subparsers(dest="command", required=True)

    w = sub.add_parser("worker", help="run a worker until SIGTERM/SIGINT")
    _common(w)
    w.add_argument("--concurrency", "-c", type=int, default=100)
    w.add_argument("--lease-ttl", type=float, default=30.0)
    w.add_argument("--poll-interval", type=float, default=0.5)
    w.add_argument("--grace", type=float, default=30.0, help="seconds jobs get on shutdown")
    w.add_argument("--max-deliveries", type=int, default=5)
    w.add_argument("--reclaim-interval", type=float, default=None)
    w.add_argument("--function", "-f", action="append", default=[], help="module:function to allow")
    w.add_argument("--allow-module", "-m", action="append", default=[], help="module to allow")
    w.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    _executor_options(w)

    e = sub.add_parser("enqueue", help="enqueue one job and print its id")
    _common(e)
    e.add_argument("kind")
    e.add_argument("payload", nargs="?", default="null", help="JSON payload")
    e.add_argument("--delay", type=float)
    e.add_argument("--max-retries", type=int)
    e.add_argument("--timeout", type=float)
    e.add_argument("--wait", type=float, metavar="SECONDS", help="wait for the result and print it")

    for name, text in (("get", "show a job"), ("cancel", "cancel a job")):
        g = sub.add_parser(name, help=text)
        _common(g)
        g.add_argument("job_id")

    s = sub.add_parser("stats", help="counters and jobs per status of a queue")
    _common(s)

    d = sub.add_parser("demo", help="producer, workers and a live progress view in one process")
    d.add_argument("--url", help="Redis URL (default: $REDIS_URL, else the embedded memory://)")
    d.add_argument("--jobs", type=int, default=12)
    d.add_argument("--workers", type=int, default=2)
    return parser


async def _worker(args: argparse.Namespace) -> int:
    worker = Worker(
        args.url,
        queue=args.queue,
        functions=[_import(f) for f in args.function],
        modules=args.allow_module,
        executors=_executors(args),
        concurrency=args.concurrency,
        lease_ttl=args.lease_ttl,
        poll_interval=args.poll_interval,
        grace_period=args.grace,
        max_deliveries=args.max_deliveries,
        reclaim_interval=args.reclaim_interval,
    )
    await worker.run()
    return 0


async def _enqueue(args: argparse.Namespace) -> int:
    async with Client(args.url, queue=args.queue) as client:
        job = await client.enqueue(
            args.kind,
            json.loads(args.payload),
            delay=args.delay,
            max_retries=args.max_retries,
            timeout=args.timeout,
        )
        print(job.id)
        if args.wait is not None:
            print(json.dumps(await client.wait(job.id, timeout=args.wait), default=str))
    return 0


async def _get(args: argparse.Namespace) -> int:
    async with Client(args.url, queue=args.queue) as client:
        job = await client.get(args.job_id)
        if job is None:
            print(f"no job {args.job_id} in queue {args.queue}", file=sys.stderr)
            return 1
        fields = {k: getattr(job, k) for k in job.__slots__}
        print(json.dumps(fields, default=str, indent=2))
    return 0


async def _cancel(args: argparse.Namespace) -> int:
    async with Client(args.url, queue=args.queue) as client:
        ok = await client.cancel(args.job_id)
        print("cancelled" if ok else "not cancelled (finished or unknown)")
    return 0 if ok else 1


async def _stats(args: argparse.Namespace) -> int:
    async with Client(args.url, queue=args.queue) as client:
        print(json.dumps(await client.stats(), indent=2))
    return 0


async def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return await run_demo(args.url, jobs=args.jobs, workers=args.workers)


COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "worker": _worker,
    "enqueue": _enqueue,
    "get": _get,
    "cancel": _cancel,
    "stats": _stats,
    "demo": _demo,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``redisjobs`` command."""
    args = _parser().parse_args(argv)
    level = args.log_level or ("INFO" if args.command == "worker" else "WARNING")
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    factory = None
    if args.command == "worker" and not args.no_uvloop:
        try:
            import uvloop

            factory = uvloop.new_event_loop
        except ImportError:
            pass
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(COMMANDS[args.command](args))
    except RedisJobsError as exc:
        print(f"redisjobs: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        logging.shutdown()
