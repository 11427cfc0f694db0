"""The Pyjobkit face over HTTP and processes: completion webhooks (signed, retried) against a
real local server, the face's HttpExecutor and SubprocessExecutor semantics, and its FastAPI
router."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi import Request

from redisjobs.pyjobkit import Engine, Worker
from redisjobs.pyjobkit.contracts import ExecContext, Executor
from redisjobs.pyjobkit.executors.http import HttpExecutor
from redisjobs.pyjobkit.executors.subprocess import SubprocessExecutor
from redisjobs.pyjobkit.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    fire,
    normalize_webhooks,
    verify_signature,
)


class Recorder(ThreadingHTTPServer):
    """A local HTTP server that records what it gets and answers with queued statuses."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self.statuses: list[int] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.path, dict(self.headers), body))
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        reply = json.dumps({"path": self.path}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = _answer


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class Flaky(Executor):
    """Fails while its payload's ``fail`` count lasts, then returns its payload."""

    kind = "flaky"

    async def run(self, *, job_id: uuid.UUID, payload: Any, ctx: ExecContext) -> Any:
        if ctx.attempt <= payload.get("fail", 0):  # type: ignore[attr-defined]
            raise RuntimeError(f"attempt {ctx.attempt} broke")  # type: ignore[attr-defined]
        return {"done": payload["n"]}


def test_webhook_specs_are_checked() -> None:
    assert normalize_webhooks(None) is None and normalize_webhooks({}) is None
    assert normalize_webhooks({" Complete ": " http://x/ok "}) == {"complete": "http://x/ok"}
    with pytest.raises(ValueError):
        normalize_webhooks({"done": "http://x"})
    with pytest.raises(ValueError):
        normalize_webhooks({"fail": " "})


async def test_fire_signs_and_retries_5xx_but_not_4xx(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    hooks = {"complete": f"{recorder.url}/ok", "fail": f"{recorder.url}/bad"}
    recorder.statuses = [503, 200]
    job = uuid.uuid4()
    common: dict[str, Any] = {"job_id": job, "kind": "k", "attempts": 1, "duration_ms": 3.5}
    await fire(webhooks=hooks, status="success", result={"r": 1}, initial_delay_s=0.01,
               secret="s3cret", **common)  # fmt: skip
    assert [path for path, _, _ in recorder.seen] == ["/ok", "/ok"]
    _, headers, body = recorder.seen[-1]
    assert json.loads(body) == {"status": "success", "job_id": str(job), "kind": "k",
                                "attempts": 1, "duration_ms": 3.5, "result": {"r": 1}}  # fmt: skip
    signature, stamp = headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER]
    ok: dict[str, Any] = {"body": body, "signature_header": signature, "timestamp_header": stamp}
    assert verify_signature(secret="s3cret", **ok)
    assert not verify_signature(secret="other", **ok)
    assert not verify_signature(secret="s3cret", **ok, now=time.time() + 3600)  # replayed
    assert not verify_signature(secret="s3cret", **{**ok, "body": body + b" "})
    recorder.seen.clear()
    recorder.statuses = [404]
    await fire(webhooks=hooks, status="failed", result=None, initial_delay_s=0.01, **common)
    assert len(recorder.seen) == 1 and "webhook" in caplog.text  # a 4xx is not retried
    await fire(webhooks=hooks, status="timeout", result=None, **common)  # no timeout hook
    assert len(recorder.seen) == 1


async def test_a_worker_fires_the_webhook_of_each_final_outcome(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, backend: Any
) -> None:
    monkeypatch.setenv("PYJOBKIT_WEBHOOK_SECRET", "k")
    hooks = {"complete": f"{recorder.url}/ok", "fail": f"{recorder.url}/bad"}
    async with Engine(backend=backend, executors=[Flaky()]) as engine:
        good = await engine.enqueue(kind="flaky", payload={"n": 1, "fail": 1}, webhooks=hooks)
        bad = await engine.enqueue(kind="flaky", payload={"n": 2, "fail": 9}, webhooks=hooks,
                                   max_attempts=2)  # fmt: skip
        plain = await engine.enqueue(kind="flaky", payload={"n": 3})
        worker = Worker(engine, retry_policy="fixed:0", poll_interval=0.05, handle_signals=False)
        async with worker:
            async with asyncio.timeout(15):
                while {(await engine.get(j))["status"] for j in (good, bad, plain)} != {
                    "success",
                    "failed",
                }:
                    await asyncio.sleep(0.05)
        assert (await backend.get(plain))["payload"] == {"n": 3}
    # the retried first run of each fired nothing; each final outcome fired once
    calls = {
        json.loads(body)["job_id"]: (path, json.loads(body)) for path, _, body in recorder.seen
    }
    assert len(recorder.seen) == 2
    assert calls[str(good)][0] == "/ok" and calls[str(good)][1]["result"] == {"done": 1}
    assert calls[str(bad)][0] == "/bad" and calls[str(bad)][1]["attempts"] == 2
    assert all(SIGNATURE_HEADER in headers for _, headers, _ in recorder.seen)


class Lines:
    """A Pyjobkit-style context that keeps what executors log, by stream."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    async def log(self, message: str, /, *, stream: str = "stdout") -> None:
        self.lines.append((stream, message))

    async def is_cancelled(self) -> bool:
        return False

    async def set_progress(self, value: float, /, **meta: Any) -> None:
        pass


async def test_http_executor_returns_any_status_and_retries_transport_errors(
    recorder: Recorder,
) -> None:
    ctx, http = Lines(), HttpExecutor()
    recorder.statuses = [500]
    result = await http.run(job_id=uuid.uuid4(), payload={"url": f"{recorder.url}/x"}, ctx=ctx)
    assert result["status"] == 500 and result["body"] == {"path": "/x"}  # a result, not a failure
    post = {"url": recorder.url, "method": "post", "json": {"a": 1}}
    posted = await http.run(job_id=uuid.uuid4(), payload=post, ctx=ctx)
    assert posted["status"] == 200 and json.loads(recorder.seen[-1][2]) == {"a": 1}
    closed = "http://127.0.0.1:9/"  # the discard port: nothing listens
    with pytest.raises(Exception, match="onnect"):
        await http.run(job_id=uuid.uuid4(), ctx=ctx,
                       payload={"url": closed, "retries": 2, "backoff": 0.01})  # fmt: skip
    assert [m for s, m in ctx.lines if s == "stderr"][:2] == [
        m for s, m in ctx.lines if s == "stderr" and m.startswith("attempt")
    ]
    with pytest.raises(Exception, match=r"not allowed|private|refused"):
        await HttpExecutor(allow_private=False).run(
            job_id=uuid.uuid4(), payload={"url": recorder.url}, ctx=ctx
        )


async def test_subprocess_executor_in_pyjobkits_semantics() -> None:
    ctx, run = Lines(), SubprocessExecutor()
    py = sys.executable
    script = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    result = await run.run(job_id=uuid.uuid4(), payload={"cmd": [py, "-c", script]}, ctx=ctx)
    assert result["returncode"] == 3 and result["stdout"].strip() == "out"  # not a failure
    assert ("stdout", "out") in ctx.lines and ("stderr", "err") in ctx.lines
    shell = await run.run(job_id=uuid.uuid4(), payload={"cmd": "echo a | tr a b"}, ctx=ctx)
    assert shell["returncode"] == 0 and shell["stdout"].strip() == "b"
    strict = SubprocessExecutor(allowed_commands=[py])
    ok = await strict.run(job_id=uuid.uuid4(), payload={"cmd": [py, "-c", "pass"]}, ctx=ctx)
    assert ok["returncode"] == 0
    for refused in ("echo hi", ["rm", "-rf", "/nothing"], []):
        with pytest.raises(PermissionError):
            await strict.run(job_id=uuid.uuid4(), payload={"cmd": refused}, ctx=ctx)


async def test_the_fastapi_router(backend: Any) -> None:
    from fastapi import Depends, FastAPI, HTTPException
    from httpx import ASGITransport, AsyncClient

    from redisjobs.pyjobkit.integrations.fastapi import make_router

    def auth(request: Request) -> None:
        if request.headers.get("authorization") != "Bearer t":
            raise HTTPException(status_code=401)

    async with Engine(backend=backend) as engine:
        app = FastAPI()
        app.include_router(make_router(engine, dependencies=[Depends(auth)]), prefix="/api")
        headers = {"authorization": "Bearer t"}
        async with AsyncClient(
            transport=ASGITransport(app), base_url="http://t", headers=headers
        ) as c:
            made = await c.post(
                "/api/jobs", json={"kind": "noop", "payload": {"a": 1}, "tags": ["x"]}
            )
            assert made.status_code == 202
            job_id = made.json()["job_id"]
            got = (await c.get(f"/api/jobs/{job_id}")).json()
            assert got["status"] == "queued" and got["payload"] == {"a": 1}  # markers stripped
            assert [j["id"] for j in (await c.get("/api/jobs?status=queued")).json()] == [job_id]
            assert (await c.post(f"/api/jobs/{job_id}/cancel")).status_code == 202
            assert (await c.get(f"/api/jobs/{uuid.uuid4()}")).status_code == 404
            assert (await c.post(f"/api/jobs/{uuid.uuid4()}/cancel")).status_code == 404
            assert (await c.post("/api/jobs", json={"kind": "bad kind!"})).status_code == 422
            assert (await c.get("/api/healthz")).json() == {"status": "ok"}
            assert (await c.get("/api/healthz", headers={"authorization": ""})).status_code == 401


async def test_the_dashboard_page(backend: Any) -> None:
    from fastapi import Depends, FastAPI, HTTPException
    from httpx import ASGITransport, AsyncClient

    from redisjobs.pyjobkit.integrations.fastapi import make_router
    from redisjobs.pyjobkit.integrations.ui import DASHBOARD_HTML, mount_dashboard

    def auth(request: Request) -> None:
        if request.headers.get("authorization") != "Bearer t":
            raise HTTPException(status_code=401)

    async with Engine(backend=backend) as engine:
        app = FastAPI()
        app.include_router(make_router(engine), prefix="/api/v1")
        mount_dashboard(app, api_prefix="/api/v1/", ui_path="/ui", dependencies=[Depends(auth)])
        mount_dashboard(app, api_prefix="/x</script><script>alert(1)//", ui_path="/odd")
        with pytest.raises(ValueError, match="must start with '/'"):
            mount_dashboard(app, api_prefix="http://elsewhere", ui_path="/bad")
        async with AsyncClient(transport=ASGITransport(app), base_url="http://t") as c:
            assert (await c.get("/ui")).status_code == 401
            page = await c.get("/ui", headers={"authorization": "Bearer t"})
            assert page.status_code == 200 and "<title>Pyjobkit dashboard</title>" in page.text
            assert 'const API = "/api/v1";' in page.text and "__API_PREFIX__" not in page.text
            assert "default-src 'self'" in page.headers["content-security-policy"]
            odd = (await c.get("/odd")).text  # a prefix cannot close the script
            assert odd.count("</script>") == DASHBOARD_HTML.count("</script>")
    for status in ("queued", "running", "success", "failed", "timeout", "cancelled"):
        assert f"<option>{status}</option>" in DASHBOARD_HTML
    assert "innerHTML" not in DASHBOARD_HTML  # job data goes in as text


async def test_the_router_lists_through_any_backend(backend: Any) -> None:
    from fastapi import FastAPI
    from httpx import ASGITransport, AsyncClient

    from redisjobs.pyjobkit.integrations.fastapi import make_router

    async with Engine(backend=backend) as engine:
        ids = [await engine.enqueue(kind="noop", payload={"n": n}) for n in range(3)]
        await backend.succeed(ids[0], {"ok": True})
        records = await backend.all_jobs()

        class OldBackend:  # a QueueBackend written before all_jobs took filters
            async def all_jobs(self) -> list[dict[str, Any]]:
                return [{**r, "id": str(r["id"])} for r in records]  # ids as strings too

        class NoListing:
            pass

        for other, expected in ((OldBackend(), 200), (NoListing(), 501)):
            app = FastAPI()
            app.include_router(make_router(Engine(backend=other)))  # type: ignore[arg-type]
            async with AsyncClient(transport=ASGITransport(app), base_url="http://t") as c:
                listed = await c.get("/jobs", params={"status": "queued", "limit": 1})
                assert listed.status_code == expected
                if expected == 200:
                    [one] = listed.json()
                    assert one["status"] == "queued" and one["id"] in {str(i) for i in ids[1:]}
