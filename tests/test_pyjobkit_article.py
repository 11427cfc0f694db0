"""The Pyjobkit article's complete programs (seed 001), run as written with only the import
prefix changed (and, for the SQL case, the backend: ``RedisBackend(url)`` for ``SQLBackend``,
as the migration guide says). Each serves until SIGTERM, as Pyjobkit's ``worker.run()`` does,
and must then stop cleanly."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from redisjobs.pyjobkit import Engine
from redisjobs.pyjobkit.backends.redis import RedisBackend
from redisjobs.testing import RedisServer

SEED = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "001_1b957661339b8364.txt"
pytestmark = pytest.mark.skipif(not SEED.exists(), reason="the seed documents are not beside")


def article_program(n: int) -> str:
    """The `n`-th Python block of the article, its imports moved to redisjobs.pyjobkit."""
    blocks = re.findall(r"```python\n(.*?)```", SEED.read_text(encoding="utf-8"), re.S)
    return re.sub(r"\bpyjobkit\b", "redisjobs.pyjobkit", blocks[n])


# Runs the program as `python case.py` would, with INFO logging on stderr, so that the test
# can tell when the worker serves (and has its SIGTERM handler).
BOOT = (
    "import logging, runpy, sys; logging.basicConfig(level=logging.INFO); "
    "runpy.run_path(sys.argv[1], run_name='__main__')"
)


def start(program: str, tmp_path: Path) -> subprocess.Popen[str]:
    path = tmp_path / "case.py"
    path.write_text(program)
    return subprocess.Popen(
        [sys.executable, "-c", BOOT, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def enqueued_id(proc: subprocess.Popen[str]) -> uuid.UUID:
    """The job id the program prints once it enqueued ("Задача поставлена: <id>")."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("Задача поставлена:"), (line, proc.stderr and proc.stderr.read())
    return uuid.UUID(line.split(":", 1)[1].strip())


def serving(proc: subprocess.Popen[str]) -> None:
    """Wait until the program's worker logs that it serves."""
    assert proc.stderr is not None
    seen: list[str] = []
    while "serving queue" not in (line := proc.stderr.readline()):
        assert line, seen  # the program ended
        seen.append(line)


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, as a supervisor stops a worker; its exit must be clean and quick."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


@pytest.mark.slow
def test_case_1_in_memory_runs_as_written(tmp_path: Path) -> None:
    program = article_program(0)
    assert "from redisjobs.pyjobkit.backends.memory import MemoryBackend" in program
    proc = start(program, tmp_path)
    try:
        enqueued_id(proc)
        serving(proc)
    finally:
        stop(proc)


@pytest.mark.slow
async def test_case_2_subprocess_with_redis_for_sql(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    program = article_program(2)
    program = program.replace("from sqlalchemy.ext.asyncio import create_async_engine\n", "")
    program = re.sub(r"\n *sql_engine = create_async_engine\(.*\)", "", program)
    program = program.replace(
        "from redisjobs.pyjobkit.backends.sql import SQLBackend",
        "from redisjobs.pyjobkit.backends.redis import RedisBackend",
    ).replace("SQLBackend(sql_engine,", f"RedisBackend({redis_server.url!r},")
    assert "sqlalchemy" not in program and "RedisBackend(" in program
    proc = start(program, tmp_path)
    try:
        job_id = enqueued_id(proc)
        serving(proc)
        async with Engine(backend=RedisBackend(redis_server.url)) as engine:
            async with asyncio.timeout(20):
                while (record := await engine.get(job_id))["status"] != "success":
                    await asyncio.sleep(0.05)
        assert record["result"]["stdout"] == "Hello from bash\n"
    finally:
        stop(proc)
