"""The Pyjobkit face's executors and webhooks in their edge cases: the retrying send both share
(against a real local server and a closed port), and a subprocess stopped by a cancel or a
timeout, with real processes."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from redisjobs.errors import JobTimeout, PayloadError
from redisjobs.pyjobkit.executors.http import HttpExecutor, send_retrying
from redisjobs.pyjobkit.executors.subprocess import SubprocessExecutor
from redisjobs.pyjobkit.webhooks import fire
from tests.test_pyjobkit_http import Lines, Recorder, recorder

__all__ = ["recorder"]  # the fixture, shared with the webhook tests


def outcome(**more: Any) -> dict[str, Any]:
    """What a worker passes to fire about a job, with `more`."""
    return {"job_id": uuid.uuid4(), "kind": "k", "attempts": 1, "duration_ms": 1.0,
            "result": None, **more}  # fmt: skip


async def test_send_retrying_doubles_its_waits_and_stops_where_told() -> None:
    calls: list[float] = []
    heard: list[tuple[int, str]] = []

    async def failed(attempt: int, exc: Exception) -> None:
        heard.append((attempt, str(exc)))

    async def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise OSError(f"try {len(calls)}")
        return "done"

    assert await send_retrying(flaky, retries=5, backoff=0.05, failed=failed) == "done"
    assert heard == [(1, "try 1"), (2, "try 2")]
    first, second = calls[1] - calls[0], calls[2] - calls[1]
    assert 0.05 <= first < second and 0.1 <= second < 0.5  # 0.05 s, then 0.1 s
    calls.clear()
    with pytest.raises(OSError, match="try 2"):  # out of retries: the last error
        await send_retrying(flaky, retries=1, backoff=0, failed=failed)
    calls.clear()
    with pytest.raises(OSError, match="try 1"):  # refused at once
        await send_retrying(flaky, retries=5, backoff=0, failed=failed, retryable=lambda e: False)
    assert len(calls) == 1


async def test_a_cancel_is_never_retried() -> None:
    calls = 0

    async def hangs() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(30)

    async def failed(attempt: int, exc: Exception) -> None:
        raise AssertionError("a cancel is not a failed attempt")

    task = asyncio.create_task(send_retrying(hangs, retries=3, backoff=0, failed=failed))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 1


async def test_webhooks_retry_a_timeout_reply_and_a_closed_port(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    common = outcome(initial_delay_s=0.01)
    recorder.statuses = [408, 200]  # the receiver timed out: worth another try, unlike a 400
    await fire(webhooks={"complete": f"{recorder.url}/slow"}, status="success", **common)
    assert [path for path, _, _ in recorder.seen] == ["/slow", "/slow"]
    await fire(webhooks={"fail": "http://127.0.0.1:9/"}, status="failed", max_attempts=2, **common)
    tries = [r.getMessage() for r in caplog.records if "127.0.0.1:9" in r.getMessage()]
    assert len(tries) == 3 and "permanently failed" in tries[-1]  # two tries, then given up
    assert "HTTP 408" in caplog.text


async def test_webhook_replies_read_as_the_http_executor_reads_them(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    recorder.statuses = [404]
    common = outcome()
    await fire(webhooks={"complete": f"{recorder.url}/gone"}, status="success", **common)
    assert len(recorder.seen) == 1  # a 4xx is final
    assert f"POST {recorder.url}/gone: HTTP 404 Not Found" in caplog.text


async def test_http_payloads_are_checked() -> None:
    run, ctx = HttpExecutor(), Lines()
    bad: list[Any] = [
        {},
        {"url": ""},
        {"url": 7},
        {"url": "http://x", "retries": -1},
        {"url": "http://x", "retries": "many"},
        {"url": "http://x", "backoff": "soon"},
        {"url": "http://x", "method": ["GET"]},
        "http://x",
    ]
    for payload in bad:
        with pytest.raises(PayloadError):  # a ValueError, before any request
            await run.run(job_id=uuid.uuid4(), payload=payload, ctx=ctx)
    assert ctx.lines == []


def _pid(path: Path) -> int:
    return int(path.read_text())


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def _started(path: Path) -> int:
    async with asyncio.timeout(10):
        while not path.exists() or not path.read_text():
            await asyncio.sleep(0.01)
    return _pid(path)


async def test_a_cancelled_command_is_ended_and_says_so(tmp_path: Path) -> None:
    assert SubprocessExecutor().kill_grace == 3.0  # Pyjobkit's grace before SIGKILL
    pidfile = tmp_path / "pid"
    script = f"trap '' TERM; echo $$ > {pidfile}; sleep 30 & wait"
    ctx, run = Lines(), SubprocessExecutor(kill_grace=0.3)
    task = asyncio.create_task(run.run(job_id=uuid.uuid4(), payload={"cmd": script}, ctx=ctx))
    pid = await _started(pidfile)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _gone(pid)
    said = [message for _, message in ctx.lines]
    assert said[-2:] == [
        f"terminating process group {pid} (SIGTERM)",
        f"process group {pid} still there after SIGTERM: sent SIGKILL",
    ]


async def test_a_command_past_its_timeout_is_ended(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    code = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(30)"
    ctx, run = Lines(), SubprocessExecutor()
    payload = {"cmd": [sys.executable, "-c", code], "timeout": 0.5}
    with pytest.raises(JobTimeout):
        await run.run(job_id=uuid.uuid4(), payload=payload, ctx=ctx)
    assert _gone(_pid(pidfile))
    assert any("terminating process group" in message for _, message in ctx.lines)
