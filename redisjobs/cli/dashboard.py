"""``redisjobs dashboard``: the live dashboard and the JSON API, served by uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import Any

from ..client import Client
from .common import UsageError, on_stop_signals, redis_url

TOKEN_ENV = "REDISJOBS_API_TOKEN"
BASIC_AUTH_ENV = "REDISJOBS_BASIC_AUTH"
ALLOWED_HOSTS_ENV = "REDISJOBS_ALLOWED_HOSTS"
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def allowed_hosts(args: argparse.Namespace) -> list[str]:
    """The Host names to answer to besides the defaults: ``--allowed-host`` (else
    ``$REDISJOBS_ALLOWED_HOSTS``, comma-separated), and the bound host unless it is a wildcard
    address (then each connection's own address is answered, see ``dashboard.hosts``)."""
    given = args.allowed_host or os.environ.get(ALLOWED_HOSTS_ENV, "").split(",")
    names = [name.strip() for name in given if name.strip()]
    bound = args.host.removeprefix("[").removesuffix("]")
    return names if bound in WILDCARD_BINDS else [*names, bound]


def _load() -> tuple[Any, Any]:
    try:
        from ..dashboard import create_app
        from ..dashboard.server import make_server, stop
    except ImportError as exc:
        raise UsageError(
            f"the dashboard needs its extra: pip install 'redisjobs[dashboard]' ({exc})"
        ) from None
    return create_app, (make_server, stop)


def _metrics_routes(client: Client) -> list[Any]:
    """``/metrics`` when the ``[metrics]`` extra is installed, else nothing."""
    try:
        from ..metrics import metrics_route
    except ImportError:
        return []
    return [metrics_route(client)]


async def run_dashboard(args: argparse.Namespace) -> int:
    """Serve the dashboard until SIGTERM/SIGINT."""
    url = redis_url(args.redis, "dashboard")
    token = args.api_token or os.environ.get(TOKEN_ENV) or None
    basic = args.basic_auth or os.environ.get(BASIC_AUTH_ENV) or None
    if not is_loopback(args.host) and token is None:
        raise UsageError(
            f"refusing to serve on {args.host} without --api-token (or ${TOKEN_ENV}): beyond "
            "this machine every request must carry credentials"
        )
    create_app, (make_server, stop) = _load()
    async with Client(url) as client:
        try:
            app = create_app(
                client,
                read_only=args.read_only,
                basic_auth=basic,
                api_token=token,
                allowed_hosts=allowed_hosts(args),
                routes=_metrics_routes(client),
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        server = make_server(app, args.host, args.port)
        on_stop_signals(lambda _sig: stop(server))
        shown = f"[{args.host}]" if ":" in args.host else args.host
        mode = " (read-only)" if args.read_only else ""
        print(
            f"redisjobs dashboard on http://{shown}:{args.port}/{mode}, "
            f"API at /api, Redis at {client.backend.masked}",
            file=sys.stderr,
        )
        await server.serve()
    return 0
