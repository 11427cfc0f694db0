"""The http executor against a real HTTP server on loopback (the standard library's, in a
thread): bodies, statuses, timeouts, refused connections, size caps, allow-lists, redirects.
The server is on loopback, so most tests use a worker that allows private addresses; the tests
of that guard (``test_http_guard.py``) reach the same server without it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from redisjobs import (
    Client,
    ExecContext,
    ExecutorError,
    JobFailed,
    JobTimeout,
    PayloadError,
    RateLimited,
)
from redisjobs.executors import HTTPExecutor
from redisjobs.testing import closed_port
from tests.conftest import WorkerFactory


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be seen
    peers: list[int] = []  # noqa: RUF012 (shared by the test server's handler instances)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _route(self) -> None:
        Handler.peers.append(self.client_address[1])
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if url.path == "/echo":
            echo = {
                "method": self.command,
                "query": query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode(),
            }
            self._send(200, json.dumps(echo).encode(), "application/json")
        elif url.path == "/text":
            self._send(200, "héllo".encode(), "text/plain; charset=utf-8")
        elif url.path == "/binary":
            self._send(200, bytes(range(256)), "application/octet-stream")
        elif url.path.startswith("/status/"):
            self._send(int(url.path.rsplit("/", 1)[1]), b"not here: " + b"x" * 1000, "text/plain")
        elif url.path == "/slow":
            time.sleep(float(query["s"]))
            self._send(200, b"late", "text/plain")
        elif url.path == "/big":
            self._send(200, b"y" * int(query["n"]), "application/json")
        elif url.path == "/limited":
            after = query.get("after")
            if "in" in query:  # a date that many seconds after the response's own Date
                after = formatdate(time.time() + float(query["in"]), usegmt=True)
            retry_after = {"Retry_After": after} if after is not None else {}
            self._send(429, b"slow down", "text/plain", **retry_after)
        elif url.path == "/redirect":
            self._send(302, b"", "text/plain", Location=query["to"])
        else:
            self._send(404, b"no route", "text/plain")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _route


class Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the timeout test) is not the server's error


def serve(httpd: Server) -> Iterator[str]:
    """Run `httpd` in a thread, yield its base URL, stop it."""
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    host, port = str(httpd.server_address[0]), httpd.server_address[1]
    yield f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    yield from serve(Server(("127.0.0.1", 0), Handler))


@pytest.fixture
async def http() -> Any:
    ex = HTTPExecutor(allow_private=True)
    yield ex
    await ex.aclose()


async def call(ex: HTTPExecutor, ctx: ExecContext, **payload: object) -> dict[str, Any]:
    return await ex.run(job_id=ctx.job_id, payload=payload, ctx=ctx)


async def test_json_request_and_response(server: str, ctx: ExecContext) -> None:
    ex = HTTPExecutor(headers={"Authorization": "Bearer worker-token"}, allow_hosts=["127.0.0.1"])
    try:
        result = await call(
            ex,
            ctx,
            url=f"{server}/echo?keep=1",
            body={"order": 42},
            params={"v": 2},
            headers={"X-Trace": "abc", "Authorization": "Bearer from-payload"},
        )
    finally:
        await ex.aclose()
    assert result["status"] == 200
    assert result["headers"]["content-type"] == "application/json"
    echo = result["body"]
    assert echo["method"] == "POST"  # the default
    assert json.loads(echo["body"]) == {"order": 42}
    assert echo["query"] == {"keep": "1", "v": "2"}
    assert echo["headers"]["content-type"] == "application/json"
    assert echo["headers"]["x-trace"] == "abc"
    assert echo["headers"]["authorization"] == "Bearer worker-token"  # the worker's wins


async def test_text_binary_and_raw_content(server: str, ctx: ExecContext, http: Any) -> None:
    text = await call(http, ctx, url=f"{server}/text", method="get")
    assert text["body"] == "héllo"
    binary = await call(http, ctx, url=f"{server}/binary", method="GET")
    assert binary["body"] == bytes(range(256))
    raw = await call(http, ctx, url=f"{server}/echo", method="PUT", content="a=1&b=2")
    assert raw["body"]["body"] == "a=1&b=2" and raw["body"]["method"] == "PUT"


@pytest.mark.parametrize(
    ("status", "retry_4xx", "retryable"),
    [
        (404, True, True),
        (404, False, False),
        (429, False, True),
        (503, False, True),
    ],
)
async def test_error_statuses_fail_with_status_and_excerpt(
    server: str, ctx: ExecContext, http: Any, status: int, retry_4xx: bool, retryable: bool
) -> None:
    with pytest.raises(ExecutorError) as err:
        await call(http, ctx, url=f"{server}/status/{status}?token=secret", retry_4xx=retry_4xx)
    message = str(err.value)
    assert message.startswith(f"POST {server}/status/{status}: HTTP {status} ")
    assert "not here: xxx" in message and message.endswith("…") and len(message) < 400
    assert "secret" not in message  # the query string stays out of the job's error
    assert err.value.retryable is retryable


@pytest.mark.parametrize(
    ("query", "wait"),
    [
        ({"after": "30"}, 30.0),
        ({"in": "40"}, 40.0),  # a date, read against the response's Date
        ({"in": "-60"}, 0.0),  # a date already past: at once
        ({"after": "99999999999"}, 86400.0),
    ],
)
async def test_a_429_that_says_when_is_rate_limited(
    server: str, ctx: ExecContext, http: Any, query: dict[str, str], wait: float
) -> None:
    with pytest.raises(RateLimited) as limited:
        await call(http, ctx, url=f"{server}/limited", params=query)
    assert abs(limited.value.retry_after - wait) <= 1 and limited.value.pause is False


@pytest.mark.parametrize(
    "query",
    [{}, {"after": "soon"}, {"after": "-5"}, {"after": "Wed, 21 Oct 2026 07:28:40"}],
)
async def test_a_429_that_does_not_say_when_fails_the_run(
    server: str, ctx: ExecContext, http: Any, query: dict[str, str]
) -> None:
    with pytest.raises(ExecutorError, match="HTTP 429") as err:
        await call(http, ctx, url=f"{server}/limited", params=query, retry_4xx=False)
    assert err.value.retryable is True


async def test_timeout(server: str, ctx: ExecContext, http: Any) -> None:
    t0 = time.monotonic()
    with pytest.raises(JobTimeout, match=r"timed out after 0\.3 s") as err:
        await call(http, ctx, url=f"{server}/slow?s=2", method="GET", timeout=0.3)
    assert time.monotonic() - t0 < 1.5
    assert err.value.retryable


async def test_connection_refused(ctx: ExecContext, http: Any) -> None:
    with closed_port() as port, pytest.raises(ExecutorError, match="ConnectError") as err:
        await call(http, ctx, url=f"http://127.0.0.1:{port}/x")
    assert err.value.retryable


async def test_oversized_response_is_cut(server: str, ctx: ExecContext) -> None:
    ex = HTTPExecutor(max_response_bytes=1000, allow_private=True)
    try:
        result = await call(ex, ctx, url=f"{server}/big?n=500000", method="GET")
    finally:
        await ex.aclose()
    assert result["truncated"] is True
    assert result["body"] == "y" * 1000  # cut JSON is given as text


async def test_allow_list(server: str, ctx: ExecContext) -> None:
    port = server.rsplit(":", 1)[1]
    # A host the allow-list names may be private: localhost is reached without allow_private.
    ex = HTTPExecutor(allow_hosts=["*.example.com", "localhost"], follow_redirects=True)
    try:
        with pytest.raises(
            PayloadError, match=r"'127\.0\.0\.1' is not in this worker's allow-list"
        ):
            await call(ex, ctx, url=f"{server}/echo")
        ok = await call(ex, ctx, url=f"http://localhost:{port}/echo")
        assert ok["status"] == 200
        with pytest.raises(PayloadError, match="allow-list"):  # every redirect hop is checked
            await call(ex, ctx, url=f"http://localhost:{port}/redirect?to={server}/echo")
    finally:
        await ex.aclose()


async def test_redirects_are_not_followed_by_default(
    server: str, ctx: ExecContext, http: Any
) -> None:
    with pytest.raises(ExecutorError, match="HTTP 302 Found: redirect to /echo not followed"):
        await call(http, ctx, url=f"{server}/redirect?to=/echo", method="GET")


async def test_one_connection_is_reused(server: str, ctx: ExecContext, http: Any) -> None:
    Handler.peers.clear()
    for _ in range(3):
        await call(http, ctx, url=f"{server}/text", method="GET")
    assert len(Handler.peers) == 3 and len(set(Handler.peers)) == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"method": "GET"}, 'needs a "url"'),
        ({"url": "ftp://x/y"}, "need http:// or https://"),
        ({"url": "http://h/", "method": "BREW"}, "unsupported method"),
        ({"url": "http://h/", "body": {}, "content": "x"}, "not both"),
        ({"url": "http://h/", "body": b"\xff"}, "not JSON-encodable"),
        ({"url": "http://h/", "headers": ["x"]}, "map of strings"),
        ({"url": "http://h/", "retry_4xx": "no"}, "true or false"),
        (["http://h/"], "a http payload is a map"),
    ],
)
async def test_bad_payloads_fail_for_good(
    ctx: ExecContext, http: Any, payload: object, message: str
) -> None:
    with pytest.raises(PayloadError, match=message):
        await http.run(job_id="j", payload=payload, ctx=ctx)


async def test_http_jobs_through_a_worker(
    server: str, client: Client, worker: WorkerFactory
) -> None:
    await worker(executors=[HTTPExecutor(allow_private=True)])
    job = await client.enqueue("http", {"url": f"{server}/echo", "body": [1, 2]})
    result = await client.wait(job.id, timeout=10)
    assert result["status"] == 200 and result["body"]["body"] == "[1,2]"
    gone = await client.enqueue(
        "http", {"url": f"{server}/status/410", "retry_4xx": False}, max_retries=3
    )
    with pytest.raises(JobFailed, match="HTTP 410 Gone"):
        await client.wait(gone.id, timeout=10)
    assert (await client.get(gone.id)).attempt == 1  # type: ignore[union-attr]


async def test_a_json_body_carries_the_payload_types_as_the_api_shows_them(
    server: str, ctx: ExecContext
) -> None:
    import datetime as dt
    import decimal
    import uuid

    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    ident = uuid.UUID(int=7)
    body = {"at": when, "day": dt.date(2026, 1, 2), "price": decimal.Decimal("1.10")}
    body |= {"id": ident, "tags": {"b", "a"}, "pair": (1, 2)}
    ex = HTTPExecutor(allow_hosts=["127.0.0.1"])
    try:
        result = await call(ex, ctx, url=f"{server}/echo", body=body)
    finally:
        await ex.aclose()
    assert json.loads(result["body"]["body"]) == {
        "at": "2026-01-02T01:04:05+00:00",
        "day": "2026-01-02",
        "price": "1.10",
        "id": str(ident),
        "tags": ["a", "b"],
        "pair": [1, 2],
    }
