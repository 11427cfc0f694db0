"""``redisjobs schedules [list|rm ID]`` and a scheduled task served by ``redisjobs worker APP``,
as real processes against the session's redis-server."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from redisjobs.sync import Client as SyncClient
from redisjobs.testing import unique_queue
from tests.test_cli import ENV, ROOT, cli, command, ok, one_line_error

pytestmark = pytest.mark.timeout(60)

CALL = {"fn": "tests.jobs:echo", "args": [1]}


def test_list_as_table_and_json_then_rm(redis_url: str) -> None:
    queue = unique_queue()
    with SyncClient(redis_url, queue=queue) as client:
        client.schedule("nightly", "call", CALL, cron="0 3 * * *", tz="Europe/Berlin")
        client.schedule("often", "call", CALL, every=30, limit=5)
    table = ok("schedules", "--redis", redis_url, "--queue", queue)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["ID", "WHEN", "NEXT"]
    assert "nightly" in lines[1] and "0 3 * * * (Europe/Berlin)" in lines[1]
    assert "often" in lines[2] and "every 30s" in lines[2] and lines[2].endswith("0/5")
    doc = json.loads(ok("schedules", "list", "--redis", redis_url, "--queue", queue, "--json"))
    assert [s["id"] for s in doc["schedules"]] == ["nightly", "often"]
    assert doc["schedules"][1]["every"] == 30 and doc["schedules"][1]["next_run"]
    assert doc["schedules"][0]["finished"] is False

    assert "removed schedule nightly" in ok(
        "schedules", "rm", "nightly", "--redis", redis_url, "-q", queue
    )
    again = cli("schedules", "rm", "nightly", "--redis", redis_url, "--queue", queue, "--json")
    assert again.returncode == 1 and json.loads(again.stdout)["removed"] is False
    assert "nightly" not in ok("schedules", "--redis", redis_url, "--queue", queue)


@pytest.mark.parametrize(
    "args", [("schedules", "rm"), ("schedules", "rm", "a:b"), ("schedules", "list", "x")]
)
def test_bad_arguments_are_one_line_and_exit_status_2(
    redis_url: str, args: tuple[str, ...]
) -> None:
    done = cli(*args, "--redis", redis_url)
    assert done.returncode == 2
    one_line_error(done)


def test_a_worker_of_an_app_upserts_and_fires_its_tasks_schedule(
    redis_url: str, tmp_path: Path
) -> None:
    queue = unique_queue()
    env = {**ENV, "SCHEDULE_APP_QUEUE": queue}
    argv = command("worker", "tests.schedule_app:app", "--redis", redis_url, "--no-uvloop")
    err = tmp_path / "worker.err"
    with open(err, "wb") as stderr:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=stderr)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, err.read_text()
            doc = json.loads(ok("schedules", "--redis", redis_url, "-q", queue, "--json"))
            found = doc["schedules"]
            if found and found[0]["runs"] >= 2:
                break
            assert time.monotonic() < deadline, doc
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(20)
    (beat,) = found
    assert beat["id"] == "tests.schedule_app.beat"
    assert beat["payload"] == {"fn": "tests.schedule_app:beat"}
    assert beat["last_job"].startswith("tests.schedule_app.beat@")
    status = json.loads(ok("status", beat["last_job"], "--redis", redis_url, "--json"))
    assert status["queue"] == queue
