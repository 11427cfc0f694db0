"""``redisjobs limits [list|set|clear] [QUEUE]`` as real processes against the session's
redis-server, and the throttled counter in the metrics."""

from __future__ import annotations

import json

import pytest

from redisjobs.sync import Client as SyncClient
from redisjobs.testing import unique_queue
from tests.test_cli import cli, ok, one_line_error

pytestmark = pytest.mark.timeout(60)


def test_set_list_and_clear(redis_url: str) -> None:
    queue = unique_queue()
    ok("limits", "set", queue, "--rate", "100/s", "--redis", redis_url)
    ok("limits", "set", queue, "--key", "t-a", "--rate", "10/2s", "--max-running", "2",
       "--redis", redis_url)  # fmt: skip
    ok("limits", "set", queue, "--max-pending", "500", "--redis", redis_url)
    with SyncClient(redis_url, queue=queue) as client:
        client.enqueue("call", {"fn": "tests.jobs:echo"}, limit_key="t-a")
        limits = client.limits()
    assert [(lim.key, lim.rate, lim.per, lim.max_running) for lim in limits] == [
        (None, 100.0, 1.0, None),
        ("t-a", 10.0, 2.0, 2),
    ]
    lines = ok("limits", queue, "--redis", redis_url).splitlines()
    assert lines[0].split() == ["KEY", "RATE", "BURST", "MAX", "RUNNING", "MAX", "PENDING"]
    assert lines[1].split() == ["(queue)", "100/1s", "-", "-", "500"]
    assert lines[2].split() == ["t-a", "10/2s", "-", "2", "500"]
    assert lines[4].split() == ["t-a", "1", "0", "-"]  # its backlog, under LIMIT KEY
    doc = json.loads(ok("limits", "list", queue, "--json", "--redis", redis_url))
    assert doc["keys"] == [{"key": "t-a", "backlog": 1, "running": 0, "next_at": 0.0}]
    assert ok("limits", "clear", queue, "--key", "t-a", "--redis", redis_url).startswith("cleared")
    done = cli("limits", "clear", queue, "--key", "t-a", "--redis", redis_url)
    assert done.returncode == 1 and done.stdout.startswith("no limit")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--rate", "5/w"), "a rate is '<count>/<period>'"),
        (("--key=-bad", "--rate", "1/s"), "limit_key must be"),
        (("--key", "a", "--max-pending", "3"), "max_pending bounds the queue"),
        ((), "a limit needs a rate or a max_running"),
    ],
)
def test_bad_limits_are_one_line_and_exit_status_2(
    redis_url: str, args: tuple[str, ...], message: str
) -> None:
    done = cli("limits", "set", unique_queue(), *args, "--redis", redis_url)
    assert done.returncode == 2
    assert message in one_line_error(done)
