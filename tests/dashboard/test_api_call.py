"""The HTTP API refuses a `call` job naming a function no worker may run, as the Client does."""

from __future__ import annotations

import httpx
import pytest

from redisjobs import Client


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"fn": "tests.jobs:add.__globals__"}, "'__globals__' is a dunder name"),
        ({"fn": "myapp.tasks:_secret"}, "'_secret' is a private name"),
        ({"fn": "os:system; rm -rf /"}, "is not an identifier"),
        ({"fn": "myapp.tasks:resize", "kwargs": {"ctx": {}}}, "'ctx' is reserved"),
    ],
)
async def test_refused_call_is_422(
    client: Client, dash: httpx.AsyncClient, payload: object, words: str
) -> None:
    one = await dash.post(
        f"/api/queues/{client.queue}/jobs", json={"kind": "call", "payload": payload}
    )
    assert one.status_code == 422
    assert words in one.json()["error"]
    batch = {
        "jobs": [{"kind": "call", "payload": {"fn": "add"}}, {"kind": "call", "payload": payload}]
    }
    many = await dash.post(f"/api/queues/{client.queue}/jobs:batch", json=batch)
    assert many.status_code == 422 and words in many.json()["error"]
    assert (await client.stats())["enqueued"] == 0
