"""The ssh executor against a real SSH server (tests/executors/sshd.py) on loopback.

The server runs every command for real with /bin/sh, so the tests check what happened on the
"remote" side too: which connections were opened, which signals arrived, and that a stopped
command's processes are gone.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from redisjobs import Client, ExecContext, JobCancelled, JobFailed, JobStatus
from redisjobs.errors import ExecutorError, JobTimeout, PayloadError
from redisjobs.executors import SSHExecutor
from redisjobs.testing import closed_port, free_port
from tests.conftest import WorkerFactory, log_events
from tests.executors.conftest import Host, alive

SSHD = Path(__file__).with_name("sshd.py")


@dataclass
class Server:
    port: int
    host_key: asyncssh.SSHKey
    client_key: Path
    known_hosts: Path
    log: Path

    def payload(self, **fields: Any) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port, **fields}

    def events(self) -> list[str]:
        return self.log.read_text().splitlines()

    def count(self, event: str) -> int:
        return sum(1 for line in self.events() if line == event)

    def signals(self, pid: int) -> list[str]:
        return [
            e.split()[1] for e in self.events() if e.startswith("signal ") and e.endswith(f" {pid}")
        ]


def _write_key(key: asyncssh.SSHKey, path: Path) -> Path:
    key.write_private_key(path)
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("sshd")
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    _write_key(host_key, d / "host_key")
    _write_key(client_key, d / "client_key")
    client_key.write_public_key(d / "authorized_keys")
    port = free_port()
    known_hosts = d / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}")
    log = d / "sshd.log"
    log.touch()
    cmd = [sys.executable, str(SSHD), "--port", str(port), "--host-key", str(d / "host_key")]
    cmd += ["--authorized-keys", str(d / "authorized_keys"), "--log", str(log)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n", "sshd.py did not start"
        yield Server(port, host_key, d / "client_key", known_hosts, log)
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
async def make_executor(sshd: Server) -> AsyncIterator[Callable[..., SSHExecutor]]:
    """SSHExecutors that trust the test server and log in with its client key; closed after."""
    made: list[SSHExecutor] = []

    def make(**kwargs: Any) -> SSHExecutor:
        kwargs.setdefault("known_hosts", sshd.known_hosts)
        kwargs.setdefault("client_keys", [sshd.client_key])
        ex = SSHExecutor(**kwargs)
        made.append(ex)
        return ex

    yield make
    for ex in made:
        await ex.aclose()


async def run(ex: SSHExecutor, payload: Any, host: Host | None = None) -> dict[str, Any]:
    ctx = ExecContext(host or Host(), job_id="j1", queue="q", kind="ssh", attempt=1, lease=1)
    result = await ex.run(job_id="j1", payload=payload, ctx=ctx)
    await ctx.flush()
    return result


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def pids_in(path: Path) -> list[int]:
    """The pids the remote command wrote to `path` (one line), once it has written them."""
    await until(lambda: path.exists() and path.read_text().endswith("\n"))
    return [int(p) for p in path.read_text().split()]


# -- running commands ---------------------------------------------------------------------------


async def test_argv_is_quoted_and_stdout_returned(
    sshd: Server, make_executor: Callable[..., SSHExecutor]
) -> None:
    argv = ["printf", "%s|", "a b", "it's", "$HOME", "; echo injected"]
    result = await run(make_executor(), sshd.payload(argv=argv))
    assert result == {"exit_status": 0, "stdout": "a b|it's|$HOME|; echo injected|", "stderr": ""}


async def test_cmd_runs_in_the_remote_shell(
    sshd: Server, make_executor: Callable[..., SSHExecutor]
) -> None:
    result = await run(make_executor(), sshd.payload(cmd="echo $((6 * 7)); echo oops >&2"))
    assert result == {"exit_status": 0, "stdout": "42\n", "stderr": "oops\n"}


async def test_env_is_exported_to_the_command(
    sshd: Server, make_executor: Callable[..., SSHExecutor]
) -> None:
    value = "it's $HOME `echo x`; done"
    payload = sshd.payload(
        argv=["sh", "-c", 'printf "%s/%s" "$GREETING" "$N"'], env={"GREETING": value, "N": 7}
    )
    result = await run(make_executor(), payload)
    assert result["stdout"] == f"{value}/7"


async def test_nonzero_exit_fails_with_status_and_stderr(
    sshd: Server, make_executor: Callable[..., SSHExecutor]
) -> None:
    payload = sshd.payload(cmd="echo fine; echo 'disk is full' >&2; exit 3")
    with pytest.raises(ExecutorError, match=r"127\.0\.0\.1:\d+: exit status 3: disk is full") as ei:
        await run(make_executor(), payload)
    assert ei.value.retryable


async def test_killed_by_a_signal_fails(
    sshd: Server, make_executor: Callable[..., SSHExecutor]
) -> None:
    payload = sshd.payload(cmd="echo last words >&2; kill -KILL $$")
    with pytest.raises(ExecutorError, match="killed by SIGKILL: last words"):
        await run(make_executor(), payload)


async def test_output_streams_to_the_log_and_sets_progress(
    sshd: Server, make_executor: Callable[..., SSHExecutor], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    cmd = (
        "echo one; echo warn >&2; echo '::progress 50 half';"
        f" while [ ! -e {gate} ]; do sleep 0.02; done; echo two; printf three"
    )
    host = Host()
    task = asyncio.create_task(run(make_executor(), sshd.payload(cmd=cmd), host))
    # the first lines arrive while the command still runs
    await until(
        lambda: "one" in host.lines and "[stderr] warn" in host.lines and bool(host.progress)
    )
    assert not task.done()
    assert host.progress == [(50.0, "half")]
    gate.touch()
    result = await asyncio.wait_for(task, 5)
    assert [line for line in host.lines if not line.startswith("[stderr]")] == [
        "one",
        "two",
        "three",
    ]
    assert result["stdout"] == "one\ntwo\nthree"  # not the progress line; no newline added
    assert result["stderr"] == "warn\n"


async def test_output_limit_keeps_the_tail(
    sshd: Server, make_executor: Callable[..., SSHExecutor]
) -> None:
    result = await run(make_executor(output_limit=10), sshd.payload(cmd="seq 1 100"))
    assert result["stdout"] == "…98\n99\n100\n"  # the last 10 bytes


# -- security -----------------------------------------------------------------------------------


@pytest.mark.parametrize("listed", ["another key", "not listed"])
async def test_unknown_host_key_is_refused(
    sshd: Server, make_executor: Callable[..., SSHExecutor], tmp_path: Path, listed: str
) -> None:
    known_hosts = tmp_path / "known_hosts"
    if listed == "another key":
        other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
        known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {other}")
    else:
        known_hosts.write_text(f"[127.0.0.1]:1 {sshd.host_key.export_public_key().decode()}")
    execs = sum(1 for e in sshd.events() if e.startswith("exec "))
    with pytest.raises(ExecutorError, match="host key not verified") as ei:
        await run(make_executor(known_hosts=known_hosts), sshd.payload(argv=["true"]))
    assert not ei.value.retryable
    assert sum(1 for e in sshd.events() if e.startswith("exec ")) == execs


async def test_skipping_host_key_checks_connects_and_warns(
    sshd: Server,
    make_executor: Callable[..., SSHExecutor],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = tmp_path / "known_hosts"
    wrong.write_text("")
    with caplog.at_level(logging.WARNING, logger="redisjobs.executors.ssh"):
        ex = make_executor(known_hosts=wrong, insecure_skip_host_key_check=True)
    assert any("HOST KEYS ARE NOT CHECKED" in r.getMessage() for r in caplog.records)
    result = await run(ex, sshd.payload(argv=["echo", "in"]))
    assert result["stdout"] == "in\n"


async def test_payload_key_path_only_inside_key_dir(
    sshd: Server, make_executor: Callable[..., SSHExecutor], tmp_path: Path
) -> None:
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    inside = key_dir / "deploy"
    inside.write_bytes(sshd.client_key.read_bytes())
    outside = tmp_path / "outside"
    outside.write_bytes(sshd.client_key.read_bytes())
    (key_dir / "link").symlink_to(outside)
    unauthorized = _write_key(asyncssh.generate_private_key("ssh-ed25519"), tmp_path / "other")
    ex = make_executor(client_keys=[unauthorized], key_dir=key_dir)

    with pytest.raises(ExecutorError, match="login refused") as ei:
        await run(ex, sshd.payload(argv=["true"]))  # the worker's own key is not authorized
    assert not ei.value.retryable
    result = await run(ex, sshd.payload(argv=["echo", "ok"], key_path=str(inside)))
    assert result["stdout"] == "ok\n"
    for path in [outside, key_dir / "link", key_dir / ".." / "outside"]:
        with pytest.raises(PayloadError, match="not inside the key directory"):
            await run(ex, sshd.payload(argv=["true"], key_path=str(path)))
    with pytest.raises(PayloadError, match="not inside the key directory"):
        await run(make_executor(), sshd.payload(argv=["true"], key_path=str(inside)))


async def test_allow_hosts(sshd: Server, make_executor: Callable[..., SSHExecutor]) -> None:
    refused = make_executor(allow_hosts=["*.example.com"])
    with pytest.raises(PayloadError, match="not in this worker's allow-list"):
        await run(refused, sshd.payload(argv=["true"]))
    allowed = make_executor(allow_hosts=["*.example.com", "127.0.0.1"])
    assert (await run(allowed, sshd.payload(argv=["true"])))["exit_status"] == 0


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ("uptime", "a ssh payload is a map"),
        ({"argv": ["true"]}, 'needs a "host"'),
        ({"host": "h", "port": 0, "argv": ["true"]}, "bad port 0"),
        ({"host": "h", "argv": ["true"], "cmd": "true"}, "exactly one of"),
        ({"host": "h", "cmd": "true", "env": {"A-B": "1"}}, "bad environment variable"),
        ({"host": "h", "cmd": "true", "timeout": -1}, "positive number of seconds"),
    ],
)
async def test_bad_payloads(
    make_executor: Callable[..., SSHExecutor], payload: Any, error: str
) -> None:
    with pytest.raises(PayloadError, match=error):
        await run(make_executor(), payload)


# -- connections --------------------------------------------------------------------------------


async def test_connections_are_shared_up_to_max_sessions(
    sshd: Server, make_executor: Callable[..., SSHExecutor]
) -> None:
    ex = make_executor(max_sessions=1)
    before = sshd.count("connection")
    for _ in range(3):
        await run(ex, sshd.payload(argv=["true"]))
    assert sshd.count("connection") == before + 1  # one after the other: one connection
    await asyncio.gather(*(run(ex, sshd.payload(cmd="sleep 0.2")) for _ in range(2)))
    assert sshd.count("connection") == before + 2  # at once, one session each: a second one
    shared = make_executor(max_sessions=3)
    await asyncio.gather(*(run(shared, sshd.payload(cmd="sleep 0.2")) for _ in range(3)))
    assert sshd.count("connection") == before + 3


async def test_idle_connections_are_closed(
    sshd: Server, make_executor: Callable[..., SSHExecutor]
) -> None:
    ex = make_executor(idle_timeout=0.2)
    connections, disconnects = sshd.count("connection"), sshd.count("disconnect")
    await run(ex, sshd.payload(argv=["true"]))
    await until(lambda: sshd.count("disconnect") == disconnects + 1)
    await run(ex, sshd.payload(argv=["true"]))  # a new connection, not the closed one
    assert sshd.count("connection") == connections + 2


async def test_unreachable_port_is_a_retryable_error(
    make_executor: Callable[..., SSHExecutor],
) -> None:
    with closed_port() as port, pytest.raises(ExecutorError, match="cannot connect") as ei:
        await run(make_executor(), {"host": "127.0.0.1", "port": port, "argv": ["true"]})
    assert ei.value.retryable


# -- stopping -----------------------------------------------------------------------------------


async def test_timeout_terminates_the_remote_process_group(
    sshd: Server, make_executor: Callable[..., SSHExecutor], tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    payload = sshd.payload(cmd=f"sleep 30 & echo $$ $! > {pidfile}; wait", timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(JobTimeout, match=r"timed out after 0\.5 s"):
        await run(make_executor(), payload)
    assert time.monotonic() - t0 < 3
    shell, sleeper = await pids_in(pidfile)
    await until(lambda: not alive(shell) and not alive(sleeper))
    assert sshd.signals(shell) == ["TERM"]  # SIGTERM did it, within the grace


async def test_kill_after_the_grace(
    sshd: Server, make_executor: Callable[..., SSHExecutor], tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    payload = sshd.payload(cmd=f"trap '' TERM; echo $$ > {pidfile}; exec sleep 30", timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(JobTimeout, match="timed out"):
        await run(make_executor(kill_grace=0.3), payload)
    assert time.monotonic() - t0 < 3
    [pid] = await pids_in(pidfile)
    await until(lambda: not alive(pid))
    assert sshd.signals(pid) == ["TERM", "KILL"]


async def test_cancel_terminates_the_remote_process_group(
    sshd: Server, make_executor: Callable[..., SSHExecutor], tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    payload = sshd.payload(cmd=f"sleep 30 & echo $$ $! > {pidfile}; wait")
    task = asyncio.create_task(run(make_executor(), payload))
    shell, sleeper = await pids_in(pidfile)
    assert alive(shell) and alive(sleeper)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    await until(lambda: not alive(shell) and not alive(sleeper))
    assert sshd.signals(shell) == ["TERM"]


# -- through a worker ---------------------------------------------------------------------------


@pytest.fixture
def ssh_worker(sshd: Server, worker: WorkerFactory) -> Callable[..., Any]:
    async def make(**kwargs: Any) -> Any:
        ex = SSHExecutor(known_hosts=sshd.known_hosts, client_keys=[sshd.client_key], **kwargs)
        return await worker(executors=[ex])

    return make


async def test_worker_runs_an_ssh_job(
    sshd: Server, client: Client, ssh_worker: Callable[..., Any]
) -> None:
    await ssh_worker()
    cmd = "echo start; echo '::progress 50 half'; echo note >&2; echo done"
    job = await client.enqueue("ssh", sshd.payload(cmd=cmd))
    result = await client.wait(job.id, timeout=10)
    assert result == {"exit_status": 0, "stdout": "start\ndone\n", "stderr": "note\n"}
    logs = await client.logs(job.id)
    assert [line for line in logs if not line.startswith("[stderr]")] == ["start", "done"]
    assert "[stderr] note" in logs
    progress = [e for e in await log_events(client, job.id) if e.type == "progress"]
    assert [(e.data["progress"], e.data["message"]) for e in progress] == [(50.0, "half")]
    got = await client.get(job.id)
    assert got is not None and got.status is JobStatus.COMPLETED


async def test_worker_records_a_failing_command(
    sshd: Server, client: Client, ssh_worker: Callable[..., Any]
) -> None:
    await ssh_worker()
    job = await client.enqueue("ssh", sshd.payload(cmd="echo 'no such target' >&2; exit 3"))
    with pytest.raises(JobFailed, match="exit status 3: no such target"):
        await client.wait(job.id, timeout=10)
    got = await client.get(job.id)
    assert got is not None and got.status is JobStatus.FAILED
    assert got.error is not None and "exit status 3: no such target" in got.error


async def test_worker_job_timeout_stops_the_remote_command(
    sshd: Server, client: Client, ssh_worker: Callable[..., Any], tmp_path: Path
) -> None:
    await ssh_worker()
    pidfile = tmp_path / "pid"
    job = await client.enqueue(
        "ssh", sshd.payload(cmd=f"echo $$ > {pidfile}; exec sleep 30"), timeout=0.5
    )
    with pytest.raises(JobFailed, match=r"timed out after 0\.5 s"):
        await client.wait(job.id, timeout=10)
    [pid] = await pids_in(pidfile)
    await until(lambda: not alive(pid))
    assert sshd.signals(pid) == ["TERM"]


async def test_worker_cancel_stops_the_remote_command(
    sshd: Server, client: Client, ssh_worker: Callable[..., Any], tmp_path: Path
) -> None:
    await ssh_worker()
    pidfile = tmp_path / "pids"
    job = await client.enqueue("ssh", sshd.payload(cmd=f"sleep 30 & echo $$ $! > {pidfile}; wait"))
    shell, sleeper = await pids_in(pidfile)
    assert await client.cancel(job.id)
    with pytest.raises(JobCancelled):
        await client.wait(job.id, timeout=10)
    await until(lambda: not alive(shell) and not alive(sleeper))
    assert sshd.signals(shell) == ["TERM"]
    got = await client.get(job.id)
    assert got is not None and got.status is JobStatus.CANCELLED
