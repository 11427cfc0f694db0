"""Every code sample of README.md runs here, as real processes, as written but for addresses.

Python samples run against this module's own redis-server (fragments with top-level ``await``
get a connected ``client`` and the names they use); shell samples run in bash with ``redisjobs``
on PATH, the worker and dashboard they need started from the README's own command lines, and
``myapp`` a package holding the quickstart's ``resize``. Redis URLs and ports are the only
substitutions. A sample that cannot run here is listed in NOT_RUN with the reason, so a new
sample fails this test until it is either run or listed.
"""

from __future__ import annotations

import functools
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from redisjobs.testing import RedisServer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
BLOCKS = [(m.group(1), m.group(2)) for m in FENCE.finditer(README)]

NOT_RUN = {
    "python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/redisjobs demo": (
        "installs the package with pip into a new venv"
    ),
    "bash .ci/run": "the whole CI run (apt-get, venv, the suite with this test)",
    "$ redisjobs info": "sample output, not a command (the command runs in the CLI sample)",
    "docker compose up -d --build": (
        "needs a Docker engine; tests/test_fleet.py checks the compose file and runs its topology"
    ),
    "export REDISJOBS_API_TOKEN=$(openssl rand -hex 16)": "docker compose again (see above)",
    "redis-server --dir /tmp --appendonly yes --appendfsync everysec "
    "--maxmemory-policy noeviction &": (
        "tests/test_fleet.py runs exactly this topology and these commands, on a free port"
    ),
    ".venv/bin/python benchmarks/peers/run.py --only redisjobs": (
        "minutes long; tests/test_benchmarks.py runs it with --smoke"
    ),
    ".venv/bin/python benchmarks/peers/run.py": (
        "builds a venv per peer with pip; tests/test_benchmarks.py runs its --smoke for redisjobs"
    ),
}
"""First line of a sample -> why it does not run here."""

PRELUDE = """\
from redisjobs import Client, JobManager, Worker
from redisjobs.executors import HTTPExecutor, SSHExecutor, SubprocessExecutor
client = Client()
"""
"""The names README fragments use without importing them (``client``: ``$REDIS_URL``)."""

RUNNER = """\
import ast, asyncio, sys
from redisjobs import Client, JobManager

async def run(code, ns):
    try:
        done = eval(code, ns)
        if asyncio.iscoroutine(done):
            await done
    finally:
        for value in list(ns.values()):
            if isinstance(value, JobManager):
                await value.close()
            elif isinstance(value, Client):
                await value.aclose()

source = open(sys.argv[1]).read()
ns = {"__name__": "__main__"}
code = compile(source, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
if "asyncio.run(" in source:  # a whole program
    exec(code, ns)
else:
    exec(sys.argv[2], ns)
    asyncio.run(run(code, ns))
"""


def first_line(text: str) -> str:
    """A sample's name: its first line without a trailing comment."""
    return " ".join(text.splitlines()[0].split("  #")[0].split())


def quickstart_resize() -> str:
    """The quickstart's ``resize``, for ``myapp.tasks`` and ``myapp.jobs``."""
    source = next(text for lang, text in BLOCKS if lang == "python")
    found = re.search(r"^async def resize\(.*?(?=^\S)", source, re.MULTILINE | re.DOTALL)
    assert found, "the quickstart defines no resize()"
    return "import asyncio\n\nfrom redisjobs import ExecContext\n\n\n" + found.group(0)


@dataclass
class Site:
    """This module's redis-server, `myapp`, a `redisjobs` on PATH, and the processes started."""

    redis: RedisServer
    home: Path
    dashboard_port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.redis.url

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.home / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": f"{self.home}:{ROOT}",
            "HOME": str(self.home),
            "REDIS_URL": self.url,
            "REDISJOBS_API_TOKEN": "readme-token",
        }

    def sub(self, text: str) -> str:
        """`text` with the README's addresses replaced by this site's."""
        for address in ("redis://redis:6379/0", "redis://localhost:6379/0"):
            text = text.replace(address, self.url)
        return text.replace("127.0.0.1:8080", f"127.0.0.1:{self.dashboard_port}")

    def sh(self, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", script],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, script: str, *, read: bool = False) -> subprocess.Popen[str]:
        """Start `script` in the background; its output goes to a file unless `read`."""
        with open(self.home / f"proc-{len(self.procs)}.log", "w") as log:
            proc = subprocess.Popen(
                ["bash", "-c", f"exec {script}"],
                cwd=self.home,
                env=self.env,
                stdout=subprocess.PIPE if read else log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.procs.append(proc)
        return proc

    def until(self, check: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)


def stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(40)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
    finally:
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("readme")
    (home / "myapp").mkdir()
    (home / "myapp" / "__init__.py").write_text("")
    for module in ("tasks", "jobs", "reports"):
        (home / "myapp" / f"{module}.py").write_text(quickstart_resize())
    (home / "bin").mkdir()
    shim = home / "bin" / "redisjobs"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m redisjobs "$@"\n')
    shim.chmod(0o755)
    with RedisServer() as redis:
        made = Site(redis, home)
        yield made
        for proc in reversed(made.procs):
            stop(proc)


def block_text(start: str) -> str:
    return next(text for _, text in BLOCKS if text.startswith(start))


@pytest.fixture(scope="module")
def myapp_worker(site: Site) -> subprocess.Popen[str]:
    """The Quickstart's production worker command, serving `myapp` on queue default."""
    command = site.sub(block_text("redisjobs worker --url").replace("\\\n", " "))
    proc = site.start(command)
    site.until(lambda: _healthy(site, "default"), "the worker")
    return proc


@pytest.fixture(scope="module")
def dashboard(site: Site) -> subprocess.Popen[str]:
    """The dashboard sample's command (on a free port), with the token of the curl sample."""
    command = first_line(site.sub(block_text("redisjobs dashboard")))
    proc = site.start(f"{command} --port {site.dashboard_port}")
    base = f"http://127.0.0.1:{site.dashboard_port}"
    check = f"curl -sf -H 'Authorization: Bearer readme-token' {base}/api/queues"
    site.until(lambda: site.sh(check).returncode == 0, "the dashboard")
    return proc


def run_python(site: Site, text: str, tmp_path: Path) -> str:
    script = tmp_path / "block.py"
    script.write_text(site.sub(text).replace(f"{site.url[:-1]}0", f"{site.url[:-1]}1"))
    env = {**site.env, "REDIS_URL": f"{site.url[:-1]}1"}  # db 1: no worker of these tests there
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(script), PRELUDE],
        cwd=site.home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_cli_sample(site: Site, text: str) -> None:
    """The command-line sample, line by line: JOB is the call job it enqueued (for `cancel`,
    the delayed http one, which is still there to cancel)."""
    jobs: dict[str, str] = {}
    for line in text.splitlines():
        command = line.split("  #")[0].strip()
        if command.startswith("export "):
            assert site.sub(command) == f"export REDIS_URL={site.url}"
            continue
        kind = command.split()[1]
        command = command.replace("JOB", jobs.get(kind, jobs.get("call", "")))
        if kind == "events":
            events = site.start(command, read=True)
            assert events.stdout is not None
            assert "enqueued" in events.stdout.readline()  # the replayed log, then live
            events.send_signal(signal.SIGINT)
            assert events.wait(20) in (0, 130)  # stopped by Ctrl-C
            continue
        done = site.sh(command)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        if kind == "enqueue":
            job_id, *rest = done.stdout.splitlines()
            jobs["cancel" if "http" in command else "call"] = job_id
            if "--wait" in command:
                assert rest == ['{"path": "a.png", "width": 640}'], done.stdout


def test_every_sample_runs_or_says_why_not() -> None:
    handled = set(NOT_RUN) | set(RUNS)
    for _, text in BLOCKS:
        key = first_line(text)
        assert key in handled, f"README sample {key!r}: run it in {__file__} or list it in NOT_RUN"
    for key in handled:
        assert any(first_line(t) == key for _, t in BLOCKS), f"{key!r} is no README sample now"


def _quickstart(site: Site, text: str, tmp_path: Path) -> None:
    out = run_python(site, text, tmp_path)
    assert "{'path': 'a.png', 'width': 640}" in out
    assert out.index("started") < out.index("progress") < out.index("completed")


def _fragment(site: Site, text: str, tmp_path: Path) -> None:
    run_python(site, text, tmp_path)


def _production_worker(site: Site, text: str, tmp_path: Path) -> None:
    """Its worker runs the positional call the CLI sample sends, to the module's function."""
    done = site.sh(
        """redisjobs enqueue call '{"fn": "myapp.jobs:resize", "args": ["b.png", 8]}' --wait 60"""
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == '{"path": "b.png", "width": 8}'


def _sync_client(site: Site, text: str, tmp_path: Path) -> None:
    assert run_python(site, text, tmp_path).split() == ["pending"]


def _healthy(site: Site, queue: str) -> bool:
    return site.sh(f"redisjobs health --queue {queue}").returncode == 0


def _supervised_workers(site: Site, text: str, tmp_path: Path) -> None:
    proc = site.start(site.sub(text.replace("\\\n", " ")))
    for queue in ("default", "emails"):
        site.until(functools.partial(_healthy, site, queue), f"a worker on {queue}")
    assert stop(proc) == 0


def _cli(site: Site, text: str, tmp_path: Path) -> None:
    run_cli_sample(site, text)


def _dashboard(site: Site, text: str, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{site.dashboard_port}"
    page = site.sh(f"curl -sS -u user:readme-token -o /dev/null -w '%{{http_code}}' {base}/")
    assert page.stdout == "200", page.stderr


def _curl(site: Site, text: str, tmp_path: Path) -> None:
    done = site.sh(site.sub(text))
    assert done.returncode == 0, done.stderr
    assert re.search(r'"id":\s*"resize-a\.png"', done.stdout), done.stdout
    assert "event: end" in done.stdout
    assert re.search(r'"result":\s*\{"path":\s*"a\.png",\s*"width":\s*640\}', done.stdout)


def _metrics(site: Site, text: str, tmp_path: Path) -> None:
    port = free_port()
    site.start(f"redisjobs worker --queue readme-metrics --metrics-port {port}")
    script = text.replace("127.0.0.1:9100", f"127.0.0.1:{port}")
    site.until(lambda: site.sh(script).returncode == 0, "the metrics endpoint")
    assert "redisjobs_workers" in site.sh(script).stdout


RUNS: dict[str, tuple[Callable[[Site, str, Path], None], tuple[str, ...]]] = {
    # first line -> (how it runs, the module fixtures it needs)
    "import asyncio": (_quickstart, ()),
    "from redisjobs.sync import Client": (_sync_client, ()),
    "redisjobs worker --url redis://redis:6379/0 --queue default --concurrency 100 \\": (
        _production_worker,
        ("myapp_worker",),
    ),
    'HTTPExecutor(allow_hosts=["hooks.example.com"], headers={"Authorization": "Bearer …"}, '
    "timeout=10)": (_fragment, ()),
    'SubprocessExecutor(pass_env=["PGHOST"], timeout=600)': (_fragment, ()),
    'SSHExecutor(client_keys=["/etc/redisjobs/id_ed25519"], username="deploy")': (_fragment, ()),
    "class Greeter:": (_fragment, ()),
    "manager = JobManager(max_workers=4, max_retries=3, retry_delay=5.0, retry_backoff=2.0)": (
        _fragment,
        (),
    ),
    "from redisjobs.engine import Engine, ExecContext, Executor, MemoryBackend, RedisBackend, "
    "Worker": (_fragment, ()),
    "redisjobs worker --redis redis://redis:6379/0 --queue default --queue emails \\": (
        _supervised_workers,
        (),
    ),
    "export REDIS_URL=redis://localhost:6379/0": (_cli, ("myapp_worker",)),
    "redisjobs dashboard --redis redis://localhost:6379/0": (
        _dashboard,
        ("dashboard",),
    ),
    "from starlette.applications import Starlette": (_fragment, ()),
    "curl -sS -X POST http://127.0.0.1:8080/api/queues/default/jobs \\": (
        _curl,
        ("myapp_worker", "dashboard"),
    ),
    "curl -sS http://127.0.0.1:9100/metrics": (_metrics, ()),
}


@pytest.mark.parametrize(
    "text",
    [t for _, t in BLOCKS if first_line(t) in RUNS],
    ids=lambda t: first_line(t)[:40],
)
def test_sample_runs(text: str, site: Site, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    run, needs = RUNS[first_line(text)]
    for name in needs:
        request.getfixturevalue(name)
    run(site, text, tmp_path)
