"""A real SSH server on loopback, for the ssh executor's tests.

The ``ssh`` executor is tested against a real SSH peer over TCP rather than a mock: this
asyncssh server runs in its own process, accepts only public-key logins with the keys in
`--authorized-keys`, and runs each exec request for real as ``/bin/sh -c COMMAND`` in a new
session (so the command leads its own process group). stdin, stdout and stderr are forwarded
as bytes, and the exit status (or the signal that killed the command) is sent back.

Like OpenSSH (since 7.9), a ``signal`` channel request signals the command's whole process
group. When a channel closes while its command still runs, the group gets SIGKILL, so a test
never leaves an orphan behind. Run as::

    python tests/executors/sshd.py --port P --host-key F --authorized-keys F [--log F]

It prints ``ready`` once it listens and stops on SIGTERM. `--log` gets one line per event the
tests look at: ``connection``, ``disconnect``, ``exec PID COMMAND``, ``signal NAME PID``,
``exit PID STATUS`` and ``kill PID`` (SIGKILL after the channel closed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from typing import TextIO

import asyncssh

Log = Callable[[str], None]
_running: set[asyncio.subprocess.Process] = set()


def _killpg(proc: asyncio.subprocess.Process, signum: int) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signum)


class _Session(asyncssh.SSHServerSession[bytes]):
    def __init__(self, log: Log) -> None:
        self._log = log
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None
        self._command = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._stdin: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._early_signals: list[int] = []  # arrived before the command started
        self._closed = False

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan

    def exec_requested(self, command: str) -> bool:
        self._command = command
        return True

    def session_started(self) -> None:
        asyncio.get_running_loop().create_task(self._run())

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self._stdin.put_nowait(data)

    def eof_received(self) -> bool:
        self._stdin.put_nowait(None)
        return True  # half-open: the command's output still flows back

    def signal_received(self, signal_name: str) -> None:
        signum = getattr(signal, f"SIG{signal_name}", None)
        if not isinstance(signum, signal.Signals):
            return
        if self._proc is None:
            self._early_signals.append(signum)
            return
        self._log(f"signal {signal_name} {self._proc.pid}")
        _killpg(self._proc, signum)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._proc is not None and self._proc.returncode is None:
            self._log(f"kill {self._proc.pid}")
            _killpg(self._proc, signal.SIGKILL)

    async def _run(self) -> None:
        assert self._chan is not None
        chan = self._chan
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            self._command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self._proc = proc
        _running.add(proc)
        self._log(f"exec {proc.pid} {self._command}")
        for signum in self._early_signals:
            _killpg(proc, signum)
        if self._closed:
            _killpg(proc, signal.SIGKILL)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        feeder = asyncio.create_task(self._feed(proc.stdin))
        await asyncio.gather(
            self._pump(proc.stdout, chan.write), self._pump(proc.stderr, chan.write_stderr)
        )
        status = await proc.wait()
        _running.discard(proc)
        feeder.cancel()
        self._log(f"exit {proc.pid} {status}")
        if self._closed:
            return
        if status < 0:
            chan.exit_with_signal(signal.Signals(-status).name.removeprefix("SIG"))
        else:
            chan.exit(status)

    async def _feed(self, stdin: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while (data := await self._stdin.get()) is not None:
                stdin.write(data)
                await stdin.drain()
            stdin.close()

    async def _pump(self, stream: asyncio.StreamReader, write: Callable[[bytes], None]) -> None:
        while data := await stream.read(65536):
            if not self._closed:
                write(data)


class _Server(asyncssh.SSHServer):
    def __init__(self, log: Log) -> None:
        self._log = log

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._log("connection")

    def connection_lost(self, exc: Exception | None) -> None:
        self._log("disconnect")

    def session_requested(self) -> _Session:
        return _Session(self._log)


async def serve(port: int, host_key: str, authorized_keys: str, log_file: TextIO) -> None:
    """Listen on 127.0.0.1:`port` until SIGTERM."""

    def log(line: str) -> None:
        log_file.write(line + "\n")
        log_file.flush()

    server = await asyncssh.create_server(
        lambda: _Server(log),
        "127.0.0.1",
        port,
        server_host_keys=[host_key],
        authorized_client_keys=authorized_keys,
        encoding=None,
        password_auth=False,
        kbdint_auth=False,
        agent_forwarding=False,
        x11_forwarding=False,
        allow_pty=False,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    for proc in list(_running):
        _killpg(proc, signal.SIGKILL)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host-key", required=True, help="private host key file")
    parser.add_argument("--authorized-keys", required=True, help="public keys allowed to log in")
    parser.add_argument("--log", help="file to append event lines to")
    args = parser.parse_args(argv)
    with open(args.log or os.devnull, "a") as log_file:
        asyncio.run(serve(args.port, args.host_key, args.authorized_keys, log_file))


if __name__ == "__main__":
    main()
