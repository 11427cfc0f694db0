"""`redisjobs purge | drain | obliterate`, run as real processes against the session's Redis."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import pytest

from redisjobs import Client, Worker
from tests.test_cli import ENV, ROOT, cli, command, ok, one_line_error

pytestmark = pytest.mark.timeout(60)


async def test_purge_and_drain_report_what_they_deleted(redis_url: str, queue: str) -> None:
    at = ("--redis", redis_url)
    async with Client(redis_url, queue=queue) as client:
        jobs = await client.enqueue_many([("call", {})] * 4)
        await client.enqueue("call", {}, delay=60)
        for job in jobs[:2]:
            assert await client.cancel(job.id)
        purged = await asyncio.to_thread(ok, "purge", queue, "--status", "cancelled", *at, "--json")
        assert json.loads(purged) == {"queue": queue, "status": "cancelled", "purged": 2}
        none = await asyncio.to_thread(ok, "purge", queue, "--older-than", "60", *at)
        assert none == f"purged 0 failed jobs finished 60 s ago or earlier from queue {queue}\n"
        drained = await asyncio.to_thread(ok, "drain", queue, *at)
        assert drained == f"drained 3 waiting jobs from queue {queue}\n"
        assert await asyncio.to_thread(ok, "drain", queue, *at, "--json") == (
            json.dumps({"queue": queue, "drained": 0}, indent=2) + "\n"
        )
        stats = await client.stats()
        assert (stats["pending"], stats["scheduled"], stats["cancelled"]) == (0, 0, 5)


def _on_a_terminal(answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a command whose stdin is a terminal, on which `answer` is typed."""
    main, terminal = os.openpty()
    try:
        os.write(main, answer.encode() + b"\n")
        return subprocess.run(
            command(*args),
            cwd=ROOT,
            env=ENV,
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        os.close(main)
        os.close(terminal)


async def test_obliterate_asks_first_and_is_refused_while_a_worker_serves(
    redis_url: str, queue: str
) -> None:
    at = ("--redis", redis_url)
    async with Client(redis_url, queue=queue) as client:
        await client.enqueue("call", {}, delay=60)
        declined = await asyncio.to_thread(_on_a_terminal, "n", "obliterate", queue, *at)
        assert declined.returncode == 1 and "[y/N]" in declined.stderr
        assert queue in await client.queues()
        unasked = await asyncio.to_thread(cli, "obliterate", queue, *at)
        assert unasked.returncode == 2
        assert "pass --yes" in one_line_error(unasked)

        async with Worker(redis_url, queue=queue, handle_signals=False) as worker:
            refused = await asyncio.to_thread(cli, "obliterate", queue, "--yes", *at)
            assert refused.returncode == 1
            assert worker.id in one_line_error(refused)
            assert queue in await client.queues()
            forced = await asyncio.to_thread(ok, "obliterate", queue, "-y", "--force", *at)
            assert forced == f"obliterated queue {queue}: 1 jobs and every key deleted\n"
        assert queue not in await client.queues()

        await client.enqueue("call", {})
        agreed = await asyncio.to_thread(_on_a_terminal, "y", "obliterate", queue, *at, "--json")
        assert agreed.returncode == 0, agreed.stderr
        assert json.loads(agreed.stdout) == {"queue": queue, "obliterated": 1}
        assert queue not in await client.queues()


@pytest.mark.parametrize(
    "args",
    [
        ("purge", "q", "--status", "pending"),
        ("purge", "q", "--older-than", "-1"),
        ("purge", "q", "--older-than", "nan"),
        ("purge",),
        ("drain", "no spaces"),
        ("obliterate", "q{x}", "--yes"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_status_2(args: tuple[str, ...]) -> None:
    done = cli(*args)
    assert done.returncode == 2
    assert "Traceback" not in one_line_error(done)
