"""The `redisjobs` command line, run as real processes against the session's redis-server."""

from __future__ import annotations

import asyncio
import json
import os
import queue as queue_module
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

import redisjobs
from redisjobs.keys import JOB_ID_RULE, QueueKeys
from redisjobs.testing import RedisServer, closed_port, log_followers, unique_queue
from tests import jobs

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
ENV.pop("REDIS_URL", None)

pytestmark = pytest.mark.timeout(60)

Spawn = Callable[..., subprocess.Popen[str]]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "redisjobs", *args]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run one `redisjobs` command to its end."""
    return subprocess.run(
        command(*args), cwd=ROOT, env=env or ENV, capture_output=True, text=True, timeout=30
    )


def ok(*args: str) -> str:
    """The stdout of a command that must succeed."""
    done = cli(*args)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stderr}"
    return done.stdout


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command printed: exactly one line on stderr, nothing on stdout."""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("redisjobs"), lines[0]
    assert done.stdout == ""
    return lines[0]


def until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Lines:
    """The stdout lines of a running process, read by a thread, so reads can time out."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self._lines: queue_module.Queue[str | None] = queue_module.Queue()
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        with stream:  # closed here, at the end of the output: the process has exited
            for line in stream:
                self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next(self, timeout: float) -> str:
        """The next line; fails after `timeout` s or at the end of the output."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue_module.Empty:
            raise AssertionError(f"no line within {timeout} s") from None
        assert line is not None, "the output ended"
        return line

    def until(self, predicate: Callable[[str], bool], timeout: float) -> list[str]:
        """Lines up to and including the first that matches `predicate`."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while not seen or not predicate(seen[-1]):
            seen.append(self.next(max(deadline - time.monotonic(), 0.01)))
        return seen


@pytest.fixture
def queue() -> str:
    return unique_queue("cli")


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start long-running `redisjobs` processes; whatever is left is stopped afterwards."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, stdout: int | None = None) -> subprocess.Popen[str]:
        with open(tmp_path / f"proc-{len(procs)}.err", "w") as err:
            proc = subprocess.Popen(
                command(*args), cwd=ROOT, env=ENV, stdout=stdout, stderr=err, text=True
            )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            # SIGTERM first: a supervisor passes it on, while SIGKILL would orphan its workers
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def worker(spawn: Spawn, redis_url: str, queue: str) -> Callable[..., subprocess.Popen[str]]:
    """Start `redisjobs worker` on the test's queue, allowed to run tests.jobs."""

    def start(*args: str) -> subprocess.Popen[str]:
        base = ("worker", "--redis", redis_url, "--functions", "tests.jobs", "--lease-ttl", "2")
        return spawn(*base, *(args or ("--queue", queue)))

    return start


def call(fn: str, *args: Any) -> str:
    return json.dumps({"fn": f"tests.jobs:{fn}", "args": list(args)})


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(15)


def workers_of(redis_url: str, queue: str) -> list[dict[str, Any]]:
    info = json.loads(ok("info", "--redis", redis_url, "--json"))
    return [w for w in info["workers"] if w["queue"] == queue]


# -- jobs through a worker ---------------------------------------------------------------------


@pytest.mark.slow
def test_enqueue_run_by_a_worker_then_status_as_table_and_json(
    redis_url: str, queue: str, worker: Callable[..., subprocess.Popen[str]]
) -> None:
    proc = worker()
    out = ok(
        "enqueue", "call", call("add", 2, 3), "--redis", redis_url, "-q", queue, "--wait", "20"
    )
    job_id, result = out.splitlines()
    assert result == "5"

    table = ok("status", job_id, "--redis", redis_url)  # the queue is found by the job id
    rows = dict(line.split(None, 1) for line in table.splitlines())
    assert rows["status"] == "completed" and rows["result"] == "5" and rows["queue"] == queue
    assert rows["attempt"] == "1 of 1" and rows["started"] != "-" and "error" not in rows
    assert rows["name"] == "tests.jobs:add" and rows["runs"] == "tests.jobs:add(2, 3)"
    doc = json.loads(ok("get", job_id, "--redis", redis_url, "--queue", queue, "--json"))
    assert doc["status"] == "completed" and doc["result"] == 5 and doc["attempt"] == 1
    assert doc["started_at"] and doc["completed_at"] and f"-{proc.pid}-" in doc["worker"]
    assert doc["name"] == "tests.jobs:add"

    failed = cli(
        "enqueue", "call", call("fail", "kaput"), "--redis", redis_url, "-q", queue, "--wait"
    )
    assert failed.returncode == 1
    failed_id = failed.stdout.strip()
    assert failed.stderr == f"redisjobs: job {failed_id} failed: RuntimeError: kaput\n"
    listing = ok("jobs", "--redis", redis_url, "-q", queue, "--status", "failed").splitlines()
    assert listing[0].split() == ["ID", "NAME", "STATUS", "PROGRESS", "ATTEMPT", "CREATED", "ERROR"]
    assert len(listing) == 2 and listing[1].startswith(f"{failed_id}  tests.jobs:fail('kaput')")
    assert listing[1].endswith("RuntimeError: kaput")
    assert stop(proc) == 0


@pytest.mark.slow
def test_enqueue_wait_json_prints_the_job_as_it_ended(
    redis_url: str, queue: str, worker: Callable[..., subprocess.Popen[str]], spawn: Spawn
) -> None:
    proc = worker()
    at = ("--redis", redis_url, "-q", queue, "--wait", "20", "--json")
    done = json.loads(ok("enqueue", "call", call("add", 2, 3), *at))
    assert done == {"id": done["id"], "queue": queue, "status": "completed", "result": 5}

    failed = cli("enqueue", "call", call("fail", "kaput"), *at)
    assert failed.returncode == 1 and failed.stderr == ""
    doc = json.loads(failed.stdout)
    assert doc == {
        "id": doc["id"],
        "queue": queue,
        "status": "failed",
        "error": "RuntimeError: kaput",
    }

    waiting = spawn(
        "enqueue", "call", call("add", 1, 1), *at, "--delay", "60", stdout=subprocess.PIPE
    )

    def listed() -> list[dict[str, Any]]:
        found = ok("jobs", "--redis", redis_url, "-q", queue, "--status", "scheduled", "--json")
        jobs: list[dict[str, Any]] = json.loads(found)["jobs"]
        return jobs

    scheduled = until(listed, 15, "the scheduled job")
    ok("cancel", scheduled[0]["id"], "--redis", redis_url)
    out, _ = waiting.communicate(timeout=15)
    assert waiting.returncode == 1
    doc = json.loads(out)
    assert doc == {
        "id": scheduled[0]["id"],
        "queue": queue,
        "status": "cancelled",
        "error": "cancelled",
    }
    assert stop(proc) == 0


@pytest.mark.slow
def test_watch_shows_progress_until_the_job_ends(
    redis_url: str, queue: str, worker: Callable[..., subprocess.Popen[str]], spawn: Spawn
) -> None:
    payload = json.dumps({"fn": "tests.jobs:progress", "args": {"steps": 4, "pause": 0.3}})
    job_id = ok("enqueue", "call", payload, "--redis", redis_url, "-q", queue).strip()
    watcher = spawn("watch", job_id, "--redis", redis_url, stdout=subprocess.PIPE)
    lines = Lines(watcher)
    assert lines.next(15) == "tests.jobs:progress(steps=4, pause=0.3)"  # what it runs, once
    assert lines.next(15).split() == ["0.0%", "pending", "attempt", "0"]
    proc = worker()  # only now: every progress step happens while it is watched
    seen = lines.until(lambda line: line.startswith("completed"), 30)
    assert watcher.wait(10) == 0
    assert seen[-1] == "completed: 1"  # the job returns its lease
    progress = [line.split()[0] for line in seen if "running" in line]
    assert progress == ["0.0%", "25.0%", "50.0%", "75.0%", "100.0%"]

    failing = ok("enqueue", "call", call("fail", "nope"), "--redis", redis_url, "-q", queue)
    done = cli("watch", failing.strip(), "--redis", redis_url, "--json")
    assert done.returncode == 1, done.stderr
    last = json.loads(done.stdout.splitlines()[-1])
    assert last["status"] == "failed" and last["error"] == "RuntimeError: nope"
    assert last["name"] == "tests.jobs:fail"
    assert stop(proc) == 0


@pytest.mark.slow
def test_info_lists_queue_counts_and_live_workers(
    redis_url: str, queue: str, worker: Callable[..., subprocess.Popen[str]]
) -> None:
    proc = worker("--queue", queue, "--concurrency", "7")
    for n in range(3):
        ok("enqueue", "call", call("add", n, 1), "--redis", redis_url, "-q", queue, "--wait", "20")
    ok("enqueue", "call", call("add", 0, 0), "--redis", redis_url, "-q", queue, "--delay", "60")

    info = json.loads(ok("info", "--redis", redis_url, "--json"))
    counts = info["queues"][queue]
    assert counts["completed"] == 3 and counts["scheduled"] == 1 and counts["failed"] == 0
    assert counts["completed_per_second"] == pytest.approx(3 / 60, abs=0.001)
    assert info["completed_per_second"] >= counts["completed_per_second"]
    [mine] = [w for w in info["workers"] if w["queue"] == queue]
    assert mine["pid"] == proc.pid and mine["concurrency"] == 7 and mine["running"] == 0
    assert 0 <= mine["heartbeat_age"] < 5

    text = ok("info", "--redis", redis_url)
    [queue_row] = [line.split() for line in text.splitlines() if line.startswith(queue + " ")]
    assert queue_row == [queue, "0", "0", "1", "0", "3", "0", "0", "0.05"]  # waiting first
    assert any(str(proc.pid) in line and queue in line for line in text.splitlines())
    assert stop(proc) == 0
    assert not workers_of(redis_url, queue)  # it deregistered


@pytest.mark.slow
def test_events_json_follows_a_jobs_lifecycle_live_and_replays_it(
    redis_url: str, queue: str, worker: Callable[..., subprocess.Popen[str]], spawn: Spawn
) -> None:
    follower = spawn("events", "--redis", redis_url, "-q", queue, "--json", stdout=subprocess.PIPE)
    lines = Lines(follower)
    r = redis.Redis.from_url(redis_url)
    until(lambda: log_followers(r), 15, "the events command to read the log")
    proc = worker()
    job_id = ok("enqueue", "call", call("add", 1, 1), "--redis", redis_url, "-q", queue).strip()

    live = [json.loads(line) for line in lines.until(lambda line: '"completed"' in line, 20)]
    assert [e["type"] for e in live] == ["enqueued", "started", "completed"]
    assert {e["job_id"] for e in live} == {job_id} and live[-1]["data"] == {"result": 2}
    follower.send_signal(signal.SIGTERM)
    assert follower.wait(10) == 0

    replay = spawn(
        "events", "--redis", redis_url, "-q", queue, "--since", "0", stdout=subprocess.PIPE
    )
    text = Lines(replay).until(lambda line: " completed " in line, 20)
    assert [line.split()[1:4] for line in text] == [
        ["enqueued", job_id, "#0"],
        ["started", job_id, "#1"],
        ["completed", job_id, "#1"],
    ]
    assert text[-1].endswith("result=2")
    replay.send_signal(signal.SIGINT)
    assert replay.wait(10) == 0
    assert stop(proc) == 0
    r.close()


@pytest.mark.slow
def test_one_worker_process_serves_several_queues(
    redis_url: str, worker: Callable[..., subprocess.Popen[str]]
) -> None:
    first, second = unique_queue("cli-a"), unique_queue("cli-b")
    proc = worker("--queue", first, "-q", second)
    for q in (first, second):
        out = ok(
            "enqueue", "call", call("add", 1, 2), "--redis", redis_url, "-q", q, "--wait", "20"
        )
        assert out.splitlines()[1] == "3"
    for q in (first, second):
        assert [w["pid"] for w in workers_of(redis_url, q)] == [proc.pid]
    assert stop(proc) == 0
    assert not workers_of(redis_url, first) and not workers_of(redis_url, second)


@pytest.mark.slow
def test_processes_supervises_restarts_and_stops_its_workers(
    redis_url: str, queue: str, worker: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    supervisor = worker("--queue", queue, "--processes", "2")

    def pids() -> set[int]:
        return {w["pid"] for w in workers_of(redis_url, queue)}

    def two() -> set[int] | None:
        found = pids()
        return found if len(found) == 2 else None

    first = until(two, 20, "two worker processes")
    for pid in first:
        assert Path(f"/proc/{pid}/stat").read_text().split()[3] == str(supervisor.pid)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    restarted = until(lambda: pids() - first, 20, "a new worker process")
    assert supervisor.poll() is None
    out = ok(
        "enqueue", "call", call("add", 2, 2), "--redis", redis_url, "-q", queue, "--wait", "20"
    )
    assert out.splitlines()[1] == "4"

    assert stop(supervisor) == 0
    for pid in first | restarted:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    log = next(tmp_path.glob("*.err")).read_text()
    assert f"worker process {victim} exited unexpectedly with exit code -9 (SIGKILL)" in log


@pytest.mark.slow
def test_a_burst_worker_runs_what_is_ready_then_exits_by_itself(
    redis_url: str, queue: str, worker: Callable[..., subprocess.Popen[str]]
) -> None:
    enqueue = ("--redis", redis_url, "-q", queue)
    ready = [ok("enqueue", "call", call("add", n, 1), *enqueue).strip() for n in range(3)]
    due = ok("enqueue", "call", call("add", 9, 1), *enqueue, "--delay", "0.3").strip()
    later = ok("enqueue", "call", call("add", 0, 0), *enqueue, "--delay", "3600").strip()
    time.sleep(0.4)  # `due` is due by the time the worker starts
    proc = worker("--queue", queue, "--burst")
    assert proc.wait(30) == 0
    for job_id, result in zip([*ready, due], [1, 2, 3, 10], strict=True):
        doc = json.loads(ok("get", job_id, *enqueue, "--json"))
        assert (doc["status"], doc["result"]) == ("completed", result)
    assert json.loads(ok("get", later, *enqueue, "--json"))["status"] == "scheduled"
    assert not workers_of(redis_url, queue)  # it left the registry, as on SIGTERM


@pytest.mark.slow
def test_burst_worker_processes_are_not_restarted_once_done(
    redis_url: str, queue: str, worker: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    job_id = ok("enqueue", "call", call("add", 4, 4), "--redis", redis_url, "-q", queue).strip()
    supervisor = worker("--queue", queue, "--processes", "2", "--burst")
    assert supervisor.wait(30) == 0
    doc = json.loads(ok("get", job_id, "--redis", redis_url, "-q", queue, "--json"))
    assert (doc["status"], doc["result"]) == ("completed", 8)
    assert "restarting" not in next(tmp_path.glob("*.err")).read_text()


# -- commands without a worker -----------------------------------------------------------------


def test_pause_and_resume_a_queue(redis_url: str, queue: str) -> None:
    at = ("--redis", redis_url)
    assert ok("pause", queue, *at) == f"paused queue {queue}\n"
    assert ok("pause", queue, *at) == f"queue {queue} is paused already\n"
    assert redis.Redis.from_url(redis_url).exists(QueueKeys(queue).paused) == 1
    assert json.loads(ok("resume", queue, *at, "--json")) == {
        "queue": queue,
        "paused": False,
        "changed": True,
    }
    assert ok("resume", queue, *at) == f"queue {queue} was not paused\n"
    assert cli("pause", "no{braces}", *at).returncode == 2


def test_jobs_lists_and_filters_by_status_and_cancel_cancels(redis_url: str, queue: str) -> None:
    at = ("--redis", redis_url, "-q", queue)
    pending = ok("enqueue", "call", call("add", 1, 1), *at).strip()
    scheduled = ok("enqueue", "call", call("add", 1, 1), *at, "--delay", "60").strip()
    doomed = json.loads(ok("enqueue", "http", '{"url": "x"}', *at, "--json"))
    assert doomed["status"] == "pending" and doomed["queue"] == queue

    assert ok("cancel", doomed["id"], "--redis", redis_url) == f"cancelled job {doomed['id']}\n"
    again = cli("cancel", doomed["id"], "--redis", redis_url, "--json")
    assert again.returncode == 1
    assert json.loads(again.stdout) == {
        "id": doomed["id"],
        "queue": queue,
        "cancelled": False,
        "status": "cancelled",
    }

    def ids(*args: str) -> list[str]:
        return [line.split()[0] for line in ok("jobs", *at, *args).splitlines()[1:]]

    assert ids("--status", "scheduled") == [scheduled]
    assert ids("--status", "pending") == [pending]
    assert ids() == [pending, scheduled, doomed["id"]]  # in status order
    assert ids("--limit", "1") == [pending]
    names = [line.split("  ")[1] for line in ok("jobs", *at).splitlines()[1:]]
    assert names == ["tests.jobs:add(1, 1)", "tests.jobs:add(1, 1)", "http POST x"]
    listing = json.loads(ok("jobs", *at, "--status", "cancelled", "--json"))
    assert [j["id"] for j in listing["jobs"]] == [doomed["id"]]
    assert listing["jobs"][0]["kind"] == "http" and listing["jobs"][0]["payload"] == {"url": "x"}
    assert listing["jobs"][0]["name"] == "http"
    assert ok("jobs", *at, "--status", "failed") == f"no failed jobs in queue {queue}\n"


async def test_status_shows_a_job_holding_every_extension_type(redis_url: str, queue: str) -> None:
    value = {
        "at": datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC),
        "price": Decimal("9.90"),
        "id": uuid.UUID(int=1),
        "pair": (1, 2),
        "tags": {"b", "a"},
        "by_pair": {(1, 2): date(2020, 1, 1)},
    }
    async with redisjobs.Client(redis_url, queue=queue) as client:
        job = await client.enqueue("call", {"fn": "echo", "args": [value]})
        w = redisjobs.Worker(
            redis_url, queue=queue, functions=[jobs.echo], burst=True, handle_signals=False
        )
        await asyncio.wait_for(w.run(), 10)
        assert await client.wait(job.id, timeout=1) == value
    shown = {
        "at": "2020-01-02T03:04:05+00:00",
        "price": "9.90",
        "id": "00000000-0000-0000-0000-000000000001",
        "pair": [1, 2],
        "tags": ["a", "b"],
        "by_pair": {"(1, 2)": "2020-01-01"},
    }
    document = json.loads(
        await asyncio.to_thread(ok, "status", job.id, "--redis", redis_url, "--json")
    )
    assert document["payload"]["args"] == [shown] and document["result"] == shown
    table = await asyncio.to_thread(ok, "status", job.id, "--redis", redis_url)
    rows = dict(line.split(None, 1) for line in table.splitlines())
    assert json.loads(rows["result"]) == shown
    listing = await asyncio.to_thread(ok, "jobs", "--redis", redis_url, "-q", queue, "--json")
    assert json.loads(listing)["jobs"][0]["result"] == shown


def test_redis_url_is_read_from_the_environment(redis_url: str, queue: str) -> None:
    env = {**ENV, "REDIS_URL": redis_url}
    enqueued = cli("enqueue", "call", call("add", 1, 1), "-q", queue, env=env)
    assert enqueued.returncode == 0, enqueued.stderr
    job_id = enqueued.stdout.strip()
    shown = cli("status", job_id, "--json", env=env)
    assert json.loads(shown.stdout)["status"] == "pending"
    # without it (and without --redis) there is no shared Redis to talk to
    missing = cli("status", job_id)
    assert missing.returncode == 2
    assert "status needs a Redis server: pass --redis URL or set REDIS_URL" in one_line_error(
        missing
    )


@pytest.mark.parametrize(
    "args",
    [
        ("worker", "--concurrency", "0"),
        ("worker", "--lease-ttl", "soon"),
        ("worker", "--queue", "no spaces"),
        ("worker", "--functions", "tests.no_such_module"),
        ("worker", "--executors", "http,teleport"),
        ("worker", "-f", "tests.jobs:no_such_function"),
        ("enqueue", "call", "{not json"),
        ("jobs", "--status", "lost"),
        ("events", "--since", "yesterday"),
        ("status",),
        ("frobnicate",),
        ("--log-level", "loud", "info"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_status_2(args: tuple[str, ...]) -> None:
    done = cli(*args)
    assert done.returncode == 2
    assert "Traceback" not in one_line_error(done)


@pytest.mark.parametrize(
    ("cmd", "hostile"), [("status", "victim:log"), ("watch", "a*"), ("cancel", "{q}")]
)
def test_a_hostile_job_id_is_one_line_and_exit_status_2(
    redis_server: RedisServer, cmd: str, hostile: str
) -> None:
    done = cli(cmd, hostile, "--redis", redis_server.url)
    assert done.returncode == 2
    assert f"invalid job id {hostile!r}: a job id is {JOB_ID_RULE}" in one_line_error(done)


@pytest.mark.parametrize(
    "args",
    [
        ("info",),
        ("jobs",),
        ("status", "some-id"),
        ("enqueue", "call", "{}"),
        ("events",),
    ],
)
def test_an_unreachable_redis_is_one_line_and_exit_status_1(args: tuple[str, ...]) -> None:
    with closed_port() as port:
        url = f"redis://127.0.0.1:{port}/0"
        done = cli(*args, "--redis", url)
    assert done.returncode == 1
    assert one_line_error(done).startswith(f"redisjobs: cannot reach Redis at {url}: ")


@pytest.mark.parametrize("cmd", ["status", "watch", "cancel"])
def test_an_unknown_job_is_one_line_and_exit_status_1(redis_server: RedisServer, cmd: str) -> None:
    done = cli(cmd, "no-such-job", "--redis", redis_server.url, "--queue", "default")
    assert done.returncode == 1
    assert one_line_error(done) == "redisjobs: no job 'no-such-job' in queue 'default'"


def test_version_prints_the_packages_version() -> None:
    assert ok("--version") == f"redisjobs {redisjobs.__version__}\n"


def test_a_worker_without_a_redis_url_refuses_to_start() -> None:
    done = cli("worker", "-f", "tests.jobs:add")  # ENV has no REDIS_URL
    assert done.returncode == 2
    assert one_line_error(done) == (
        "redisjobs: worker needs a Redis server: pass --redis URL or set REDIS_URL "
        "(or --redis memory:// for a store private to this process)"
    )
    shared = cli("worker", "--redis", "memory://", "--processes", "2")
    assert shared.returncode == 2
    assert "--processes gives each process its own memory://" in one_line_error(shared)


def test_a_worker_on_an_explicit_memory_url_serves_without_a_warning() -> None:
    proc = subprocess.Popen(
        command("worker", "--redis", "memory://", "-f", "tests.jobs:add"),
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        seen = Lines(proc).until(lambda line: "serving queue 'default' on memory://" in line, 20)
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    assert not [line for line in seen if "WARNING" in line], seen


def test_a_worker_without_an_executors_extra_names_the_pip_command() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['asyncssh'] = None; from redisjobs.cli import main; "
            "sys.exit(main(sys.argv[1:]))",
            *("worker", "--redis", "redis://127.0.0.1:1/0", "-x", "ssh"),
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert one_line_error(done) == (
        "redisjobs: the ssh executor needs asyncssh, which is not installed: "
        "pip install 'redisjobs[ssh]'"
    )


@pytest.mark.slow
def test_the_demo_runs_on_the_embedded_backend_without_a_warning() -> None:
    done = cli("demo", "--jobs", "3", "--workers", "1")  # the README's command, no REDIS_URL
    assert done.returncode == 0, done.stderr
    assert "on memory://" in done.stdout.splitlines()[0]
    assert "done in" in done.stdout and "3 completed" in done.stdout
    assert done.stderr == ""
