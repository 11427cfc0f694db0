"""The operators' verbs of `redisjobs`: requeue, logs, info --watch, enqueue's options, and
--json on every verb, run as real processes against the session's redis-server."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pty
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redisjobs import Client, Worker
from redisjobs.cli.logs import new_lines
from redisjobs.cli.parser import build
from redisjobs.testing import RedisServer, closed_port
from tests import jobs, test_cli
from tests.test_cli import (
    ENV,
    ROOT,
    Lines,
    Spawn,
    call,
    cli,
    command,
    ok,
    one_line_error,
    stop,
)

# test_cli's fixtures, for the tests here that ask for them by name
queue, spawn, worker = test_cli.queue, test_cli.spawn, test_cli.worker

pytestmark = pytest.mark.timeout(60)

SERVERS = {"worker", "dashboard", "demo", "pyjobkit"}
"""The verbs without --json: they serve until stopped, and their output is their log (the
pyjobkit verb takes Pyjobkit's command line, which has no --json)."""


def verbs() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand of the parser (aliases left out), by name."""
    [sub] = [a for a in build()._actions if isinstance(a, argparse._SubParsersAction)]
    return {a.dest: sub.choices[a.dest] for a in sub._choices_actions}


def doc(*args: str) -> Any:
    """The --json document of a command that must succeed."""
    return json.loads(ok(*args, "--json"))


def status_of(job_id: str, redis_url: str) -> str:
    state: str = doc("status", job_id, "--redis", redis_url)["status"]
    return state


# -- enqueue's options ---------------------------------------------------------------------------


def test_enqueue_options_reach_the_job(redis_url: str, queue: str) -> None:
    at = ("--redis", redis_url, "-q", queue)
    given = doc(
        "enqueue", "call", call("add", 1, 2), *at,
        "--job-id", "nightly-1", "--priority", "7", "--max-retries", "2", "--retry-delay", "3",
        "--timeout", "4", "--result-ttl", "50",
    )  # fmt: skip
    assert given == {"id": "nightly-1", "queue": queue, "status": "pending"}
    job = doc("status", "nightly-1", "--redis", redis_url)
    assert (job["priority"], job["max_retries"], job["timeout"]) == (7, 2, 4.0)
    again = doc("enqueue", "call", call("add", 5, 5), *at, "--job-id", "nightly-1")
    assert again == given  # the id is idempotent: the job that exists is returned
    assert doc("status", "nightly-1", "--redis", redis_url)["payload"]["args"] == [1, 2]


@pytest.mark.slow
def test_enqueue_at_a_time_in_the_future_or_the_past(
    redis_url: str, queue: str, worker: Callable[..., subprocess.Popen[str]]
) -> None:
    at = ("--redis", redis_url, "-q", queue)
    later = doc("enqueue", "call", call("add", 1, 1), *at, "--at", "2999-01-01T00:00:00+01:00")
    assert later["status"] == "scheduled"
    scheduled = doc("status", later["id"], "--redis", redis_url)["scheduled_at"]
    assert scheduled == "2998-12-31T23:00:00+00:00"
    naive = doc("enqueue", "call", call("add", 1, 1), *at, "--at", "2999-01-01T00:00:00")
    assert doc("status", naive["id"], "--redis", redis_url)["scheduled_at"].startswith(
        "2999-01-01T00:00:00+00:00"  # no zone: UTC, as Client.enqueue(at=) takes it
    )
    epoch = doc("enqueue", "call", call("add", 1, 1), *at, "--at", str(32503680000))
    assert doc("status", epoch["id"], "--redis", redis_url)["scheduled_at"].startswith("3000-01-01")
    past = doc("enqueue", "call", call("add", 1, 1), *at, "--at", "2001-09-09T01:46:40Z")
    assert worker("--queue", queue, "--burst").wait(30) == 0  # it runs what is due, and stops
    done = doc("status", past["id"], "--redis", redis_url)
    assert (done["status"], done["result"]) == ("completed", 2)  # due already: it ran at once
    for job in (later, naive, epoch):
        assert doc("status", job["id"], "--redis", redis_url)["status"] == "scheduled"
    bad = cli("enqueue", "call", "{}", *at, "--at", "next tuesday")
    assert bad.returncode == 2
    assert "--at: expected an ISO 8601 time" in one_line_error(bad)
    both = cli("enqueue", "call", "{}", *at, "--at", "0", "--delay", "1")
    assert both.returncode == 2 and "not allowed with" in one_line_error(both)


def test_enqueue_reads_the_payload_from_stdin(redis_url: str, queue: str) -> None:
    at = ("--redis", redis_url, "-q", queue, "--json")
    done = subprocess.run(
        command("enqueue", "call", "-", *at),
        input=call("add", 20, 22),
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    job = doc("status", json.loads(done.stdout)["id"], "--redis", redis_url)
    assert job["payload"] == {"fn": "tests.jobs:add", "args": [20, 22]}
    garbage = subprocess.run(
        command("enqueue", "call", "-", *at),
        input="{nope",
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert garbage.returncode == 2
    assert "the payload on stdin is not valid JSON" in one_line_error(garbage)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--priority", "-1"), "--priority: expected an integer >= 0"),
        (("--priority", str(2**22)), "priority must be 0..2097152"),
        (("--result-ttl", "0"), "--result-ttl: expected a number > 0"),
        (("--retry-delay", "soon"), "--retry-delay: expected a number >= 0"),
        (("--job-id", "a b"), "invalid job id 'a b'"),
    ],
)
def test_enqueue_refuses_bad_options_with_status_2(
    redis_url: str, args: tuple[str, ...], message: str
) -> None:
    done = cli("enqueue", "call", call("add", 1, 1), "--redis", redis_url, *args)
    assert done.returncode == 2
    assert message in one_line_error(done)


# -- requeue -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_requeue_runs_a_failed_or_cancelled_job_again(
    redis_url: str, queue: str, worker: Callable[..., subprocess.Popen[str]]
) -> None:
    at = ("--redis", redis_url, "-q", queue)
    failed = [ok("enqueue", "call", call("fail", "x"), *at).strip() for _ in range(3)]
    cancelled = ok("enqueue", "call", call("add", 2, 2), *at, "--delay", "3600").strip()
    ok("cancel", cancelled, "--redis", redis_url)
    assert worker("--queue", queue, "--burst").wait(30) == 0
    assert [status_of(j, redis_url) for j in failed] == ["failed"] * 3

    assert ok("requeue", cancelled, "--redis", redis_url) == f"requeued job {cancelled}\n"
    assert status_of(cancelled, redis_url) == "pending"
    again = cli("requeue", cancelled, "--redis", redis_url, "--json")
    assert again.returncode == 1  # pending: nothing to requeue
    assert json.loads(again.stdout) == {
        "id": cancelled,
        "queue": queue,
        "requeued": False,
        "status": "pending",
    }
    assert doc("requeue", failed[0], "--redis", redis_url)["requeued"] is True
    assert doc("requeue", "--failed", "--all", *at) == {"queue": queue, "requeued": 2}
    assert ok("requeue", "--failed", "--all", *at) == f"requeued 0 failed jobs of queue {queue}\n"
    assert [status_of(j, redis_url) for j in failed] == ["pending"] * 3

    assert worker("--queue", queue, "--burst").wait(30) == 0
    result = doc("status", cancelled, "--redis", redis_url)
    assert (result["status"], result["result"], result["attempt"]) == ("completed", 4, 1)
    job = doc("status", failed[0], "--redis", redis_url)
    assert (job["status"], job["attempt"]) == ("failed", 1)  # a new run, from attempt 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "requeue needs a JOB, or --failed --all"),
        (("--failed",), "requeue needs a JOB, or --failed --all"),
        (("--all",), "requeue needs a JOB, or --failed --all"),
        (("some-job", "--failed", "--all"), "requeue takes a JOB or --failed --all, not both"),
    ],
)
def test_requeue_usage_errors(redis_url: str, args: tuple[str, ...], message: str) -> None:
    done = cli("requeue", *args, "--redis", redis_url)
    assert done.returncode == 2
    assert one_line_error(done) == f"redisjobs: {message}" + (
        " for every failed job of a queue" if "needs" in message else ""
    )


# -- logs ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_logs_follow_prints_lines_as_they_come_and_ends_with_the_job(
    redis_url: str, queue: str, worker: Callable[..., subprocess.Popen[str]], spawn: Spawn
) -> None:
    payload = json.dumps({"fn": "tests.jobs:progress", "args": {"steps": 4, "pause": 0.4}})
    job_id = ok("enqueue", "call", payload, "--redis", redis_url, "-q", queue).strip()
    follower = spawn("logs", job_id, "--redis", redis_url, "--follow", stdout=subprocess.PIPE)
    lines = Lines(follower)
    time.sleep(0.5)  # it follows a job that has not started: no line yet
    proc = worker()
    assert lines.next(15) == "step 1"  # while the job runs
    assert doc("status", job_id, "--redis", redis_url)["status"] == "running"
    assert [lines.next(10) for _ in range(3)] == ["step 2", "step 3", "step 4"]
    assert follower.wait(15) == 0  # the job completed: the follower ends by itself

    assert ok("logs", job_id, "--redis", redis_url) == "step 1\nstep 2\nstep 3\nstep 4\n"
    assert doc("logs", job_id, "--redis", redis_url) == {
        "id": job_id,
        "queue": queue,
        "lines": ["step 1", "step 2", "step 3", "step 4"],
    }
    failing = ok("enqueue", "call", call("fail", "nope"), "--redis", redis_url, "-q", queue)
    done = cli("logs", failing.strip(), "--redis", redis_url, "--follow", "--json")
    assert done.returncode == 1  # it failed; its worker logged the traceback
    [line] = [json.loads(line)["line"] for line in done.stdout.splitlines()]
    assert line.startswith("Traceback") and line.endswith("RuntimeError: nope")
    assert stop(proc) == 0


def test_new_lines_finds_what_a_full_log_pushed_out() -> None:
    assert new_lines([], ["a", "b"]) == ["a", "b"]
    assert new_lines(["a", "b"], ["a", "b", "c"]) == ["c"]
    assert new_lines(["a", "b", "c"], ["b", "c", "d"]) == ["d"]  # "a" went out, "d" came in
    assert new_lines(["a", "b"], ["c", "d"]) == ["c", "d"]  # all of them went out
    assert new_lines(["a", "b"], ["a", "b"]) == []


# -- info --watch --------------------------------------------------------------------------------


def test_info_watch_refreshes_until_sigint(redis_url: str, queue: str, spawn: Spawn) -> None:
    ok("enqueue", "call", call("add", 1, 1), "--redis", redis_url, "-q", queue)
    watcher = spawn(
        "info", "--watch", "--interval", "0.2", "--json", "--redis", redis_url,
        stdout=subprocess.PIPE,
    )  # fmt: skip
    lines = Lines(watcher)
    first, second = json.loads(lines.next(15)), json.loads(lines.next(5))
    assert first["queues"][queue]["pending"] == 1 and set(second) == set(first)
    watcher.send_signal(signal.SIGINT)
    assert watcher.wait(10) == 0

    text = spawn(
        "info", "--watch", "--interval", "0.2", "--redis", redis_url, stdout=subprocess.PIPE
    )
    tables = Lines(text)
    for _ in range(2):  # one snapshot after the other, a blank line between, without a terminal
        shown = tables.until(lambda line: line.startswith("throughput:"), 15)
        assert next(line for line in shown if line).startswith("QUEUE")
    text.send_signal(signal.SIGINT)
    assert text.wait(10) == 0


def test_info_watch_redraws_a_terminal(redis_url: str) -> None:
    main, child = pty.openpty()
    proc = subprocess.Popen(
        command("info", "--watch", "--interval", "0.2", "--redis", redis_url),
        cwd=ROOT, env=ENV, stdout=child, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(child)
    try:
        seen = b""
        deadline = time.monotonic() + 20
        while seen.count(b"\x1b[H\x1b[2J") < 2 and time.monotonic() < deadline:
            seen += os.read(main, 65536)
        assert seen.count(b"\x1b[H\x1b[2J") >= 2 and b"Ctrl-C to stop" in seen
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        os.close(main)


def test_info_watch_exits_1_when_redis_goes_away(spawn: Spawn, tmp_path: Path) -> None:
    with RedisServer() as server:
        watcher = spawn(
            "info", "--watch", "--interval", "0.2", "--json", "--redis", server.url,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        json.loads(Lines(watcher).next(15))
        server.kill()
        assert watcher.wait(20) == 1
    [error] = (tmp_path / "proc-0.err").read_text().splitlines()
    assert error.startswith(f"redisjobs: cannot reach Redis at {server.url}")


# -- --json on every verb ------------------------------------------------------------------------


def test_every_verb_but_the_servers_takes_json() -> None:
    for name, parser in verbs().items():
        flags = {flag for action in parser._actions for flag in action.option_strings}
        assert ("--json" in flags) is (name not in SERVERS), name


@pytest.mark.slow
def test_every_verbs_json_parses(
    redis_url: str, queue: str, worker: Callable[..., subprocess.Popen[str]], spawn: Spawn
) -> None:
    """Each verb with --json, its output parsed: one document, or one per line for those
    that follow something; this list has to name every verb."""
    at = ("--redis", redis_url, "-q", queue, "--json")
    proc = worker()
    job_id = json.loads(ok("enqueue", "call", call("add", 1, 1), *at, "--wait", "20"))["id"]
    to_cancel = json.loads(ok("enqueue", "call", call("add", 1, 1), *at, "--delay", "60"))["id"]
    by_job = ("--redis", redis_url, "--json")
    documents = {
        "enqueue": ok("enqueue", "call", call("add", 1, 1), *at),
        "status": ok("status", job_id, *by_job),
        "cancel": ok("cancel", to_cancel, *by_job),
        "requeue": ok("requeue", to_cancel, *by_job),
        "jobs": ok("jobs", *at),
        "logs": ok("logs", job_id, *by_job),
        "info": ok("info", *by_job),
        "stats": ok("stats", *at),
        "health": ok("health", *at),
        "purge": ok("purge", queue, "--redis", redis_url, "--json"),
        "drain": ok("drain", f"{queue}-idle", "--redis", redis_url, "--json"),
        "obliterate": ok("obliterate", f"{queue}-idle", "--yes", "--redis", redis_url, "--json"),
        "schedules": ok("schedules", *at),
        "pause": ok("pause", queue, *by_job),
        "resume": ok("resume", queue, *by_job),
        "limits": ok("limits", queue, *by_job),
    }
    for name, out in documents.items():
        assert isinstance(json.loads(out), dict), name
    streams = {
        "watch": ok("watch", job_id, *by_job),
        "logs --follow": ok("logs", job_id, "--follow", *by_job),
    }
    for name, out in streams.items():
        for line in out.splitlines():
            assert isinstance(json.loads(line), dict), name
    events = spawn("events", "--since", "0", *at, stdout=subprocess.PIPE)
    assert json.loads(Lines(events).next(15))["type"] == "enqueued"
    events.send_signal(signal.SIGINT)
    assert events.wait(10) == 0  # info --watch: test_info_watch_refreshes_until_sigint
    walked = {*documents, *(name.split()[0] for name in streams), "events"}
    assert walked == set(verbs()) - SERVERS
    assert stop(proc) == 0


@pytest.mark.parametrize(
    "args",
    [
        ("requeue", "some-id"),
        ("requeue", "--failed", "--all"),
        ("logs", "some-id"),
        ("logs", "some-id", "--follow"),
        ("info", "--watch"),
    ],
)
def test_the_new_verbs_on_an_unreachable_redis_are_one_line_and_status_1(
    args: tuple[str, ...],
) -> None:
    with closed_port() as port:
        url = f"redis://127.0.0.1:{port}/0"
        done = cli(*args, "--redis", url)
    assert done.returncode == 1
    assert one_line_error(done).startswith(f"redisjobs: cannot reach Redis at {url}: ")


@pytest.mark.parametrize("args", [("requeue", "no-such-job"), ("logs", "no-such-job", "-f")])
def test_the_new_verbs_on_an_unknown_job_are_one_line_and_status_1(
    redis_url: str, args: tuple[str, ...]
) -> None:
    done = cli(*args, "--redis", redis_url, "--queue", "default")
    assert done.returncode == 1
    assert one_line_error(done) == "redisjobs: no job 'no-such-job' in queue 'default'"
    hostile = cli(args[0], "{q}", "--redis", redis_url)
    assert hostile.returncode == 2
    assert "invalid job id '{q}'" in one_line_error(hostile)


async def test_requeue_failed_all_goes_through_more_than_one_batch(
    redis_url: str, queue: str
) -> None:
    async with Client(redis_url, queue=queue) as client:
        await client.enqueue_many([("call", {"fn": "fail"}) for _ in range(250)])
        w = Worker(redis_url, queue=queue, functions=[jobs.fail], burst=True, handle_signals=False)
        await asyncio.wait_for(w.run(), 30)
        assert (await client.stats())["dead"] == 250
        out = await asyncio.to_thread(
            doc, "requeue", "--failed", "--all", "-q", queue, "--redis", redis_url
        )
        assert out == {"queue": queue, "requeued": 250}  # 100 per script call
        stats = await client.stats()
        assert (stats["dead"], stats["pending"]) == (0, 250)
