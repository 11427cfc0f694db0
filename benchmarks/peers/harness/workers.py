"""Worker subprocesses of an adapter module, gated so that start-up is never timed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator

from harness.adapter import Adapter

READY_TIMEOUT = 90.0
"""Seconds a worker process may take to import its library (slow on a loaded 2-core machine)."""
STOP_TIMEOUT = 5.0


class WorkerProcess:
    """A worker subprocess of the adapter module, gated: it runs the library only after ``go``.

    Args:
        module: the adapter's module name (``adapters.<lib>``), run with ``python -m``.
        url: the Redis URL.
        queue: the queue to serve.
        concurrency: the worker's concurrency.
    """

    def __init__(self, module: str, url: str, queue: str, concurrency: int) -> None:
        self.cmd = [sys.executable, "-m", module, "--worker", "--url", url, "--queue", queue]
        self.cmd += ["--concurrency", str(concurrency)]
        # Closed in stop(); a file, not a pipe, so a chatty worker can never block on it.
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.proc is not None
        return self.proc.pid

    async def spawn(self) -> None:
        """Start the process (without waiting for it)."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self.stderr,
        )

    def stderr_tail(self, chars: int = 600) -> str:
        """The end of what the process wrote to stderr, for error messages."""
        self.stderr.seek(0)
        text = self.stderr.read().decode(errors="replace").strip()
        return text[-chars:]

    def failure(self, what: str) -> RuntimeError:
        """An error naming the exit code and the process's last words."""
        code = None if self.proc is None else self.proc.returncode
        return RuntimeError(f"{what} (exit code {code}): {self.stderr_tail() or 'no stderr'}")

    async def ready(self) -> None:
        """Wait until the process has imported everything and printed ``ready``."""
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                line = await asyncio.wait_for(
                    self.proc.stdout.readline(), max(0.1, deadline - time.monotonic())
                )
            except TimeoutError:
                raise self.failure(f"worker not ready within {READY_TIMEOUT:.0f} s") from None
            if not line:
                await self.proc.wait()
                raise self.failure("worker exited before it was ready")
            if line.strip() == b"ready":
                return

    def go(self) -> None:
        """Let the worker start its library's run loop."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")

    def check(self) -> None:
        """Raise if the worker has exited."""
        if self.proc is not None and self.proc.returncode is not None:
            raise self.failure("worker process exited")

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT` (measurements are already taken)."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        self.stderr.close()


@contextlib.asynccontextmanager
async def worker_processes(
    module: str, url: str, queue: str, concurrency: int, count: int
) -> AsyncIterator[list[WorkerProcess]]:
    """`count` ready (imported, gated) worker processes on `queue` for the block."""
    procs = [WorkerProcess(module, url, queue, concurrency) for _ in range(count)]
    try:
        for p in procs:
            await p.spawn()
        for p in procs:
            await p.ready()
        yield procs
    finally:
        await asyncio.gather(*(p.stop() for p in procs))


def worker_main(adapter: Adapter, args: argparse.Namespace) -> None:
    """Worker-process mode: imports are done; say ``ready``, wait for ``go``, serve."""
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    # Nobody reads stdout any more: a chatty library must not fill the pipe and stall.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    adapter.serve_blocking(args.url, args.queue, args.concurrency)
