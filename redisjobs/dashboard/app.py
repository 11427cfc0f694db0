"""The dashboard as one ASGI app: the pages, their live streams, and the JSON API at ``/api``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount

from ..client import Client
from ..errors import ConnectionFailed
from .api import api_app
from .security import BodyLimit, Guard, SecurityHeaders
from .settings import DEFAULT_MAX_BODY_BYTES, Settings
from .views import Pages


def create_app(
    client: Client,
    *,
    read_only: bool = False,
    basic_auth: str | tuple[str, str] | None = None,
    api_token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    allowed_hosts: Iterable[str] = (),
    routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The dashboard and the JSON API as one Starlette app; mount it anywhere.

    Args:
        client: where everything is read and changed. The caller opens and closes it (it
            connects on first use); one Client serves every page and stream, which share its
            single pub/sub connection.
        read_only: hide the buttons and refuse every request that changes something (405),
            pages and API alike.
        basic_auth: ``"user:password"`` (or a pair) that the pages, and the API unless it has
            a token, require.
        api_token: the bearer token the API requires. Without `basic_auth`, the pages take it
            as the password of HTTP basic auth (any user name).
        max_body_bytes: larger request bodies are refused with 413.
        allowed_hosts: Host names answered to besides ``localhost`` and the addresses the
            requests arrive at (names a proxy or DNS gives this server): ``name``,
            ``*.domain`` or ``*`` (any). Any other Host is refused with 400 (DNS rebinding).
        routes: more routes served beside the pages, behind the same credentials (the
            place for ``/metrics``).

    Returns:
        The app: pages at ``/``, the API at ``/api`` (see :func:`create_api`).
    """
    settings = Settings.of(read_only, basic_auth, api_token, max_body_bytes, allowed_hosts)
    pages = Pages(client, settings)
    for route in routes:
        pages.router.routes.insert(0, route)

    guarded = Guard(pages.router, settings, "pages")
    return Starlette(
        routes=[
            # The API has its own guard, limits and JSON errors, so that it also runs alone.
            Mount("/api", app=api_app(client, settings), name="api"),
            Mount("", app=SecurityHeaders(BodyLimit(guarded, settings.max_body_bytes))),
        ],
        exception_handlers=_error_pages(pages),
    )


def _error_pages(pages: Pages) -> dict[Any, Any]:
    """The handlers that answer errors outside the API with a page (Starlette's mapping)."""

    async def page_error(request: Request, exc: Exception) -> Response:
        root = str(request.scope.get("root_path", ""))
        if request.url.path.removeprefix(root).startswith("/api/"):
            # A path the API mount's pattern cannot take (a newline in it): answer as the API.
            assert isinstance(exc, HTTPException)
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        return await pages.error(request, exc)

    async def redis_error(request: Request, exc: Exception) -> Response:
        message = str(exc) if isinstance(exc, ConnectionFailed) else f"Redis error: {exc}"
        return await pages.error(request, HTTPException(503, message))

    return {HTTPException: page_error, RedisError: redis_error, ConnectionFailed: redis_error}
