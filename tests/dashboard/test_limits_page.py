"""The limits page: each limited queue's specs, and its limit keys with their state."""

from __future__ import annotations

import httpx

from redisjobs import Client
from redisjobs.connection import ensure_group
from redisjobs.scripts import Scripts

from .conftest import get_on_empty


async def test_limits_page_shows_specs_and_keys_by_state(
    client: Client, scripts: Scripts, dash: httpx.AsyncClient
) -> None:
    await client.set_limit(rate=50, per=1.0, max_pending=1000)  # both in one call
    [whole] = await client.limits()
    assert (whole.key, whole.rate, whole.max_pending) == (None, 50, 1000)
    await client.set_limit(rate=1, per=60, key="acme")  # one job a minute
    await client.set_limit(key="beta", max_running=1)
    for key in ("acme", "beta"):
        for i in range(3):
            await client.enqueue("call", {"fn": "x", "i": i}, limit_key=key)
    await client.enqueue("call", {"fn": "x"}, limit_key="solo-1")
    await ensure_group(client.redis, client.keys())
    # one lease call per key's turn: acme's one token and beta's one slot go at once
    for _ in range(4):
        await scripts.start(client.keys(), "w1", read=10)

    page = await dash.get("/limits")
    assert page.status_code == 200
    html = page.text
    assert 'aria-current="page">Limits' in html
    section = html[html.index(f'data-queue="{client.queue}"') :]
    assert 'data-limit="(queue)"' in section and "50 per 1 s" in section
    assert 'data-limit="acme"' in section and "1 per 60 s" in section
    assert "1000" in section  # max_pending
    assert 'data-key="acme" data-state="waiting"' in section
    assert 'data-key="beta" data-state="at max_running"' in section
    acme = section[section.index('data-key="acme"') :]
    assert "in " in acme.split("</tr>")[0]  # its next turn, some seconds ahead
    states = await client.limit_keys()
    assert {s.key: (s.backlog, s.running) for s in states}["beta"] == (2, 1)
    assert "Limits</a>" in (await dash.get("/")).text  # in the navigation of every page


async def test_limits_page_without_any() -> None:
    empty = await get_on_empty("/limits")
    assert empty.status_code == 200 and "No limits" in empty.text
