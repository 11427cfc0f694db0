"""The Host check (DNS rebinding): over ASGI, then against a real uvicorn and raw sockets.

A rebinding page on evil.example has its name re-resolved to this machine: the browser then
sends everything the page asks for to the dashboard, with ``Host: evil.example`` (and, on a
POST, ``Origin: http://evil.example``). Every such request must be refused before it reads or
changes anything.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.routing import BaseRoute

from redisjobs import Client
from redisjobs.dashboard import create_api, create_app
from redisjobs.dashboard.security import HOST_REFUSED

from .conftest import AppFactory, live_http, serving

EVIL = "evil.example"


def _metrics_routes(client: Client) -> list[BaseRoute]:
    metrics = pytest.importorskip("redisjobs.metrics", reason="the metrics extra is not installed")
    return [metrics.metrics_route(client)]


async def _attempts(
    http: httpx.AsyncClient, client: Client, host: str
) -> AsyncIterator[tuple[str, httpx.Response]]:
    """Each request a rebinding page would send, with `host` as its Host: (what, response)."""
    job = await client.enqueue("call", None, delay=3600)
    q = client.queue
    page = f"/queues/{q}/jobs/{job.id}"
    origin = {"host": host, "origin": f"http://{host}"}
    reads = {
        "overview page": "/",
        "job page": page,
        "API list": "/api/queues",
        "API job": f"/api/jobs/{job.id}",
        "metrics": "/metrics",
    }
    for what, path in reads.items():
        yield what, await http.get(path, headers={"host": host})
    body = {"kind": "call", "payload": {"x": 1}}
    yield "API enqueue", await http.post(f"/api/queues/{q}/jobs", json=body, headers=origin)
    yield "API cancel", await http.post(f"/api/jobs/{job.id}/cancel", headers=origin)
    yield "form cancel", await http.post(f"{page}/cancel", data={"csrf": "x"}, headers=origin)
    streams = {"overview stream": "/events", "API job stream": f"/api/jobs/{job.id}/events"}
    for what, path in streams.items():
        # A stream let through would never end: the status is all there is to read.
        async with asyncio.timeout(10), http.stream("GET", path, headers={"host": host}) as r:
            yield what, r
    assert (await client.stats())["pending"] == 0, "something was enqueued"
    assert (await client.get(job.id)).status == "scheduled"  # type: ignore[union-attr]


async def _all_refused(http: httpx.AsyncClient, client: Client, host: str) -> None:
    async for what, response in _attempts(http, client, host):
        assert response.status_code == 400, (what, response.status_code)
        await response.aread()
        wanted = {"error": HOST_REFUSED} if "API" in what else None
        assert (response.json() if wanted else response.text) == (wanted or HOST_REFUSED), what


async def test_rebinding_requests_are_refused(client: Client) -> None:
    app = create_app(client, routes=_metrics_routes(client))
    transport = httpx.ASGITransport(app=app)  # the connection arrives at 127.0.0.1
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        for host in (EVIL, f"{EVIL}:8080", "localhost.evil.example", "127.0.0.1.evil.example"):
            await _all_refused(http, client, host)


@pytest.mark.parametrize(
    "host",
    ["", "local host", "evil.example@127.0.0.1", "127.0.0.1:http", "localhost:123456",
     "[::1", "[127.0.0.1]", "::1", "localhost:8080:8080", "-evil.example", "a..b"],
)  # fmt: skip
async def test_malformed_hosts_are_refused(dash: httpx.AsyncClient, host: str) -> None:
    response = await dash.get("/api/queues", headers={"host": host})
    assert response.status_code == 400 and response.json() == {"error": HOST_REFUSED}


@pytest.mark.parametrize(
    "host",
    ["localhost", "localhost:8080", "LocalHost:80", "127.0.0.1", "127.0.0.1:8080", "127.9.9.9",
     "[::1]", "[::1]:8080", "[0:0::1]", "[::ffff:127.0.0.1]:8080"],
)  # fmt: skip
async def test_loopback_names_are_accepted(dash: httpx.AsyncClient, host: str) -> None:
    assert (await dash.get("/", headers={"host": host})).status_code == 200
    assert (await dash.get("/api/queues", headers={"host": host})).status_code == 200


async def test_the_address_the_connection_arrived_at_is_accepted(client: Client) -> None:
    transport = httpx.ASGITransport(app=create_app(client))
    async with httpx.AsyncClient(transport=transport, base_url="http://10.1.2.3") as http:
        assert (await http.get("/")).status_code == 200  # Host: 10.1.2.3
        assert (await http.get("/", headers={"host": "10.1.2.3:8080"})).status_code == 200
        # Another address: this server is not there, the request was misdirected.
        assert (await http.get("/", headers={"host": "10.1.2.4"})).status_code == 400
    # A name as the server's address is not taken (some servers copy the Host there).
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{EVIL}") as http:
        assert (await http.get("/")).status_code == 400


async def test_configured_names(client: Client, http: AppFactory) -> None:
    dash = http(allowed_hosts=["dash.example.com", "*.corp.example", "192.0.2.7", "[2001:db8::1]"])
    for host in ["dash.example.com", "DASH.example.com:443", "a.corp.example", "b.a.corp.example",
                 "192.0.2.7:8080", "[2001:db8:0::1]", "localhost"]:  # fmt: skip
        assert (await dash.get("/api/queues", headers={"host": host})).status_code == 200, host
    for host in ["corp.example", "evil-corp.example", "dash.example.com.evil.example", EVIL,
                 "192.0.2.8", "[2001:db8::2]"]:  # fmt: skip
        assert (await dash.get("/api/queues", headers={"host": host})).status_code == 400, host
    one = http(allowed_hosts="dash.example.com")  # one name, not a list of its letters
    assert (await one.get("/", headers={"host": "dash.example.com"})).status_code == 200
    assert (await one.get("/", headers={"host": "d"})).status_code == 400
    anything = http(allowed_hosts=["*"])
    assert (await anything.get("/", headers={"host": EVIL})).status_code == 200


@pytest.mark.parametrize(
    "entry", ["dash.example.com:8080", "bad name", "", "*.", "*.192.0.2.1", "http://x", "[1.2.3.4]"]
)
async def test_bad_allowed_hosts_are_refused(client: Client, entry: str) -> None:
    with pytest.raises(ValueError, match="allowed host"):
        create_app(client, allowed_hosts=[entry])
    with pytest.raises(ValueError, match="allowed host"):
        create_api(client, allowed_hosts=[entry])


async def test_forwarded_host_must_be_allowed_too(client: Client, http: AppFactory) -> None:
    dash = http(allowed_hosts=["dash.example.com"])
    url = f"/api/queues/{client.queue}/jobs"
    # A rebinding page is same-origin in its browser's eyes: it may set X-Forwarded-Host.
    forged = {"host": "localhost", "x-forwarded-host": EVIL}
    assert (await dash.get("/api/queues", headers=forged)).status_code == 400
    chain = {"host": "localhost", "x-forwarded-host": f"dash.example.com, {EVIL}"}
    assert (await dash.get("/api/queues", headers=chain)).status_code == 400
    # Behind a proxy that names the public host: the page's own POST goes through.
    proxied = {
        "host": "127.0.0.1:8080",
        "x-forwarded-host": "dash.example.com",
        "origin": "https://dash.example.com",
    }
    assert (await dash.post(url, json={"kind": "call"}, headers=proxied)).status_code == 202


async def test_origin_must_be_this_very_host(client: Client, dash: httpx.AsyncClient) -> None:
    url = f"/api/queues/{client.queue}/jobs"
    own = {"host": "localhost:8080", "origin": "http://localhost:8080"}
    assert (await dash.post(url, json={"kind": "call"}, headers=own)).status_code == 202
    # Another port of an allowed name is another site (a dev server, say): 403, not let in.
    other_port = {"host": "localhost:8080", "origin": "http://localhost:3000"}
    response = await dash.post(url, json={"kind": "call"}, headers=other_port)
    assert response.status_code == 403
    rebound = {"host": "localhost:8080", "origin": f"http://{EVIL}:8080"}
    assert (await dash.post(url, json={"kind": "call"}, headers=rebound)).status_code == 403
    assert (await client.stats())["pending"] == 1


async def test_the_api_alone_checks_the_host(client: Client) -> None:
    transport = httpx.ASGITransport(app=create_api(client, allowed_hosts=["api.example.com"]))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as api:
        refused = await api.post(
            f"/queues/{client.queue}/jobs", json={"kind": "call"}, headers={"host": EVIL}
        )
        assert refused.status_code == 400 and refused.json() == {"error": HOST_REFUSED}
        assert (await api.get("/queues", headers={"host": "api.example.com"})).status_code == 200
    assert (await client.stats())["pending"] == 0


# -- a real uvicorn -----------------------------------------------------------------------------


@pytest.mark.redis_only
async def test_rebinding_refused_by_a_real_server(client: Client) -> None:
    async with live_http(create_app(client, routes=_metrics_routes(client))) as http:
        port = http.base_url.port
        await _all_refused(http, client, f"{EVIL}:{port}")
        for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
            assert (await http.get("/", headers={"host": host})).status_code == 200
            assert (await http.get("/api/queues", headers={"host": host})).status_code == 200


@pytest.mark.redis_only
async def test_a_real_server_answers_configured_names(client: Client) -> None:
    app = create_app(client, allowed_hosts=["dash.example"])
    async with live_http(app) as http:
        host = {"host": f"dash.example:{http.base_url.port}"}
        assert (await http.get("/", headers=host)).status_code == 200
        async with http.stream("GET", "/events", headers=host) as stream:
            assert stream.status_code == 200
        assert (await http.get("/", headers={"host": EVIL})).status_code == 400


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return reply


@pytest.mark.redis_only
async def test_a_request_without_a_host_is_refused(client: Client) -> None:
    async with serving(create_app(client)) as base:
        port = int(base.rsplit(":", 1)[1])
        reply = await asyncio.to_thread(_raw, port, b"GET /api/queues HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ") and HOST_REFUSED.encode() in reply


def _own_address() -> str | None:
    """A non-loopback IPv4 address of this machine (None when it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") else address


@pytest.mark.redis_only
async def test_bound_to_every_address_it_answers_to_its_own(client: Client) -> None:
    own = _own_address()
    if own is None:
        pytest.skip("this machine has no address but loopback")
    token = {"authorization": "Bearer host-test-token"}  # beyond loopback: credentials too
    async with serving(create_app(client, api_token="host-test-token"), "0.0.0.0") as base:
        port = int(base.rsplit(":", 1)[1])
        async with httpx.AsyncClient(base_url=f"http://{own}:{port}", headers=token) as http:
            assert (await http.get("/api/queues")).status_code == 200  # Host: <own>:<port>
            assert (await http.get("/api/queues", headers={"host": EVIL})).status_code == 400
            # An address that is not the one the connection arrived at.
            wrong = {"host": f"192.0.2.254:{port}"}
            assert (await http.get("/api/queues", headers=wrong)).status_code == 400
        async with httpx.AsyncClient(base_url=base, headers=token) as http:  # via 127.0.0.1
            assert (await http.get("/api/queues")).status_code == 200
            assert (await http.get("/api/queues", headers={"host": own})).status_code == 400
