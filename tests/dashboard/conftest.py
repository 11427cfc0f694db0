"""Fixtures of the dashboard tests: the app over the test's Client, over ASGI or real HTTP.

The whole directory is skipped when the ``dashboard`` extra is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the dashboard extra is not installed")
pytest.importorskip("uvicorn", reason="the dashboard extra is not installed")
pytest.importorskip("jinja2", reason="the dashboard extra is not installed")

import httpx
from starlette.types import ASGIApp

from redisjobs import Client
from redisjobs.dashboard import create_app
from redisjobs.dashboard.server import make_server, stop
from redisjobs.testing import RedisServer, free_port

BASE = "http://localhost"

AppFactory = Callable[..., httpx.AsyncClient]


async def get_on_empty(path: str) -> httpx.Response:
    """GET `path` of a dashboard over an embedded backend that holds nothing yet."""
    async with Client(f"memory://{uuid.uuid4().hex}") as fresh:
        transport = httpx.ASGITransport(app=create_app(fresh))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            return await http.get(path)


@pytest.fixture
async def http(client: Client) -> AsyncIterator[AppFactory]:
    """Make an httpx client of the dashboard app (options as create_app's) over ASGI."""
    made: list[httpx.AsyncClient] = []

    def make(**options: Any) -> httpx.AsyncClient:
        app = create_app(client, **options)
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        made.append(c)
        return c

    yield make
    for c in made:
        await c.aclose()


@pytest.fixture
async def dash(http: AppFactory) -> httpx.AsyncClient:
    """The dashboard app with its defaults, over ASGI."""
    return http()


def csrf_of(html: str) -> str:
    """The CSRF token a page put in its forms."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no form with a CSRF token on the page"
    return found.group(1)


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free port of `host` (loopback unless told), in this event
    loop; yields its URL (at 127.0.0.1 when `host` is a wildcard address)."""
    port = free_port()
    server = make_server(app, host, port)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    try:
        yield f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"
    finally:
        stop(server)
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def live_http(app: ASGIApp, host: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client of `app` served by a real uvicorn (see :func:`serving`)."""
    async with serving(app, host) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def private_redis() -> Iterator[RedisServer]:
    """A Redis of the module's tests alone (the browser tests: each page shows only what they
    make)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (see :mod:`.browsing`)."""
    from .browsing import CHROMIUM, CHROMIUM_ARGS, async_api

    async with async_api.async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: ``$REDISJOBS_SCREENSHOTS`` when set, else the test's tmp dir."""
    where = Path(os.environ.get("REDISJOBS_SCREENSHOTS") or tmp_path / "screenshots")
    where.mkdir(parents=True, exist_ok=True)
    return where
