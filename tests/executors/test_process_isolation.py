"""`isolation="process"`: a plain function runs in a child process that a timeout or cancel of
its job kills (even in a C-level sleep), with real children, a real Worker and redis-server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redisjobs import CallRefused, Client, ExecContext, JobFailed, JobStatus, Worker
from redisjobs.executors import CallExecutor
from redisjobs.executors._procchild import find_target
from redisjobs.executors._procpool import check_process_target
from tests import jobs
from tests.conftest import WorkerFactory, log_events, planned

pytestmark = pytest.mark.redis_only  # child processes are the point, not the backend

ROOT = Path(__file__).resolve().parent.parent.parent
PROCESS: list[Callable[..., Any]] = [
    jobs.add_sync,
    jobs.c_sleep,
    jobs.pid_of,
    jobs.retry_sync,
    jobs.refuse_sync,
    jobs.fail_sync,
    jobs.exit_hard,
    jobs.kill_self,
    jobs.report,
    jobs.unencodable_sync,
    jobs.sleep_sync,
    jobs.types_of,
    jobs.leaves_a_logger,
    jobs.rate_limited_once,
]


def _call(max_processes: int | None = None) -> CallExecutor:
    call = CallExecutor(max_processes=max_processes)
    for fn in PROCESS:
        call.register(fn, isolation="process")
    return call


def _gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for a reaper counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped before the open, or after it
        return True


async def _until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():
            await asyncio.sleep(0.02)


async def _child_pid(client: Client, job_id: str) -> int:
    """The pid `c_sleep` logs once it runs."""
    async with asyncio.timeout(10):
        while not (lines := await client.logs(job_id)):
            await asyncio.sleep(0.02)
    return int(lines[0].split()[1])


async def _failed(client: Client, job_id: str, match: str | None = None) -> Any:
    with pytest.raises(JobFailed, match=match):
        await client.wait(job_id, timeout=15)
    job = await client.get(job_id)
    assert job is not None
    return job


async def test_results_round_trip_in_a_reused_child(client: Client, worker: WorkerFactory) -> None:
    await worker(executors=[_call(max_processes=1)], concurrency=1)
    first = await client.enqueue("call", {"fn": "pid_of"})
    pid, job_id = await client.wait(first.id, timeout=15)
    assert pid != os.getpid() and job_id == first.id  # job_id injected in the child
    again = await client.enqueue("call", {"fn": "pid_of"})
    assert (await client.wait(again.id, timeout=5))[0] == pid  # the child is reused
    job = await client.enqueue("call", {"fn": "add_sync", "args": [2, 5]})
    assert await client.wait(job.id, timeout=5) == 7
    values = [b"raw", 1.5, {"a": [1, None]}, {1, 2}]
    typed = await client.enqueue("call", {"fn": "types_of", "args": values})
    assert await client.wait(typed.id, timeout=5) == ["bytes", "float", "dict", "set"]


async def test_a_c_level_sleep_is_killed_at_its_timeout(
    client: Client, worker: WorkerFactory
) -> None:
    w = await worker(executors=[_call(max_processes=1)], concurrency=1)
    stuck = await client.enqueue("call", {"fn": "c_sleep", "args": [60]}, timeout=1)
    after = await client.enqueue("call", {"fn": "pid_of"})
    pid = await _child_pid(client, stuck.id)
    job = await _failed(client, stuck.id, "timed out")
    assert job.failure == "timeout"
    ended = time.monotonic()
    new_pid, _ = await client.wait(after.id, timeout=5)
    assert time.monotonic() - ended < 3.0  # the slot was free at once, a new child started
    assert new_pid != pid
    await _until(lambda: _gone(pid))
    assert w.executors.hung_threads == 0


async def test_cancel_kills_the_child(client: Client, worker: WorkerFactory) -> None:
    await worker(executors=[_call(max_processes=1)], concurrency=1)
    running = await client.enqueue("call", {"fn": "c_sleep", "args": [60]})
    pid = await _child_pid(client, running.id)
    assert await client.cancel(running.id) is True
    job = await _failed(client, running.id)
    assert job.status is JobStatus.CANCELLED and job.failure == "cancel"
    await _until(lambda: _gone(pid))
    after = await client.enqueue("call", {"fn": "add_sync", "args": [1, 1]})
    assert await client.wait(after.id, timeout=5) == 2


async def test_errors_keep_their_meaning(client: Client, worker: WorkerFactory) -> None:
    await worker(executors=[_call()], concurrency=4)
    retry: dict[str, Any] = {"max_retries": 1, "retry_delay": 0.05}
    retried = await client.enqueue("call", {"fn": "retry_sync", "args": [0.1]}, max_retries=1)
    refused = await client.enqueue("call", {"fn": "refuse_sync", "args": ["no way"]}, **retry)
    raised = await client.enqueue("call", {"fn": "fail_sync", "args": ["bad value"]}, **retry)
    unencodable = await client.enqueue("call", {"fn": "unencodable_sync"}, **retry)
    job = await _failed(client, retried.id, "retry requested")
    assert job.attempt == 2
    job = await _failed(client, refused.id, "no way")
    assert job.attempt == 1 and job.failure == "fatal"
    job = await _failed(client, raised.id, "ValueError: bad value")
    assert job.attempt == 2 and job.failure == "error"
    log = "\n".join(await client.logs(raised.id))
    assert "in the child process" in log and "in fail_sync" in log
    job = await _failed(client, unencodable.id, "cannot be stored: cannot encode object")
    assert job.attempt == 1 and job.failure == "fatal"


async def test_rate_limited_in_a_child_defers_the_job(
    client: Client, worker: WorkerFactory, tmp_path: Path
) -> None:
    await worker(executors=[_call()], concurrency=1)
    marker = str(tmp_path / "first-run")
    job = await client.enqueue(
        "call", {"fn": "rate_limited_once", "args": [marker, 0.1, True]}, max_retries=0
    )
    assert await client.wait(job.id, timeout=10) == "done"
    done = await client.get(job.id)
    assert done is not None and done.attempt == 1
    [deferred] = [e for e in await log_events(client, job.id) if e.type == "deferred"]
    assert deferred.data["due"] - deferred.ts in planned(client, 100)
    assert deferred.data["paused"] is True


@pytest.mark.parametrize(
    ("fn", "args", "why"),
    [("exit_hard", [3], "exited with code 3"), ("kill_self", [], "killed by SIGKILL")],
)
async def test_a_dying_child_fails_its_job_retryably(
    client: Client, worker: WorkerFactory, fn: str, args: list[Any], why: str
) -> None:
    await worker(executors=[_call(max_processes=1)], concurrency=1)
    dies = await client.enqueue("call", {"fn": fn, "args": args}, max_retries=1, retry_delay=0.05)
    job = await _failed(client, dies.id, why)
    assert job.attempt == 2 and job.failure == "error"
    after = await client.enqueue("call", {"fn": "add_sync", "args": [2, 2]})
    assert await client.wait(after.id, timeout=5) == 4


async def test_ctx_reports_to_the_job(client: Client, worker: WorkerFactory) -> None:
    await worker(executors=[_call()])
    job = await client.enqueue("call", {"fn": "report", "args": [4]})
    assert await client.wait(job.id, timeout=15) == job.id
    assert await client.logs(job.id) == [f"step {i}" for i in range(1, 5)]
    got = await client.get(job.id)
    assert got is not None and got.progress == 100.0 and got.progress_message == "step 4"


async def test_a_line_logged_after_its_job_is_not_the_next_jobs(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(executors=[_call(max_processes=1)], concurrency=1)
    first = await client.enqueue("call", {"fn": "leaves_a_logger"})
    second = await client.enqueue("call", {"fn": "sleep_sync", "args": [0.6]})
    await client.wait(first.id, timeout=15)
    assert await client.wait(second.id, timeout=5) == "slept"
    assert await client.logs(first.id) == [] and await client.logs(second.id) == []


async def test_jobs_beyond_max_processes_wait(client: Client, worker: WorkerFactory) -> None:
    await worker(executors=[_call(max_processes=1)], concurrency=3)
    warm = await client.enqueue("call", {"fn": "add_sync", "args": [0, 0]})
    await client.wait(warm.id, timeout=15)
    started = time.monotonic()
    naps = await client.enqueue_many([("call", {"fn": "sleep_sync", "args": [0.3]})] * 3)
    for nap in naps:
        assert await client.wait(nap.id, timeout=10) == "slept"
    assert time.monotonic() - started >= 0.9  # one child: one after the other


async def test_a_process_task_of_an_app(redis_url: str, client: Client) -> None:
    """A task declared with isolation="process": the child finds the function its Task wraps."""
    async with Worker(redis_url, app=jobs.process_app, queue=client.queue, handle_signals=False):
        stuck = await client.enqueue(
            "call", {"fn": jobs.task_in_child.name, "args": [60]}, timeout=1
        )
        job = await _failed(client, stuck.id, "timed out")
        assert job.failure == "timeout"
        quick = await client.enqueue("call", {"fn": jobs.task_in_child.name, "args": [0]})
        assert await client.wait(quick.id, timeout=10) != os.getpid()


async def test_a_worker_bounds_its_task_processes(redis_url: str, client: Client) -> None:
    """Worker(max_processes=1): two process tasks at once run one after the other, in one
    child."""
    async with Worker(
        redis_url, app=jobs.process_app, queue=client.queue, max_processes=1, handle_signals=False
    ):
        two = [
            await client.enqueue("call", {"fn": jobs.task_in_child.name, "args": [1]})
            for _ in range(2)
        ]
        pids = {await client.wait(job.id, timeout=15) for job in two}
    assert len(pids) == 1 and os.getpid() not in pids


async def test_aclose_stops_the_children() -> None:
    call = _call(max_processes=2)
    ctx = ExecContext(_NoHost(), job_id="j", queue="q", kind="call", attempt=1, lease=1)
    await call.run(job_id="j", payload={"fn": "add_sync", "args": [1, 2]}, ctx=ctx)
    assert call._pool is not None
    pids = call._pool.pids
    assert len(pids) == 1
    await call.aclose()
    assert all(_gone(pid) for pid in pids)


async def test_a_task_object_registered_itself_runs_in_a_child() -> None:
    call = CallExecutor()
    call.register(jobs.task_in_child, name="in_child", isolation="process")
    ctx = ExecContext(_NoHost(), job_id="j", queue="q", kind="call", attempt=1, lease=1)
    try:
        pid = await call.run(job_id="j", payload={"fn": "in_child", "args": [0]}, ctx=ctx)
        assert call._pool is not None and call._pool.pids == [pid] != [os.getpid()]
    finally:
        await call.aclose()


class _NoHost:
    def write_log(self, job_id: str, line: str) -> None:
        pass

    async def write_progress(self, ctx: ExecContext) -> None:
        pass

    async def read_parents(self, job_id: str) -> dict[bytes, bytes]:
        return {}


def _nested() -> Callable[[], None]:
    def inner() -> None:
        pass

    return inner


async def _coroutine_function() -> None:
    pass


def _main_function() -> Callable[[], None]:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec("def run():\n    pass\n", namespace)
    fn: Callable[[], None] = namespace["run"]
    return fn


@pytest.mark.parametrize(
    ("fn", "why"),
    [
        (_nested(), "only a function defined at a module's top level"),
        (lambda: None, "only a function defined at a module's top level"),
        (_main_function(), "a function of __main__ cannot run in a child process"),
        (_coroutine_function, "is for plain \\(def\\) functions"),
        (jobs.Maths.double, "only a function defined at a module's top level"),
        (len, "is for plain \\(def\\) functions"),
    ],
)
def test_what_cannot_run_in_a_child_is_refused_up_front(fn: Any, why: str) -> None:
    with pytest.raises(CallRefused, match=why):
        check_process_target(fn)
    with pytest.raises(ValueError, match=why):
        CallExecutor().register(fn, name="f", isolation="process")


def test_registration_checks() -> None:
    check_process_target(jobs.task_in_child)  # a Task: the function it wraps is checked
    call = CallExecutor(inject={"manager": object()})
    with pytest.raises(CallRefused, match="no injected value: manager cannot cross"):
        call.register(_takes_manager, name="takes_manager", isolation="process")
    with pytest.raises(ValueError, match="isolation must be 'thread' or 'process'"):
        call.register(jobs.add_sync, isolation="fork")  # type: ignore[arg-type]


def _takes_manager(manager: object, job_id: str) -> None:
    pass


def test_a_child_finds_only_functions_defined_where_named() -> None:
    assert find_target("tests.jobs", "add_sync") is jobs.add_sync
    assert find_target("tests.jobs", "task_in_child") is jobs.task_in_child.fn
    for name in ("copyfile", "Greeter", "nothing_here", "process_app"):
        with pytest.raises(CallRefused, match=rf"tests\.jobs defines no function {name}"):
            find_target("tests.jobs", name)
    with pytest.raises(CallRefused, match=r"cannot import tests\.nowhere"):
        find_target("tests.nowhere", "f")


WORKER_SCRIPT = """
import asyncio, sys
from redisjobs import Worker
from redisjobs.executors import CallExecutor
from tests import jobs

call = CallExecutor()
call.register(jobs.c_sleep, isolation="process")
call.register(jobs.spawn_sleeper, isolation="process")
asyncio.run(Worker(sys.argv[1], queue=sys.argv[2], executors=[call]).run())
"""


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            children.setdefault(ppid, []).append(int(name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


async def test_kill_9_of_the_worker_leaves_no_child(redis_url: str, client: Client) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, redis_url, client.queue], cwd=ROOT, env=env
    )
    try:
        stuck = await client.enqueue("call", {"fn": "c_sleep", "args": [60]})
        await client.enqueue("call", {"fn": "spawn_sleeper", "args": [60]})
        await _child_pid(client, stuck.id)
        await _until(lambda: len(_descendants(worker.pid)) >= 3, 10)  # two children, a sleep
        family = _descendants(worker.pid)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(5)
        await _until(lambda: all(_gone(pid) for pid in family), 5)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(5)
