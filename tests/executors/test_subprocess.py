"""The subprocess executor against real processes: output, exit codes, environment, and no
process left behind after a timeout, a cancel, an exit with stragglers or a killed worker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from redisjobs import (
    Client,
    ExecContext,
    ExecutorError,
    JobCancelled,
    JobFailed,
    JobTimeout,
    PayloadError,
)
from redisjobs.cli.executors import factories
from redisjobs.cli.parser import build
from redisjobs.executors import SubprocessExecutor
from redisjobs.testing import RedisServer, unique_queue
from tests.conftest import WorkerFactory, log_events
from tests.executors.conftest import Host, gone, group_members, pid_in


async def run(ex: SubprocessExecutor, ctx: ExecContext, **payload: object) -> dict[str, object]:
    return await ex.run(job_id=ctx.job_id, payload=payload, ctx=ctx)


async def test_argv_runs_without_a_shell(ctx: ExecContext, host: Host) -> None:
    result = await run(SubprocessExecutor(), ctx, argv=["echo", "$HOME", "a b"])
    assert result == {"returncode": 0, "stdout": "$HOME a b\n", "stderr": ""}
    assert host.lines == ["$HOME a b"]


async def test_a_cmd_list_is_an_argv(ctx: ExecContext) -> None:
    result = await run(SubprocessExecutor(), ctx, cmd=["echo", "no", "shell;", "needed"])
    assert result["stdout"] == "no shell; needed\n"


async def test_shell_strings_need_the_worker_to_allow_them(ctx: ExecContext) -> None:
    with pytest.raises(PayloadError, match="--allow-shell") as err:
        await run(SubprocessExecutor(), ctx, cmd="echo hi | tr a-z A-Z")
    assert not err.value.retryable
    result = await run(SubprocessExecutor(allow_shell=True), ctx, cmd="echo hi | tr a-z A-Z")
    assert result["stdout"] == "HI\n"


async def test_nonzero_exit_fails_with_code_and_stderr_tail(ctx: ExecContext) -> None:
    ex = SubprocessExecutor()
    with pytest.raises(ExecutorError, match=r"(?s)^exit code 3: .*last words") as err:
        await run(ex, ctx, argv=["sh", "-c", "echo noise >&2; echo last words >&2; exit 3"])
    assert err.value.retryable
    with pytest.raises(ExecutorError, match="killed by SIGKILL"):
        await run(ex, ctx, argv=["sh", "-c", "kill -KILL $$"])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"argv": "echo hi"}, "non-empty list"),
        ({"argv": []}, "non-empty list"),
        ({}, "exactly one of"),
        ({"argv": ["true"], "cmd": "true"}, "exactly one of"),
        ({"argv": ["no-such-program-xyz"]}, "cannot run 'no-such-program-xyz'"),
        ({"argv": ["true"], "cwd": "/tmp"}, "needs a worker that allows directories"),
        ({"argv": ["true"], "env": {"LD_PRELOAD": "/tmp/x.so"}}, "refused: payload env sets"),
        ({"argv": ["true"], "env": {"A=B": "x"}}, "bad environment variable"),
        ({"argv": ["true"], "timeout": -1}, "positive number"),
        ({"argv": ["cat"], "stdin": 5}, "stdin"),
    ],
)
async def test_bad_payloads_fail_for_good(
    ctx: ExecContext, payload: dict[str, object], message: str
) -> None:
    with pytest.raises(PayloadError, match=message):
        await SubprocessExecutor().run(job_id="j", payload=payload, ctx=ctx)


async def test_output_streams_line_by_line_and_progress_lines_set_progress(
    ctx: ExecContext, host: Host
) -> None:
    script = "echo one; echo '::progress 40 copying'; echo err >&2; read go; echo two"
    ex = SubprocessExecutor()
    task = asyncio.create_task(run(ex, ctx, argv=["sh", "-c", script], stdin="go\n"))
    await host.logged("[stderr] err")
    result = await task
    assert host.lines == ["one", "[stderr] err", "two"] or host.lines == [
        "one",
        "two",
        "[stderr] err",
    ]
    assert ctx.progress == 40 and ctx.progress_message == "copying"
    assert host.progress == [(40.0, "copying")]
    assert result["stdout"] == "one\ntwo\n"  # the progress line is not output


async def test_log_streams_while_the_command_runs(ctx: ExecContext, host: Host) -> None:
    task = asyncio.create_task(
        run(SubprocessExecutor(), ctx, argv=["sh", "-c", "echo first; sleep 30"], timeout=20)
    )
    await host.logged("first")
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_output_tails_are_capped(ctx: ExecContext, host: Host) -> None:
    ex = SubprocessExecutor(output_limit=100)
    result = await run(ex, ctx, argv=["sh", "-c", "seq 1 1000; printf 'x%.0s' $(seq 1 10000)"])
    stdout = result["stdout"]
    assert isinstance(stdout, str) and stdout.startswith("…") and len(stdout) == 101
    assert stdout.endswith("x" * 50)
    assert len(host.lines) == 1001
    assert host.lines[-1].endswith("…") and len(host.lines[-1]) == 4097  # one line, cut


async def test_children_get_a_minimal_environment(
    ctx: ExecContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKER_SECRET", "s3cr3t")
    monkeypatch.setenv("SHARED_SETTING", "yes")
    ex = SubprocessExecutor(pass_env=["SHARED_SETTING"], env={"FROM_WORKER": "w"})
    result = await run(ex, ctx, argv=["env"], env={"FROM_JOB": 7})
    env = dict(line.split("=", 1) for line in str(result["stdout"]).splitlines())
    assert "WORKER_SECRET" not in env
    assert env["SHARED_SETTING"] == "yes" and env["FROM_WORKER"] == "w" and env["FROM_JOB"] == "7"
    assert env["PATH"] == os.environ["PATH"]
    assert set(env) <= {
        "PATH",
        "HOME",
        "LANG",
        "SHARED_SETTING",
        "FROM_WORKER",
        "FROM_JOB",
        "PWD",
    } | {"REDISJOBS_WATCHDOG"}


async def test_timeout_kills_the_whole_process_group(
    ctx: ExecContext, host: Host, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    script = f"sleep 30 & sleep 30 & echo $$ > {pidfile}; wait"
    ex = SubprocessExecutor(kill_grace=1)
    task = asyncio.create_task(run(ex, ctx, argv=["sh", "-c", script], timeout=0.5))
    pgid = await pid_in(pidfile)
    assert len(group_members(pgid)) == 3
    with pytest.raises(JobTimeout, match=r"timed out after 0\.5 s"):
        await task
    assert group_members(pgid) == []
    assert f"terminating process group {pgid} (SIGTERM)" in host.lines


async def test_cancel_kills_the_group_even_when_it_ignores_sigterm(
    ctx: ExecContext, host: Host, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    script = f"trap '' TERM; echo $$ > {pidfile}; sleep 30 & wait; sleep 30"
    ex = SubprocessExecutor(kill_grace=0.3)
    task = asyncio.create_task(run(ex, ctx, argv=["sh", "-c", script]))
    pgid = await pid_in(pidfile)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 0.3 <= loop.time() - t0 < 3  # SIGTERM ignored, SIGKILL after the grace
    assert group_members(pgid) == []
    assert host.lines[-2:] == [
        f"terminating process group {pgid} (SIGTERM)",
        f"process group {pgid} still there after SIGTERM: sent SIGKILL",
    ]


async def test_processes_left_behind_at_exit_are_ended(
    ctx: ExecContext, host: Host, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    script = f"sleep 30 & echo $! > {pidfile}; echo started"
    result = await run(SubprocessExecutor(), ctx, argv=["sh", "-c", script], timeout=10)
    assert result["stdout"] == "started\n"
    await gone([await pid_in(pidfile)])
    assert any("terminating processes left behind in the group" in line for line in host.lines)


async def test_the_watchdog_ends_commands_when_their_worker_dies(tmp_path: Path) -> None:
    """A worker stand-in runs a command and is killed with SIGKILL mid-way. The command left a
    process in a session of its own: the watchdog finds that one by its environment."""
    pidfile, escaped = tmp_path / "pid", tmp_path / "escaped"
    script = f"setsid sleep 30 & echo $! > {escaped}; sleep 30 & echo $$ > {pidfile}; wait"
    code = f"""
import asyncio
from redisjobs import ExecContext
from redisjobs.cli.executors import factories
from redisjobs.cli.parser import build
from redisjobs.executors import SubprocessExecutor
from tests.executors.conftest import Host
ctx = ExecContext(Host(), job_id="j", queue="q", kind="subprocess", attempt=1, lease=1)
payload = {{"argv": ["sh", "-c", {script!r}]}}
asyncio.run(SubprocessExecutor().run(job_id="j", payload=payload, ctx=ctx))
"""
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        pgid = await pid_in(pidfile, timeout=10)
        loner = await pid_in(escaped)
        async with asyncio.timeout(5):  # its pid is written before it has called setsid()
            while os.getpgid(loner) == pgid:
                await asyncio.sleep(0.02)
        assert len(group_members(pgid)) == 2
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
        async with asyncio.timeout(4):  # SIGTERM works here: well within the 5 s grace
            while group_members(pgid):
                await asyncio.sleep(0.02)
        await gone([loner])
    finally:
        proc.kill()
        proc.wait()


async def test_subprocess_jobs_through_a_worker(client: Client, worker: WorkerFactory) -> None:
    await worker(executors=[SubprocessExecutor()])
    job = await client.enqueue(
        "subprocess", {"argv": ["sh", "-c", "echo '::progress 50 half'; echo done"]}
    )
    result = await client.wait(job.id, timeout=10)
    assert result == {"returncode": 0, "stdout": "done\n", "stderr": ""}
    events = await log_events(client, job.id)
    assert [e.data["progress"] for e in events if e.type == "progress"] == [50]
    assert await client.logs(job.id) == ["done"]
    bad = await client.enqueue("subprocess", {"cmd": "echo hi"}, max_retries=5)
    with pytest.raises(JobFailed, match="runs no shell strings"):
        await client.wait(bad.id, timeout=10)
    assert (await client.get(bad.id)).attempt == 1  # type: ignore[union-attr]
    failing = await client.enqueue("subprocess", {"argv": ["false"]}, max_retries=1, retry_delay=0)
    with pytest.raises(JobFailed, match="exit code 1"):
        await client.wait(failing.id, timeout=10)
    assert (await client.get(failing.id)).attempt == 2  # type: ignore[union-attr]
    assert (await client.get(failing.id)).failure == "error"  # type: ignore[union-attr]
    assert (await client.get(bad.id)).failure == "fatal"  # type: ignore[union-attr]


async def test_a_command_over_its_own_timeout_fails_as_a_timeout(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(executors=[SubprocessExecutor()])
    job = await client.enqueue("subprocess", {"argv": ["sleep", "30"], "timeout": 0.3})
    with pytest.raises(JobFailed, match=r"timed out after 0\.3 s"):
        await client.wait(job.id, timeout=10)
    stored = await client.get(job.id)
    assert stored is not None and stored.failure == "timeout"


async def test_cancelling_a_running_command_job(
    client: Client, worker: WorkerFactory, tmp_path: Path
) -> None:
    await worker(executors=[SubprocessExecutor()])
    pidfile = tmp_path / "pid"
    job = await client.enqueue(
        "subprocess", {"argv": ["sh", "-c", f"echo $$ > {pidfile}; sleep 30 & wait"]}
    )
    pgid = await pid_in(pidfile)
    assert await client.cancel(job.id)
    with pytest.raises(JobCancelled):
        await client.wait(job.id, timeout=10)
    async with asyncio.timeout(5):
        while group_members(pgid):
            await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_kill_9_of_the_worker_leaves_no_process_and_the_job_runs_once_more(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    queue = unique_queue()
    runs = tmp_path / "runs"
    pidfile = tmp_path / "pid"
    # The first run sleeps (and is killed with its worker); the second one finishes.
    script = (
        f"echo run >> {runs}; if [ -e {pidfile} ]; then echo finished; exit 0; fi; "
        f"echo $$ > {pidfile}; sleep 30"
    )

    def start_worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "redisjobs", "--log-level", "WARNING", "worker"),
                *("--url", redis_server.url, "--queue", queue, "-x", "subprocess"),
                *("--lease-ttl", "1", "--reclaim-interval", "0.3"),
            ]
        )

    first = start_worker()
    second = None
    try:
        async with Client(redis_server.url, queue=queue) as client:
            job = await client.enqueue("subprocess", {"argv": ["sh", "-c", script]})
            pgid = await pid_in(pidfile, timeout=15)
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait)
            async with asyncio.timeout(5):
                while group_members(pgid):
                    await asyncio.sleep(0.02)
            second = start_worker()
            result = await client.wait(job.id, timeout=20)
            assert result["stdout"] == "finished\n"
            assert runs.read_text().count("run") == 2
            events = await log_events(client, job.id)
            assert [e.type for e in events].count("completed") == 1
            assert "reclaimed" in [e.type for e in events]
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=40)


@pytest.mark.parametrize(
    "name",
    [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PATH",
        "BASH_ENV",
        "ENV",
        "IFS",
        "PERL5OPT",
        "NODE_OPTIONS",
        "GCONV_PATH",
        "DYLD_INSERT_LIBRARIES",
        "path",
    ],
)
async def test_payload_env_may_not_change_what_programs_load(
    ctx: ExecContext, tmp_path: Path, name: str
) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(PayloadError, match=rf"^refused: payload env sets '{name}'") as err:
        await run(SubprocessExecutor(), ctx, argv=["touch", str(marker)], env={name: "x"})
    assert not err.value.retryable
    assert not marker.exists()  # refused before anything ran


async def test_the_worker_names_the_variables_payloads_may_set(ctx: ExecContext) -> None:
    ex = SubprocessExecutor(allow_env=["PYTHONPATH", "APP_*"])
    result = await run(ex, ctx, argv=["env"], env={"PYTHONPATH": "/srv/lib", "APP_MODE": "x"})
    env = dict(line.split("=", 1) for line in str(result["stdout"]).splitlines())
    assert env["PYTHONPATH"] == "/srv/lib" and env["APP_MODE"] == "x"
    with pytest.raises(PayloadError, match="'OTHER': it is not among this worker's allowed"):
        await run(ex, ctx, argv=["true"], env={"OTHER": "1"})
    with pytest.raises(PayloadError, match="'LD_PRELOAD'"):
        await run(ex, ctx, argv=["true"], env={"LD_PRELOAD": "/tmp/x.so"})


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/ (allowed) with work/ and a link out to outside/; rootsibling/ beside it."""
    for d in ("root/work/deep", "outside", "rootsibling"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "root" / "out").symlink_to(tmp_path / "outside")
    (tmp_path / "in").symlink_to(tmp_path / "root" / "work")
    return tmp_path


@pytest.mark.parametrize(
    "cwd",
    ["outside", "root/..", "root/work/../../outside", "root/out", "root/out/", "rootsibling", "/"],
)
async def test_cwd_outside_the_allowed_directories_is_refused(
    ctx: ExecContext, tree: Path, cwd: str
) -> None:
    ex = SubprocessExecutor(allow_cwd=[tree / "root"])
    with pytest.raises(PayloadError, match="is outside the directories this worker allows"):
        await run(ex, ctx, argv=["pwd"], cwd=str(tree / cwd))


@pytest.mark.parametrize(
    ("cwd", "runs_in"),
    [
        ("root", "root"),
        ("root/work/deep", "root/work/deep"),
        ("root/work/deep/..", "root/work"),
        ("in", "root/work"),
    ],  # a link from outside to inside runs in the resolved directory
)
async def test_cwd_inside_the_allowed_directories_runs_there(
    ctx: ExecContext, tree: Path, cwd: str, runs_in: str
) -> None:
    ex = SubprocessExecutor(allow_cwd=[tree / "root"])
    result = await run(ex, ctx, argv=["pwd", "-P"], cwd=str(tree / cwd))
    assert result["stdout"] == f"{(tree / runs_in).resolve()}\n"
    with pytest.raises(PayloadError, match="cannot run"):  # inside, but not there
        await run(ex, ctx, argv=["pwd"], cwd=str(tree / "root" / "missing"))


async def test_worker_options_name_variables_and_directories(ctx: ExecContext, tree: Path) -> None:
    args = build().parse_args(["worker", "--allow-env", "APP_*", "--allow-cwd", str(tree / "root")])
    [make] = factories(args)
    ex = make()
    assert isinstance(ex, SubprocessExecutor)
    result = await run(ex, ctx, argv=["pwd"], cwd=str(tree / "root"), env={"APP_X": "1"})
    assert result["returncode"] == 0
    with pytest.raises(PayloadError, match="'PYTHONPATH'"):
        await run(ex, ctx, argv=["true"], env={"PYTHONPATH": "/x"})
