"""Every code sample of README.md runs here, as real processes, as written but for addresses.

Python samples run against this module's own redis-server (fragments with top-level ``await``
get a connected ``client`` and the names they use); shell samples run in bash with ``redisjobs``,
``uvicorn`` and ``flask`` on PATH, the worker and dashboard they need started from the README's
own command lines. ``myapp`` is a package of the samples that begin ``# myapp/<module>.py``, and
``myapp.reports`` holds the plain ``resize`` of "Jobs without tasks"; the notebook's cells run in
IPython. Redis URLs and ports are the only substitutions. A sample that cannot run here is
listed in NOT_RUN with the reason, so a new sample fails this test until it is either run or
listed.
"""

from __future__ import annotations

import functools
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from redisjobs.testing import RedisServer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
BLOCKS = [(m.group(1), m.group(2)) for m in FENCE.finditer(README)]
MODULE = re.compile(r"\A# (myapp/\w+\.py)\n")
"""The first line of a sample that is a module of `myapp`, naming its file."""

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
    "export REDIS_URL='redis+sentinel://:PASSWORD@sentinel-1:26379,sentinel-2:26379,"
    "sentinel-3:26379/mymaster/0'": (
        "names a deployment's hosts; tests/faults/test_sentinel.py runs `redisjobs worker --url "
        "redis+sentinel://... --durable` against a local master, replica and 3 sentinels"
    ),
    "export REDIS_URL='redis+cluster://:PASSWORD@redis-1:6379,redis-2:6379/'": (
        "names a deployment's hosts; tests/test_cluster.py runs a partitioned queue and "
        "tests/faults/test_cluster.py `redisjobs worker --url redis+cluster://...` against a "
        "local cluster of 3 masters and 3 replicas"
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


def block_text(start: str) -> str:
    return next(text for _, text in BLOCKS if text.startswith(start))


def first_line(text: str) -> str:
    """A sample's name: its first line without a trailing comment."""
    return " ".join(text.splitlines()[0].split("  #")[0].split())


def plain_resize() -> str:
    """The plain ``resize`` of "Jobs without tasks", for ``myapp.reports``."""
    source = block_text("import asyncio")
    found = re.search(r"^async def resize\(.*?(?=^\S)", source, re.MULTILINE | re.DOTALL)
    assert found, "'Jobs without tasks' defines no resize()"
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

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
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
    for _, text in BLOCKS:
        module = MODULE.match(text)
        if module:
            (home / module.group(1)).write_text(text)
    (home / "myapp" / "reports.py").write_text(plain_resize())
    (home / "bin").mkdir()
    for command in ("redisjobs", "uvicorn", "flask"):
        shim = home / "bin" / command
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {command} "$@"\n')
        shim.chmod(0o755)
    with RedisServer() as redis:
        made = Site(redis, home)
        yield made
        for proc in reversed(made.procs):
            stop(proc)


@pytest.fixture(scope="module")
def myapp_worker(site: Site) -> subprocess.Popen[str]:
    """The Quickstart's worker command, serving `myapp.tasks:app` (on queue default)."""
    command = site.sub(block_text("redisjobs worker myapp.tasks:app --concurrency"))
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


def run_python(site: Site, text: str, tmp_path: Path, *, db: int = 1) -> str:
    """Run a sample on database `db` (1 by default: no worker of these tests serves it)."""
    url = f"{site.url[:-1]}{db}"
    script = tmp_path / "block.py"
    script.write_text(site.sub(text).replace(site.url, url))
    env = {**site.env, "REDIS_URL": url}
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


FOLLOWERS = {"events": "enqueued", "info": "QUEUE"}
"""The sample's commands that run until Ctrl-C -> what their first line shows (the replayed
log of `events`, the first snapshot of `info --watch`)."""


def run_cli_sample(site: Site, text: str) -> None:
    """The command-line sample, line by line: JOB is the call job it enqueued (for `cancel`
    and then `requeue`, the delayed http one, which is still there to cancel)."""
    jobs: dict[str, str] = {}
    for line in text.splitlines():
        command = line.split("  #")[0].strip()
        if command.startswith("export "):
            assert site.sub(command) == f"export REDIS_URL={site.url}"
            continue
        kind = command.split("redisjobs ", 1)[1].split()[0]
        target = "cancel" if kind == "requeue" else kind
        command = command.replace("JOB", jobs.get(target, jobs.get("call", "")))
        if kind == "events" or "--watch" in command:
            follower = site.start(command, read=True)
            assert follower.stdout is not None
            assert FOLLOWERS[kind] in follower.stdout.readline()
            follower.send_signal(signal.SIGINT)
            assert follower.wait(20) in (0, 130)  # stopped by Ctrl-C
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


def _tasks_module(site: Site, text: str, tmp_path: Path) -> None:
    """The module names its task ``module:qualname``; calling the task runs it here."""
    code = (
        "import asyncio\nfrom myapp.tasks import app, resize\n"
        "print(resize.name, app.queues, asyncio.run(resize('a.png', 64)))"
    )
    done = site.python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "myapp.tasks:resize ['default'] {'path': 'a.png', 'width': 64}"


def _production_worker(site: Site, text: str, tmp_path: Path) -> None:
    """The app's worker runs the task by its name, for a positional call from the CLI."""
    done = site.sh(
        """redisjobs enqueue call '{"fn": "myapp.tasks:resize", "args": ["b.png", 8]}' --wait 60"""
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == '{"path": "b.png", "width": 8}'


def _producer(site: Site, text: str, tmp_path: Path) -> None:
    """Enqueued through the task, run by the app's worker process, followed to its result."""
    out = run_python(site, text, tmp_path, db=0)
    assert out.splitlines()[-1] == "{'path': 'a.png', 'width': 640}"
    assert out.index("started") < out.index("progress") < out.index("completed")


def _imports(site: Site, text: str, tmp_path: Path) -> None:
    """A module of `myapp` imports (its service's sample runs it end to end)."""
    module = MODULE.match(text)
    assert module
    name = module.group(1).removesuffix(".py").replace("/", ".")
    done = site.python(f"import {name}")
    assert done.returncode == 0, done.stderr


def _serve(site: Site, text: str, default_port: int) -> tuple[subprocess.Popen[str], httpx.Client]:
    """Start the sample's server on a free port; an HTTP client of it once it answers."""
    port = free_port()
    proc = site.start(text.strip().replace(f"--port {default_port}", f"--port {port}"))
    log = site.home / f"proc-{len(site.procs) - 1}.log"
    # Not a `with` block of the caller's: httpx opens a client once, and this one is used here.
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=40)

    def answers() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            http.get("/resize/none")
        except httpx.TransportError:
            return False
        return True

    site.until(answers, text.strip())
    return proc, http


def _completed(http: httpx.Client, job_id: str) -> dict[str, Any]:
    """The service's view of a job, polled until it completed (or a minute passed)."""
    deadline = time.monotonic() + 60
    while True:
        reply = http.get(f"/resize/{job_id}")
        assert reply.status_code == 200, reply.text
        view: dict[str, Any] = reply.json()
        if view["status"] == "completed" or time.monotonic() > deadline:
            return view
        time.sleep(0.1)


def _unknown_ids_are_404(http: httpx.Client) -> None:
    for job_id in ("no-such-job", "-x", "x" * 300):  # the last two: ids no job can have
        assert http.get(f"/resize/{job_id}").status_code == 404


def _fastapi(site: Site, text: str, tmp_path: Path) -> None:
    """uvicorn serving myapp.api beside the app's worker: 202 with an id, then the result."""
    server, http = _serve(site, text, 8000)
    try:
        _unknown_ids_are_404(http)
        assert http.post("/resize", json={"path": "a.png"}).status_code == 422
        ids = []
        for n in range(3):
            reply = http.post("/resize", json={"path": f"{n}.png", "width": n})
            assert reply.status_code == 202, reply.text
            ids.append(reply.json()["id"])
        for n, job_id in enumerate(ids):
            assert _completed(http, job_id) == {
                "status": "completed",
                "progress": 100.0,
                "result": {"path": f"{n}.png", "width": n},
            }
    finally:
        http.close()
    assert stop(server) in (0, -signal.SIGTERM)  # uvicorn ends by the signal it handled
    log = (site.home / f"proc-{site.procs.index(server)}.log").read_text()
    assert "Application shutdown complete" in log and "Traceback" not in log, log


def _flask(site: Site, text: str, tmp_path: Path) -> None:
    """Flask's threaded server beside the app's worker: views in many threads at once, each
    enqueueing through the one sync client; half of them wait for the result in the view."""
    server, http = _serve(site, text, 5000)

    def order(n: int) -> dict[str, Any]:
        query = "?wait=30" if n % 2 else ""
        reply = http.post(f"/resize{query}", json={"path": f"{n}.png", "width": n})
        assert reply.status_code == (200 if query else 202), reply.text
        body: dict[str, Any] = reply.json()
        return body

    try:
        _unknown_ids_are_404(http)
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(order, range(8)))
        for n, reply in enumerate(replies):
            expected = {"path": f"{n}.png", "width": n}
            if n % 2:
                assert reply["result"] == expected
            assert _completed(http, reply["id"])["result"] == expected
    finally:
        http.close()
    stop(server)


NOTEBOOK = """\
import sys
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
for cell in open(sys.argv[1]).read().split("# %%")[1:]:
    done = shell.run_cell("# %%" + cell, store_history=True)
    done.raise_error()
    print("=>", repr(done.result))
"""
"""Runs a notebook sample's cells (split at ``# %%``) one by one in IPython, printing each
cell's value; top-level ``await`` runs on IPython's event loop, as in Jupyter."""


def _notebook(site: Site, text: str, tmp_path: Path) -> None:
    cells = tmp_path / "cells.py"
    cells.write_text(text)
    done = subprocess.run(
        [sys.executable, "-c", NOTEBOOK, str(cells)],
        cwd=site.home,
        env=site.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    values = [line for line in done.stdout.splitlines() if line.startswith("=> ")]
    assert values == [
        "=> None",
        f"=> {[n * n for n in range(10)]}",
        "=> {'path': 'a.png', 'width': 640}",
        "=> None",
    ], done.stdout
    assert done.stderr == ""  # no task left pending: the last cell closed what the cells opened


def _sync_client(site: Site, text: str, tmp_path: Path) -> None:
    assert run_python(site, text, tmp_path).split() == ["pending"]


def _flows(site: Site, text: str, tmp_path: Path) -> None:
    """The pipeline runs across both queues; then a flow cancelled before it ran, a step that
    fails the rest of its chain and the admin's job, and its retry going on to the end."""
    lines = run_python(site, text, tmp_path).splitlines()
    done = "Ваше видео готово: https://cdn.example.com/v.mp4"
    assert len(lines) == 4 and lines[0] == lines[3] == done, lines
    assert lines[1].startswith("dependency ") and lines[1].endswith("GPU out of memory"), lines
    assert lines[2].startswith("failed: {'") and "GPU out of memory" in lines[2], lines


def _healthy(site: Site, queue: str) -> bool:
    return site.sh(f"redisjobs health --queue {queue}").returncode == 0


def _supervised_workers(site: Site, text: str, tmp_path: Path) -> None:
    proc = site.start(site.sub(text.replace("\\\n", " ")))
    for queue in ("default", "emails"):
        site.until(functools.partial(_healthy, site, queue), f"a worker on {queue}")
    assert stop(proc) == 0


def _cli(site: Site, text: str, tmp_path: Path) -> None:
    run_cli_sample(site, text)


def _cleaning_cli(site: Site, text: str, tmp_path: Path) -> None:
    done = site.sh("set -e\n" + site.sub(text))
    assert done.returncode == 0, done.stderr
    assert "purged 0 completed jobs" in done.stdout and '"drained": 0' in done.stdout
    assert "obliterated queue scratch" in done.stdout


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


def _schedules(site: Site, text: str, tmp_path: Path) -> None:
    """The app's worker upserts and fires the task's schedule; the cron one waits."""
    lines = run_python(site, text, tmp_path).splitlines()
    nightly, tick = (line.split(" | ") for line in lines)
    assert nightly[:2] == ["nightly-digest", "30 2 * * * (Europe/Berlin)"]
    assert nightly[2].startswith("0 False 20")  # no run yet, a next run
    assert tick[:2] == ["reports.tick", "every 1s"]
    runs, has_job, _next = tick[2].split(" ", 2)
    assert int(runs) >= 2 and has_job == "True"


def _limits(site: Site, text: str, tmp_path: Path) -> None:
    """The limits read back as set, and each tenant's job waits in its own key."""
    lines = run_python(site, text, tmp_path).splitlines()
    assert lines == [
        "[(None, 100.0, None), ('*', 5.0, 2)]",
        "[('tenant-a', 1), ('tenant-b', 1)]",
    ]


RUNS: dict[str, tuple[Callable[[Site, str, Path], None], tuple[str, ...]]] = {
    "# schedules.py": (_schedules, ()),
    # first line -> (how it runs, the module fixtures it needs)
    "# myapp/tasks.py": (_tasks_module, ()),
    "from redisjobs.sync import Client": (_sync_client, ()),
    "redisjobs worker myapp.tasks:app --concurrency 100 --lease-ttl 30 --grace 30": (
        _production_worker,
        ("myapp_worker",),
    ),
    "# producer.py": (_producer, ("myapp_worker",)),
    "import asyncio": (_quickstart, ()),
    "# myapp/api.py": (_imports, ()),
    "uvicorn myapp.api:api --port 8000": (_fastapi, ("myapp_worker",)),
    "# myapp/web.py": (_imports, ()),
    "# myapp/video.py": (_imports, ()),
    "from myapp import video": (_flows, ()),
    "flask --app myapp.web run --port 5000": (_flask, ("myapp_worker",)),
    "# %% a cell": (_notebook, ("myapp_worker",)),
    'HTTPExecutor(allow_hosts=["hooks.example.com"], headers={"Authorization": "Bearer …"}, '
    "timeout=10)": (_fragment, ()),
    'SubprocessExecutor(pass_env=["PGHOST"], timeout=600)': (_fragment, ()),
    'SSHExecutor(client_keys=["/etc/redisjobs/id_ed25519"], username="deploy")': (_fragment, ()),
    "class Greeter:": (_fragment, ()),
    "# priorities and pausing, on a queue of its own with one worker slot": (_fragment, ()),
    "from redisjobs import Keep": (_fragment, ()),
    "# at most 100 starts a second for the whole queue, 5 a second and 2 at once per tenant": (
        _limits,
        (),
    ),
    "manager = JobManager(max_workers=4, max_retries=3, retry_delay=5.0, retry_backoff=2.0)": (
        _fragment,
        (),
    ),
    "from redisjobs.pyjobkit import Engine, ExecContext, Executor, MemoryBackend, Worker": (
        _fragment,
        (),
    ),
    "redisjobs worker myapp.tasks:app --redis redis://redis:6379/0 --queue default --queue "
    "emails \\": (
        _supervised_workers,
        (),
    ),
    "export REDIS_URL=redis://localhost:6379/0": (_cli, ("myapp_worker",)),
    "redisjobs purge default --status completed --older-than 3600": (_cleaning_cli, ()),
    'await client.enqueue_many([("call", {"fn": "myapp.tasks:resize"})] * 3, queue="scratch")': (
        _fragment,
        (),
    ),
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
