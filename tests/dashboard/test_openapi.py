"""The API does what its OpenAPI document says: schemathesis against a live server.

Schemathesis reads ``/api/openapi.json`` from a real uvicorn and sends generated requests, valid
and invalid, to every operation; each response must have a documented status, content type and
body schema, and invalid input must be refused with a 4xx. A few examples per operation keep it
quick; its private Redis keeps the queues it invents out of every other test's sight.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")

from hypothesis import HealthCheck, settings  # noqa: E402

from redisjobs import Client  # noqa: E402
from redisjobs.dashboard import create_app, openapi  # noqa: E402
from redisjobs.dashboard.server import make_server, stop  # noqa: E402
from redisjobs.testing import RedisServer, free_port  # noqa: E402


def _serve_in_thread(url: str, port: int, started: threading.Event, box: dict[str, Any]) -> None:
    """A server with its own loop and Client: schemathesis calls it synchronously."""

    async def main() -> None:
        async with Client(url) as client:
            server = make_server(create_app(client), "127.0.0.1", port)
            box["server"], box["loop"] = server, asyncio.get_running_loop()
            task = asyncio.create_task(server.serve())
            while not server.started and not task.done():
                await asyncio.sleep(0.02)
            started.set()
            await task

    asyncio.run(main())


@pytest.fixture(scope="module")
def api_base() -> Iterator[str]:
    with RedisServer() as redis:
        port = free_port()
        started, box = threading.Event(), dict[str, Any]()
        thread = threading.Thread(
            target=_serve_in_thread, args=(redis.url, port, started, box), daemon=True
        )
        thread.start()
        assert started.wait(15), "the API server did not start"
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            box["loop"].call_soon_threadsafe(stop, box["server"])
            thread.join(15)


# The document as this module builds it; the test below checks the server serves exactly it.
schema = schemathesis.openapi.from_dict(json.loads(json.dumps(openapi.document("/api"))))


@schema.parametrize()  # type: ignore[untyped-decorator]
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_matches_its_openapi_document(case: Any, api_base: str) -> None:
    # A job's event stream lasts until the job ends, and no worker runs these jobs: read it
    # for a moment (what arrived is validated), not until the job ends.
    streams = case.path.endswith("/events")
    case.call_and_validate(base_url=f"{api_base}/api", timeout=0.5 if streams else 10)


def test_served_document_is_the_module_s(api_base: str) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{api_base}/api/openapi.json", timeout=5) as response:
        served = json.load(response)
    assert served == json.loads(json.dumps(openapi.document("/api")))
    # Every route the API serves is in the document, and nothing else.
    from starlette.routing import Route

    from redisjobs.dashboard.api import Api

    served_paths = {r.path for r in Api(Client("memory://")).routes() if isinstance(r, Route)}
    assert served_paths == set(served["paths"])
