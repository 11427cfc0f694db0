"""What the driver measures with, independent of every library: Redis ``INFO``, ``/proc`` CPU.

Also the event loop the driver and the workers run on, and the small statistics the workloads
share. Standard library only (every peer's venv imports it).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import socket
import statistics
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


class RedisError(Exception):
    """An error reply from Redis."""


class InfoClient:
    """A blocking RESP2 client for ``INFO``, ``FLUSHALL`` and ``PING`` (nothing else is needed).

    Blocking on purpose: a snapshot takes well under a millisecond on loopback, and being
    independent of every library's client keeps the measurement identical for all of them.

    Args:
        url: ``redis://host:port/db``.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.db = int(parts.path.strip("/") or 0)
        self.sock = socket.create_connection((self.host, self.port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file: IO[bytes] = self.sock.makefile("rb")
        if self.db:
            self.command("SELECT", str(self.db))

    def close(self) -> None:
        """Close the connection."""
        self.file.close()
        self.sock.close()

    def command(self, *args: str) -> Any:
        """Send one command and return its decoded reply."""
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def _reply(self) -> Any:
        line = self.file.readline()
        if not line:
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.file.read(size + 2)[:-2].decode()
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise RedisError(f"unexpected reply {line!r}")

    def info(self, section: str) -> dict[str, str]:
        """``INFO section`` as a flat dict of strings."""
        text: str = self.command("INFO", section)
        pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
        return {k: v for k, v in pairs}

    def snapshot(self) -> Snapshot:
        """The server's CPU seconds and per-command call counts now (``INFO`` left out)."""
        cpu = self.info("cpu")
        calls: dict[str, int] = {}
        for key, value in self.info("commandstats").items():
            stats = dict(kv.split("=", 1) for kv in value.split(","))
            calls[key.removeprefix("cmdstat_")] = int(stats["calls"])
        calls.pop("info", None)
        return Snapshot(float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), calls)

    def used_memory(self) -> int:
        """``used_memory`` in bytes."""
        return int(self.info("memory")["used_memory"])


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Redis-server CPU seconds and command counts at one moment."""

    cpu: float
    calls: dict[str, int]


def calls_delta(
    before: Snapshot, after: Snapshot, minus: dict[str, int] | None = None
) -> dict[str, int]:
    """Commands run between two snapshots less `minus` (the driver's own), nonzero only."""
    minus = minus or {}
    out = {k: v - before.calls.get(k, 0) - minus.get(k, 0) for k, v in after.calls.items()}
    return dict(sorted(((k, v) for k, v in out.items() if v), key=lambda kv: -kv[1]))


# -- CPU of a process tree ------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()  # fields[0] is field 3 of proc(5), the state


def tree_cpu_seconds(pids: Sequence[int]) -> float | None:
    """User + system CPU seconds of `pids` and all their descendants, or None without /proc.

    Live descendants are found through their parent pid; children already reaped count through
    the parent's ``cutime``/``cstime`` (a forking worker's job processes, for instance).
    """
    if not Path("/proc/self/stat").exists():
        return None
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (f := _stat_fields(int(entry.name))) is not None:
            parents[int(entry.name)] = int(f[1])
    tree = set(pids)
    grew = True
    while grew:
        new = {p for p, pp in parents.items() if pp in tree and p not in tree}
        tree |= new
        grew = bool(new)
    total = 0
    for pid in tree:
        f = _stat_fields(pid)
        if f is not None:
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / os.sysconf("SC_CLK_TCK")


# -- event loop ---------------------------------------------------------------------------------


def loop_name() -> str:
    """``uvloop <version>`` when uvloop is installed, else ``asyncio``."""
    try:
        return f"uvloop {importlib.metadata.version('uvloop')}"
    except importlib.metadata.PackageNotFoundError:
        return "asyncio"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on uvloop when it is importable (every async peer's venv has it)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


# -- statistics ---------------------------------------------------------------------------------


SCRIPT_COMMANDS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")


def script_calls(calls: dict[str, int]) -> int:
    """How many of `calls` were script invocations (their inner commands are counted apart)."""
    return sum(calls.get(name, 0) for name in SCRIPT_COMMANDS)


def per_job(calls: dict[str, int], n: int) -> dict[str, float]:
    """Commands per job by name, those below 0.01 per job left out."""
    return {k: round(v / n, 2) for k, v in calls.items() if v * 100 >= n}


def percentile(values: Sequence[float], pct: int) -> float:
    """The `pct`-th percentile (inclusive method; one value is every percentile)."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]
