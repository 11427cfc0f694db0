"""Nothing hangs on a Redis that refuses, never answers, or froze (real processes throughout).

Three kinds of Redis that cannot serve:

* ``closed``: a port nobody listens on (connections are refused at once);
* ``silent``: a blackholed fault proxy in front of a live redis-server: connections are accepted
  and every byte is held, so nothing ever comes back and the kernel notices nothing;
* ``frozen``: a redis-server of the test's own, SIGSTOPped: its kernel keeps acknowledging.

Worker processes must stop within their grace period plus a few seconds on SIGTERM and on SIGINT,
whether they are still waiting for Redis or serving when it froze; commands and the Client fail
with one line naming the URL within the command timeout plus start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from redisjobs import Client, ConnectionFailed
from redisjobs.connection import COMMAND_TIMEOUT
from redisjobs.subscriber import KEEPALIVE
from redisjobs.testing import closed_port
from redisjobs.worker import STOP_MARGIN
from tests.faults.conftest import MakeRedis
from tests.faults.harness import ROOT, FaultRedis, Spawner, WorkerProcess, until
from tests.faults.proxy import FaultProxy

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(120)]

GRACE = 2.0
STARTED = 20.0
"""Seconds a process may take to get going on a loaded machine (imports, a first try)."""
SIGNALLED_EXIT = 5.0
"""Seconds a worker that never connected may take to exit after a signal (it has nothing to
hand back: the bound is the interpreter's teardown)."""
COMMAND_EXIT = COMMAND_TIMEOUT + 10.0
"""Seconds a command may take from its start to its error: one command timeout, plus starting
Python and importing on a loaded machine."""

Unanswered = Callable[[str], str]


@pytest.fixture
def unanswered(make_redis: MakeRedis) -> Iterator[Unanswered]:
    """``unanswered(kind) -> url``: a Redis URL that cannot serve (see the module)."""
    proxies: list[FaultProxy] = []
    closed = contextlib.ExitStack()

    def make(kind: str) -> str:
        if kind == "closed":
            return f"redis://127.0.0.1:{closed.enter_context(closed_port())}/0"
        server = make_redis("plain")
        if kind == "frozen":
            server.pause()  # make_redis resumes it before stopping it
            return server.url
        assert kind == "silent", kind
        proxy = FaultProxy(server.port).start()
        proxies.append(proxy)
        proxy.blackhole()
        return proxy.url

    with closed:
        yield make
    for proxy in proxies:
        proxy.stop()


def signal_and_time(proc: WorkerProcess, sig: signal.Signals, within: float) -> float:
    """Send `sig`; the seconds until `proc` exited with status 0 (AssertionError after `within`)."""
    t0 = time.monotonic()
    proc.proc.send_signal(sig)
    code = proc.wait(within)
    elapsed = time.monotonic() - t0
    assert code == 0, f"exit status {code}\n{proc.log()}"
    print(f"{proc.name}: {sig.name} -> exit in {elapsed:.2f} s")
    return elapsed


# -- a worker waiting for its Redis -----------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("kind", ["closed", "silent", "frozen"])
async def test_a_worker_waiting_for_redis_stops_on_a_signal(
    kind: str, sig: signal.Signals, unanswered: Unanswered, workers: Spawner
) -> None:
    w = workers.spawn(unanswered(kind), grace=GRACE)
    # A silent or frozen Redis: the first try gives up after COMMAND_TIMEOUT (before, it hung),
    # and the signal lands in the next, blocked one.
    await until(lambda: "Redis unavailable" in w.log(), STARTED, "a first failed connect")
    signal_and_time(w, sig, SIGNALLED_EXIT)
    assert "stopped" in w.log()


async def test_a_library_worker_waiting_for_redis_stops_on_sigterm(
    unanswered: Unanswered, workers: Spawner
) -> None:
    """``Worker.run`` handles the signals itself (not the command line's handler)."""
    url = unanswered("closed")
    code = f"import asyncio, redisjobs; asyncio.run(redisjobs.Worker({url!r}).run())"
    w = workers.spawn_command([sys.executable, "-c", code], url)
    await until(lambda: "Redis unavailable" in w.log(), STARTED, "a first failed connect")
    signal_and_time(w, signal.SIGTERM, SIGNALLED_EXIT)


# -- a serving worker whose Redis freezes -----------------------------------------------------


async def _serving_a_long_job(server: FaultRedis, workers: Spawner, queue: str) -> WorkerProcess:
    """A worker of `server` running one 60 s job, with `server` frozen since."""
    w = workers.spawn(server.url, grace=GRACE, lease_ttl=30.0)
    async with Client(server.url, queue=queue) as client:
        await w.wait_registered(client.redis)
        # The job reports progress once it runs in the worker, then sleeps a minute. Its
        # status in Redis would not do: it says `running` as soon as the start script leased
        # it, a moment before the worker has launched it.
        payload = {"fn": "tests.jobs:progress", "args": {"steps": 1, "pause": 60}}
        job = await client.enqueue("call", payload)
        await until(lambda: _progressed(client, job.id), 15, "the job to run in the worker")
    server.pause()
    return w


async def _progressed(client: Client, job_id: str) -> bool:
    job = await client.get(job_id)
    return job is not None and job.progress > 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_serving_worker_stops_within_its_grace_when_redis_froze(
    sig: signal.Signals, make_redis: MakeRedis, workers: Spawner, queue: str
) -> None:
    w = await _serving_a_long_job(make_redis("plain"), workers, queue)
    elapsed = signal_and_time(w, sig, GRACE + STOP_MARGIN)
    log = w.log()
    assert "waiting up to 2 s for 1 running jobs" in log
    assert "in time" in log or "could not hand jobs back" in log, log
    assert elapsed >= GRACE, "the running job got its grace period"


async def test_a_second_signal_stops_at_once_when_redis_froze(
    make_redis: MakeRedis, workers: Spawner, queue: str
) -> None:
    w = await _serving_a_long_job(make_redis("plain"), workers, queue)
    w.terminate()
    await until(lambda: "waiting up to" in w.log(), 10, "the drain to start")
    signal_and_time(w, signal.SIGTERM, SIGNALLED_EXIT)


# -- the supervisor of --processes -------------------------------------------------------------


@pytest.fixture
def supervised(workers: Spawner) -> Iterator[Callable[[WorkerProcess], list[int]]]:
    """``supervised(supervisor)``: its worker processes (from /proc); any still alive at the end
    are killed (the spawner kills the supervisor only, which would orphan them)."""
    seen: list[int] = []

    def of(sup: WorkerProcess) -> list[int]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue  # it ended meanwhile
            if int(fields[1]) == sup.pid:
                found.append(int(stat.parent.name))
        seen.extend(found)
        return found

    yield of
    for pid in seen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def test_the_supervisor_stops_its_waiting_workers_on_sigterm(
    unanswered: Unanswered, workers: Spawner, supervised: Callable[[WorkerProcess], list[int]]
) -> None:
    sup = workers.spawn(unanswered("silent"), "--processes", "2", grace=GRACE)
    await until(lambda: sup.log().count("Redis unavailable") >= 2, STARTED, "two workers trying")
    kids = supervised(sup)
    assert len(kids) == 2
    signal_and_time(sup, signal.SIGTERM, SIGNALLED_EXIT)
    for pid in kids:
        assert not Path(f"/proc/{pid}").exists(), f"worker process {pid} outlived its supervisor"


async def test_the_supervisor_kills_a_worker_that_outlives_its_stop(
    unanswered: Unanswered, workers: Spawner, supervised: Callable[[WorkerProcess], list[int]]
) -> None:
    """A worker process that cannot act on the signal (here: SIGSTOPped) is killed after its
    grace period plus STOP_MARGIN, so the supervisor's stop is bounded too."""
    sup = workers.spawn(unanswered("closed"), "--processes", "2", grace=0)
    await until(lambda: sup.log().count("Redis unavailable") >= 2, STARTED, "two workers trying")
    stuck, other = supervised(sup)
    os.kill(stuck, signal.SIGSTOP)
    t0 = time.monotonic()
    sup.terminate()
    assert sup.wait(STOP_MARGIN + 10) == 1, "a killed worker is not a clean stop"
    elapsed = time.monotonic() - t0
    print(f"supervisor: SIGTERM -> exit in {elapsed:.2f} s with one worker stuck")
    assert elapsed >= STOP_MARGIN - 0.5
    log = sup.log()
    assert f"worker process {stuck} did not stop in time; killing it" in log
    assert f"worker process {stuck} ended with exit code -9 (SIGKILL)" in log
    assert not Path(f"/proc/{other}").exists()


# -- commands and the Client -------------------------------------------------------------------


COMMANDS: list[tuple[str, ...]] = [
    ("info",),
    ("enqueue", "call", "{}"),
    ("status", "some-id"),
    ("health",),
    ("jobs",),
    ("cancel", "some-id"),
    ("watch", "some-id"),
]


@pytest.mark.parametrize("kind", ["silent", "frozen"])
def test_commands_fail_in_one_line_within_the_command_timeout(
    kind: str, unanswered: Unanswered
) -> None:
    url = unanswered(kind)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "redisjobs", *args, "--redis", url],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in COMMANDS
    ]
    try:
        for args, proc in zip(COMMANDS, procs, strict=True):
            left = COMMAND_EXIT - (time.monotonic() - started)
            try:
                out, err = proc.communicate(timeout=max(left, 0.1))
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{args[0]} still running after {COMMAND_EXIT} s") from None
            elapsed = time.monotonic() - started
            print(f"{args[0]}: exit {proc.returncode} after {elapsed:.2f} s: {err.strip()}")
            assert proc.returncode == 1
            assert out == ""
            assert len(err.splitlines()) == 1, err
            assert f"cannot reach Redis at {url}: " in err
            assert "Timeout" in err
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("kind", ["silent", "frozen"])
async def test_a_client_fails_with_connection_failed_within_the_command_timeout(
    kind: str, unanswered: Unanswered
) -> None:
    url = unanswered(kind)
    client = Client(url)
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed, match=f"cannot reach Redis at {url}: "):
        await client.enqueue("call", {})
    elapsed = time.monotonic() - t0
    print(f"Client.enqueue: ConnectionFailed after {elapsed:.2f} s")
    assert elapsed <= COMMAND_TIMEOUT + 1.5


async def test_every_client_call_fails_with_connection_failed_when_redis_freezes(
    make_redis: MakeRedis,
) -> None:
    server = make_redis("plain")
    async with Client(server.url) as client:
        job = await client.enqueue("call", {})
        server.pause()
        calls: dict[str, Any] = {
            "enqueue": client.enqueue("call", {}),
            "enqueue_many": client.enqueue_many([("call", {})]),
            "get": client.get(job.id),
            "logs": client.logs(job.id),
            "wait": client.wait(job.id),
            "list_jobs": client.list_jobs(),
            "stats": client.stats(),
            "queues": client.queues(),
            "workers": client.workers(),
            "cancel": client.cancel(job.id),
            "retry": client.retry(job.id),
            "remove": client.remove(job.id),
            "retry_failed": client.retry_failed(),
            "purge": client.purge(),
            "drain": client.drain(),
            "obliterate": client.obliterate(force=True),
            "set_progress": client.set_progress(job.id, 50),
            "events": anext(client.events(since="0")),
        }
        t0 = time.monotonic()
        outcomes = await asyncio.gather(*calls.values(), return_exceptions=True)
        elapsed = time.monotonic() - t0
        print(f"{len(calls)} calls on a frozen Redis: all failed after {elapsed:.2f} s")
        for name, outcome in zip(calls, outcomes, strict=True):
            assert isinstance(outcome, ConnectionFailed), (name, outcome)
            assert server.url in str(outcome), name
        # Each call waits one command timeout, but `wait` and `events` read the end of the
        # queue's log under one lock: the second of them waits out the first one's try.
        assert elapsed <= 2 * COMMAND_TIMEOUT + 2.0
        server.resume()


async def test_a_wait_without_timeout_fails_when_redis_freezes_under_it(
    make_redis: MakeRedis,
) -> None:
    """`wait(timeout=None)` is following the log and idle when Redis freezes: the reader's
    blocked read gets no answer within its socket timeout, the wait looks at the job again,
    that look fails, and the wait fails instead of waiting for ever (likewise a queue
    follower)."""
    server = make_redis("plain")
    async with Client(server.url) as client:
        job = await client.enqueue("call", {}, delay=3600)
        waiting = asyncio.create_task(client.wait(job.id))
        following = asyncio.create_task(anext(client.events()))
        await asyncio.sleep(1.0)  # both following
        server.pause()
        t0 = time.monotonic()
        outcomes = await asyncio.wait_for(
            asyncio.gather(waiting, following, return_exceptions=True), 30
        )
        elapsed = time.monotonic() - t0
        server.resume()
    print(f"wait and follow on a Redis frozen under them: failed after {elapsed:.2f} s")
    for outcome in outcomes:
        assert isinstance(outcome, ConnectionFailed), outcome
    assert elapsed <= KEEPALIVE + 3 * COMMAND_TIMEOUT + 2.0
