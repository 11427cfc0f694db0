"""Running an executor on its own: a real ExecContext reporting to a recording host."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from redisjobs import ExecContext


class Host:
    """The worker's side of an ExecContext, keeping what a job logged and reported."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.progress: list[tuple[float, str | None]] = []

    def write_log(self, job_id: str, line: str) -> None:
        self.lines.append(line)

    async def write_progress(self, ctx: ExecContext) -> None:
        self.progress.append((ctx.progress, ctx.progress_message))

    async def read_parents(self, job_id: str) -> dict[bytes, bytes]:
        return {}

    async def logged(self, text: str, timeout: float = 5.0) -> None:
        """Return once a log line containing `text` was written."""
        async with asyncio.timeout(timeout):
            while not any(text in line for line in self.lines):
                await asyncio.sleep(0.01)


@pytest.fixture
def host() -> Host:
    return Host()


@pytest.fixture
def ctx(host: Host) -> ExecContext:
    return ExecContext(host, job_id="j1", queue="q", kind="test", attempt=1, lease=1)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


async def gone(pids: list[int], timeout: float = 5.0) -> None:
    """Return once none of `pids` is alive."""
    async with asyncio.timeout(timeout):
        while any(alive(p) for p in pids):
            await asyncio.sleep(0.02)


async def pid_in(path: Path, timeout: float = 5.0) -> int:
    """The pid a command wrote to `path` (waiting for it to appear)."""
    async with asyncio.timeout(timeout):
        while not (path.exists() and path.read_text().strip()):
            await asyncio.sleep(0.01)
    return int(path.read_text())
