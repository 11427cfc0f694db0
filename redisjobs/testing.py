"""Test helpers that users need as much as we do: a private redis-server and unique queues.

:class:`RedisServer` starts Debian's (or any) ``redis-server`` on a free loopback port with no
persistence, so a test session never touches a shared Redis and never needs FLUSHALL. Each test
takes its own queue name from :func:`unique_queue` instead (every key lives under that queue's
hash tag, so tests cannot see each other's jobs).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Self

from .eventlog import NAME as EVENTS_NAME

if TYPE_CHECKING:
    from redis import Redis


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that refuses every connection while the block runs.

    Bound but never listening: no server can take it meanwhile, and no client's connection
    can land on it either. (A connect to a port that is merely free, as :func:`free_port`'s
    is, can pick that same port as its own source port in the ephemeral range, connect to
    itself, and read back what it sent as if a server had answered.)
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def unique_queue(prefix: str = "t") -> str:
    """A queue name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def log_followers(redis: Redis) -> int:
    """How many connections of redisjobs clients read event logs now (a synchronous client):
    a process that follows a queue, or waits for a job, has one per queue once it is reading."""
    return sum(c["name"] == EVENTS_NAME and c["cmd"] == "xread" for c in redis.client_list())


class RedisServer:
    """A redis-server child process on a free loopback port.

    Args:
        port: the port (default: a free one).
        args: extra ``redis-server`` arguments, e.g. ``["--appendonly", "yes"]``.
        executable: the binary (default: ``redis-server`` on PATH).

    The defaults are ``--save "" --appendonly no``; `args` given later win.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        args: list[str] | None = None,
        executable: str | None = None,
    ) -> None:
        exe = executable or shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not found on PATH (apt-get install redis-server)")
        self.executable = exe
        self.port = port or free_port()
        self.args = list(args or [])
        self.dir = tempfile.mkdtemp(prefix="redisjobs-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        """The command line that starts the server."""
        cmd = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1"]
        return [*cmd, "--save", "", "--appendonly", "no", "--dir", self.dir, *self.args]

    def start(self, timeout: float = 10.0) -> Self:
        """Start the server and wait until it answers PING."""
        cmd = self.command()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {cmd}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout} s")

    def ping(self) -> bool:
        """True when the server answers PING (or asks for AUTH first): it is serving."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server (a crash, for fault tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.dir)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
