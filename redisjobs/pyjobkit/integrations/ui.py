"""Pyjobkit's HTML dashboard: one page over the REST router of :func:`make_router`, listing
jobs by status and cancelling them (the ``[fastapi]`` extra)::

    app.include_router(make_router(engine), prefix="/api/v1")
    mount_dashboard(app, api_prefix="/api/v1", ui_path="/ui")

The page reads the router's endpoints from the browser, so it needs no access of its own: put
the same dependencies (authentication) on both. Job data is shown as text, never as markup.
redisjobs' own dashboard (``redisjobs dashboard``) shows far more.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["DASHBOARD_HTML", "mount_dashboard"]

PLACEHOLDER = "__API_PREFIX__"

DASHBOARD_HTML = resources.files(__package__).joinpath("ui.html").read_text(encoding="utf-8")
"""The page, with ``__API_PREFIX__`` where the router's prefix goes (as a JavaScript string)."""


def render_dashboard(api_prefix: str) -> str:
    """The page for a router mounted at `api_prefix`.

    Raises:
        ValueError: `api_prefix` is not empty and does not start with ``/``.
    """
    if api_prefix and not api_prefix.startswith("/"):
        raise ValueError(f"api_prefix must start with '/': {api_prefix!r}")
    # a JSON string is a JavaScript string; "</" escaped so that it cannot end the script
    literal = json.dumps(api_prefix.rstrip("/")).replace("</", "<\\/")
    return DASHBOARD_HTML.replace(PLACEHOLDER, literal)


def mount_dashboard(
    app: Any, *, api_prefix: str = "", ui_path: str = "/ui", dependencies: Any = None
) -> None:
    """Serve the dashboard at `ui_path` of the FastAPI `app`, reading the router mounted at
    `api_prefix`; `dependencies` (such as ``[Depends(auth)]``) guard the page.

    Raises:
        ValueError: `api_prefix` is not empty and does not start with ``/``.
    """
    from fastapi.responses import HTMLResponse

    page = render_dashboard(api_prefix)

    async def dashboard() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": _CSP})

    app.add_api_route(
        ui_path, dashboard, methods=["GET"], include_in_schema=False, dependencies=dependencies
    )


_CSP = "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"
"""The page runs only its own inline script and talks only to its own origin."""
