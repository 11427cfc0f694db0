"""Health for container probes: ``worker --health-port`` (HTTP) and ``redisjobs health`` (exec).

``GET /healthz`` is liveness: 200 while every worker of the process is connected, its loops
run and its heartbeats reach Redis; 503 with the reason otherwise (restart me). ``GET
/readyz`` is readiness: 200 once every worker is fetching and none is stopping. Both are
served by :class:`~redisjobs.httpserve.TinyServer`, which needs no extra.

``redisjobs health`` asks Redis instead, from any process: does it answer, and (with
``--queue``) does a live worker serve the queue.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError

from ..errors import RedisJobsError
from ..httpserve import Reply, TinyServer
from ..worker import Worker
from .common import UsageError, connect
from .render import print_json


def _reply(ok: bool, body: dict[str, Any]) -> Reply:
    status = "200 OK" if ok else "503 Service Unavailable"
    text = json.dumps({"status": "ok" if ok else "unavailable", **body}) + "\n"
    return Reply(status, text.encode(), "application/json")


class HealthServer(TinyServer):
    """``/healthz`` and ``/readyz`` of `workers` (all must pass), on the workers' loop."""

    def __init__(self, workers: Sequence[Worker], host: str, port: int) -> None:
        super().__init__(self._answer, host, port, name="health")
        self.workers = list(workers)

    async def _answer(self, path: str) -> Reply | None:
        queues = [q for w in self.workers for q in w.queues]
        if path == "/healthz":
            health = (item for w in self.workers for item in w.health().items())
            reasons = {queue: why for queue, why in health if why is not None}
            if reasons:
                return _reply(False, {"queues": queues, "reasons": reasons})
            return _reply(True, {"queues": queues})
        if path == "/readyz":
            waiting = [q for w in self.workers for q in w.unready()]
            if waiting:
                return _reply(False, {"queues": queues, "not_ready": waiting})
            return _reply(True, {"queues": queues})
        return None


async def start_health_server(args: argparse.Namespace, workers: Sequence[Worker]) -> TinyServer:
    """Listen on ``--health-host``:``--health-port`` (UsageError when that fails)."""
    server = HealthServer(workers, args.health_host, args.health_port)
    try:
        await server.start()
    except OSError as exc:
        raise UsageError(
            f"cannot serve health on {args.health_host}:{args.health_port}: {exc}"
        ) from None
    return server


class Unhealthy(Exception):
    """What ``redisjobs health`` found wrong (one line, exit status 1)."""


async def health(args: argparse.Namespace) -> int:
    """Exit 0 when Redis answers and (with --queue) a live worker serves the queue, else 1."""
    try:
        report = await _check(args)
    except Unhealthy as exc:
        if args.json:
            print_json({"status": "unavailable", "reason": str(exc)})
        else:
            print(f"redisjobs health: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json({"status": "ok", **report})
    else:
        live = f": {report['workers']} live workers on {args.queue!r}" if args.queue else ""
        print(f"ok{live}")
    return 0


async def _check(args: argparse.Namespace) -> dict[str, Any]:
    try:
        async with connect(args.redis, args.command) as client:
            if args.queue is None:
                return {}
            workers = await client.workers()  # a quiet one takes nothing: it does not serve
            live = [w.id for w in workers if w.taking and args.queue in w.queues]
    except (RedisJobsError, RedisError, OSError) as exc:
        raise Unhealthy(f"Redis unreachable: {exc}") from None
    if not live:
        raise Unhealthy(f"no live worker serves queue {args.queue!r}")
    return {"queue": args.queue, "workers": len(live)}
