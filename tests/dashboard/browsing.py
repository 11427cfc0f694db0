"""What the browser tests share: Debian's Chromium driven by Playwright, and a page that records
its script errors. Importing it skips the importing module where the ``playwright`` package is
missing; :data:`needs_chromium` skips it where the browser is."""

from __future__ import annotations

import asyncio
import os
import shutil
from typing import Any

import pytest

CHROMIUM = os.environ.get("REDISJOBS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Headless, as root, on a machine with no network but loopback: nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]

async_api = pytest.importorskip(
    "playwright.async_api",
    reason="the playwright package is not installed (pip install playwright)",
)
needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"no Chromium at {CHROMIUM}: install Debian's (apt-get install chromium) to run the "
    "browser tests",
)


class Watched:
    """A page whose script errors and console errors are collected, for a test to assert on."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: self.errors.append(f"console: {msg.text}") if msg.type == "error" else None,
        )
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))


async def new_page(browser: Any, width: int = 1280, height: int = 860, **options: Any) -> Watched:
    """A page of a context of its own, `width` by `height` (`options`: the context's)."""
    context = await browser.new_context(viewport={"width": width, "height": height}, **options)
    return Watched(await context.new_page())
