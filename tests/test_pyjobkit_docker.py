"""The Pyjobkit face's DockerExecutor: its payload checks and its missing-extra error anywhere,
and containers run for real on a Docker daemon when one answers (these skip without aiodocker
or a daemon). The image is built here from this machine's shell, so no registry is needed."""

from __future__ import annotations

import asyncio
import importlib
import io
import shutil
import subprocess
import sys
import tarfile
import uuid
from typing import Any

import pytest

from redisjobs.errors import JobTimeout, PayloadError
from redisjobs.pyjobkit import Engine, Worker
from redisjobs.pyjobkit.backends.store import StoreBackend
from redisjobs.pyjobkit.executors import DockerExecutor
from redisjobs.pyjobkit.executors.docker import (
    JOB_LABEL,
    DockerDependencyMissing,
    DockerExecutionError,
    _tagged,
)
from tests.test_pyjobkit_http import Lines

IMAGE = "redisjobs-test-sh:latest"


def _rootfs() -> bytes:
    """A build context: this machine's sh and sleep with the libraries they load, FROM scratch.

    Each file goes in at the path the loader looks for (links followed), so nothing in the
    image depends on how this machine arranges its links."""
    if shutil.which("ldd") is None:
        pytest.skip("ldd is needed to copy the shell into an image")
    files = {"/bin/sh", "/bin/sleep"}
    for program in ("/bin/sh", "/bin/sleep"):
        out = subprocess.run(["ldd", program], capture_output=True, text=True).stdout
        files |= {word for word in out.split() if word.startswith("/")}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", dereference=True) as tar:
        dockerfile = b"FROM scratch\nCOPY root/ /\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        for path in sorted(files):
            tar.add(path, arcname=f"root{path}")
    return buffer.getvalue()


async def _build() -> None:
    aiodocker = importlib.import_module("aiodocker")
    docker = aiodocker.Docker()
    try:
        await docker.version()
        await docker.images.build(fileobj=io.BytesIO(_rootfs()), encoding="identity", tag=IMAGE)
    finally:
        await docker.close()


@pytest.fixture(scope="module")
def image() -> str:
    """The test image on a live daemon; skips without aiodocker or a daemon."""
    try:
        importlib.import_module("aiodocker")
    except ImportError:
        pytest.skip("aiodocker (the docker extra) is not installed")
    try:
        asyncio.run(_build())
    except pytest.skip.Exception:
        raise
    except Exception as exc:  # no daemon, no socket, no permission
        pytest.skip(f"no Docker daemon answers: {exc}")
    return IMAGE


def job(image: str, script: str, **more: Any) -> dict[str, Any]:
    """A payload running `script` in the test image (built here: nothing to pull)."""
    return {"image": image, "pull": False, "command": ["sh", "-c", script], **more}


async def _containers_of(job_id: uuid.UUID) -> list[Any]:
    docker = importlib.import_module("aiodocker").Docker()
    try:
        found = await docker.containers.list(all=True, filters={"label": [f"{JOB_LABEL}={job_id}"]})
        return list(found)
    finally:
        await docker.close()


async def test_payloads_are_checked_before_docker_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiodocker", None)  # as if the extra were not installed
    run, ctx = DockerExecutor(), Lines()
    bad: list[Any] = [
        {},
        {"image": ""},
        {"image": "x", "env": {"A B": "1"}},
        {"image": "x", "command": []},
        {"image": "x", "timeout_s": -1},
        {"image": "x", "pull": "no"},
        ["image"],
    ]
    for payload in bad:
        with pytest.raises(PayloadError):  # a ValueError too, as Pyjobkit raises
            await run.run(job_id=uuid.uuid4(), payload=payload, ctx=ctx)
    with pytest.raises(DockerDependencyMissing, match=r"pip install 'redisjobs\[docker\]'"):
        await run.run(job_id=uuid.uuid4(), payload={"image": "alpine"}, ctx=ctx)
    with pytest.raises(DockerDependencyMissing):  # the default image counts as one
        await DockerExecutor(default_image="alpine").run(job_id=uuid.uuid4(), payload={}, ctx=ctx)


def test_an_untagged_image_is_pulled_as_latest_not_as_every_tag() -> None:
    assert _tagged("alpine") == "alpine:latest"
    assert _tagged("registry.local:5000/team/app") == "registry.local:5000/team/app:latest"
    for named in ("alpine:3.20", "registry.local:5000/app:1", "app@sha256:" + "0" * 64):
        assert _tagged(named) == named


async def test_a_container_runs_to_its_end_and_is_removed(image: str) -> None:
    ctx, job_id = Lines(), uuid.uuid4()
    payload = job(image, 'echo "hello $WHO"; echo oops >&2', env={"WHO": "you"})
    result = await DockerExecutor().run(job_id=job_id, payload=payload, ctx=ctx)
    assert result["exit_code"] == 0
    assert (result["stdout"], result["stderr"]) == ("hello you\n", "oops\n")
    assert ("stdout", "hello you") in ctx.lines and ("stderr", "oops") in ctx.lines
    assert await _containers_of(job_id) == []


async def test_a_nonzero_exit_raises_with_its_code_and_output(image: str) -> None:
    run, job_id = DockerExecutor(), uuid.uuid4()
    with pytest.raises(DockerExecutionError, match="status 3: broke") as err:
        await run.run(job_id=job_id, payload=job(image, "echo broke >&2; exit 3"), ctx=Lines())
    assert err.value.exit_code == 3 and err.value.stderr == "broke\n"
    assert await _containers_of(job_id) == []
    job_id = uuid.uuid4()  # a container that cannot start is removed too
    payload = {**job(image, ""), "command": ["no-such-program"]}
    with pytest.raises(Exception, match="no-such-program"):
        await run.run(job_id=job_id, payload=payload, ctx=Lines())
    assert await _containers_of(job_id) == []


async def test_timeout_and_cancel_remove_the_running_container(image: str) -> None:
    run, job_id = DockerExecutor(), uuid.uuid4()
    with pytest.raises(JobTimeout, match="after 1 s"):
        await run.run(job_id=job_id, payload=job(image, "sleep 30", timeout_s=1), ctx=Lines())
    assert await _containers_of(job_id) == []
    job_id = uuid.uuid4()
    task = asyncio.create_task(run.run(job_id=job_id, payload=job(image, "sleep 30"), ctx=Lines()))
    async with asyncio.timeout(30):
        while not await _containers_of(job_id):  # cancelled as soon as it exists
            await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _containers_of(job_id) == []


async def test_a_worker_runs_docker_jobs(image: str, backend: StoreBackend) -> None:
    async with Engine(backend=backend, executors=[DockerExecutor()]) as engine:
        good = await engine.enqueue(kind="docker", payload=job(image, "echo done"))
        bad = await engine.enqueue(kind="docker", payload=job(image, "exit 3"), max_attempts=2)
        worker = Worker(engine, retry_policy="fixed:0", poll_interval=0.05, handle_signals=False)
        async with worker:
            async with asyncio.timeout(30):
                while {(await engine.get(j))["status"] for j in (good, bad)} != {
                    "success",
                    "failed",
                }:
                    await asyncio.sleep(0.05)
        assert (await engine.get(good))["result"]["stdout"] == "done\n"
        failed = await engine.get(bad)  # retried by the worker's policy, then given up
        assert failed["attempts"] == 2 and "status 3" in str(failed["error"])
