"""Kind ``subprocess``: run a local command, stream its output, leave no process behind.

Payload::

    {"argv": ["pg_dump", "-f", "/backups/db.sql", "shop"],  # no shell: argv runs as given
     "cwd": "/srv", "env": {"PGHOST": "db"}, "timeout": 600, "stdin": "..."}
    {"cmd": "pg_dump shop | gzip > /backups/shop.gz"}  # a shell string: only with allow_shell
    {"cmd": ["pg_dump", "shop"]}  # a list as "cmd" is an argv, as Pyjobkit takes it

Result: ``{"returncode": 0, "stdout": "...", "stderr": "..."}`` (the last `output_limit` bytes of
each). Every output line goes to the job's log as it arrives; a line ``::progress 42`` (or
``::progress 42 message``) sets the job's progress instead. A non-zero exit fails the job with the
exit code and the end of stderr, so its retry policy applies; a command that cannot be started
(no such executable, a shell string on a worker without `allow_shell`) fails for good.

The child gets a minimal environment (``PATH``, ``HOME``, ``LANG``, the variables named in
`pass_env`, the worker's `env`, then the payload's ``env``), never the rest of the worker's. A
payload may not set variables that change what a program loads or runs (``LD_*``, ``PYTHON*``,
``PATH``, ``BASH_ENV``, …; see ``_confine.py``) unless the worker names those it may set
(`allow_env`), and may set a ``cwd`` only inside a directory the worker allows (`allow_cwd`).
Each command runs in a new session, so it leads its own process group. On timeout or cancel the
whole group gets SIGTERM, then SIGKILL after `kill_grace` seconds (each signal said in the job's
log); processes the command left behind in its group when it exited are ended the same way. If
the worker dies, even by SIGKILL, a watchdog process (one per worker, see ``_watchdog.py``) ends
the groups still running; it finds them by ``REDISJOBS_WATCHDOG``, the one variable of ours every
command also gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ExecutorError, JobTimeout, PayloadError
from . import ExecContext
from ._common import command, env_map, fields, opt_seconds, opt_str
from ._confine import CwdPolicy, EnvPolicy
from ._output import Output
from .base import ExecutorBase

log = logging.getLogger("redisjobs.executors.subprocess")

BASE_ENV = ("PATH", "HOME", "LANG")
"""Variables of the worker's environment every command gets."""

_EXAMPLE = '{"argv": ["echo", "hi"]}'


@dataclass(frozen=True, slots=True)
class _Command:
    argv: list[str]
    cwd: str | None
    env: dict[str, str]
    timeout: float | None
    stdin: bytes | None


class _Watchdog:
    """The worker's side of ``_watchdog.py``: started with the first command."""

    def __init__(self, grace: float) -> None:
        self._grace = grace
        self._proc: asyncio.subprocess.Process | None = None
        self.mark = {"REDISJOBS_WATCHDOG": secrets.token_hex(8)}
        """The variable every command gets, so the watchdog finds them all (see _watchdog.py)."""

    async def start(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            return
        script = Path(__file__).with_name("_watchdog.py")
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            str(script),
            str(self._grace),
            self.mark["REDISJOBS_WATCHDOG"],
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # signals sent to the worker's group must not reach it
        )

    def _send(self, line: bytes) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self._proc.stdin.write(line)

    def track(self, pgid: int) -> None:
        self._send(b"+%d\n" % pgid)

    def forget(self, pgid: int) -> None:
        self._send(b"-%d\n" % pgid)

    async def aclose(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()
            with contextlib.suppress(ProcessLookupError):
                await asyncio.wait_for(proc.wait(), self._grace + 5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # a member changed its user; it is still there
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class SubprocessExecutor(ExecutorBase):
    """Runs local commands.

    Args:
        allow_shell: run ``cmd`` strings through `shell` (off: only ``argv`` lists run).
        shell: the shell for ``cmd`` strings.
        pass_env: names of the worker's environment variables commands also get.
        env: variables every command gets (the payload's ``env`` may override them).
        timeout: seconds a command may run when its payload sets no ``timeout``.
        kill_grace: seconds between SIGTERM and SIGKILL when a command's group is stopped.
        output_limit: bytes of each of stdout and stderr kept in the result.
        allow_env: the variable names a payload's ``env`` may set (``APP_*`` for a prefix);
            None: any but a deny-list of those that change what programs load or run.
        allow_cwd: directories a payload's ``cwd`` may be in (checked with symlinks and
            ``..`` resolved); none: a payload may not set ``cwd``.
    """

    kind = "subprocess"

    def __init__(
        self,
        *,
        allow_shell: bool = False,
        shell: str = "/bin/sh",
        pass_env: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        kill_grace: float = 5.0,
        output_limit: int = 64 * 1024,
        allow_env: Iterable[str] | None = None,
        allow_cwd: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        self.allow_shell = allow_shell
        self.shell = shell
        self.pass_env = tuple(pass_env)
        self.env = dict(env or {})
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.output_limit = output_limit
        self.allow_env = EnvPolicy(allow_env)
        self.allow_cwd = CwdPolicy(allow_cwd)
        self._watchdog = _Watchdog(kill_grace)

    def _command(self, payload: Any) -> _Command:
        p = fields(payload, self.kind, _EXAMPLE)
        argv, cmd = command(p)
        if cmd is not None:
            if not self.allow_shell:
                raise PayloadError(
                    'this worker runs no shell strings: send "argv" as a list, or start the '
                    "worker with allow_shell=True (--allow-shell)"
                )
            argv = [self.shell, "-c", cmd]
        assert argv is not None
        stdin = p.get("stdin")
        if isinstance(stdin, str):
            stdin = stdin.encode()
        elif stdin is not None and not isinstance(stdin, bytes):
            raise PayloadError('"stdin" must be a string or bytes')
        env = env_map(p)
        self.allow_env.check(env)
        return _Command(
            argv=argv,
            cwd=self.allow_cwd.resolve(opt_str(p, "cwd")),
            env=self._environment(env),
            timeout=opt_seconds(p, "timeout", self.timeout),
            stdin=stdin,
        )

    def _environment(self, extra: dict[str, str]) -> dict[str, str]:
        env = {k: os.environ[k] for k in (*BASE_ENV, *self.pass_env) if k in os.environ}
        env.setdefault("PATH", os.defpath)
        env.update(self.env)
        env.update(extra)
        env.update(self._watchdog.mark)
        return env

    async def run(self, *, job_id: str, payload: Any, ctx: ExecContext) -> dict[str, Any]:
        """Run the payload's command to its end and return its exit code and output tails."""
        returncode, out, err = await self.execute(payload, ctx)
        if returncode != 0:
            raise ExecutorError(f"{_exit_text(returncode)}: {err.excerpt() or '(no stderr)'}")
        return {"returncode": returncode, "stdout": out.text(), "stderr": err.text()}

    async def execute(self, payload: Any, ctx: ExecContext) -> tuple[int, Output, Output]:
        """Run the payload's command to its end: its exit code, and its stdout and stderr."""
        spec = self._command(payload)
        await self._watchdog.start()
        out = Output(ctx, name="stdout", tail_bytes=self.output_limit)
        err = Output(ctx, name="stderr", tail_bytes=self.output_limit)
        readers: list[_Reader] = []
        try:
            proc = await self._spawn(spec, readers, (out, err))
            returncode = await self._supervise(proc, spec, ctx)
        finally:
            await _Reader.finish(readers)
        return returncode, out, err

    async def _spawn(
        self, spec: _Command, readers: list[_Reader], outputs: tuple[Output, Output]
    ) -> asyncio.subprocess.Process:
        """Start the command with its stdout and stderr on pipes read into `outputs`.

        The pipes are ours rather than asyncio's: asyncio reports an exit only once its pipes
        close, and a process left behind in the group may hold them open.
        """
        write_ends: list[int] = []
        try:
            for output in outputs:
                read_end, write_end = os.pipe()
                write_ends.append(write_end)
                readers.append(await _Reader.open(read_end, output))
            try:
                return await asyncio.create_subprocess_exec(
                    *spec.argv,
                    stdin=asyncio.subprocess.PIPE if spec.stdin is not None else subprocess.DEVNULL,
                    stdout=write_ends[0],
                    stderr=write_ends[1],
                    cwd=spec.cwd,
                    env=spec.env,
                    start_new_session=True,
                )
            except OSError as exc:  # no such executable or cwd, not executable, ...
                raise PayloadError(f"cannot run {spec.argv[0]!r}: {exc.strerror or exc}") from None
        finally:
            for fd in write_ends:
                os.close(fd)

    async def _supervise(
        self, proc: asyncio.subprocess.Process, spec: _Command, ctx: ExecContext
    ) -> int:
        """Wait for the command's exit (within its timeout); end its group however it ends."""
        pgid = proc.pid
        self._watchdog.track(pgid)
        feeder = asyncio.ensure_future(_feed(proc, spec.stdin)) if spec.stdin is not None else None
        try:
            try:
                async with asyncio.timeout(spec.timeout):
                    return await proc.wait()
            except TimeoutError:
                await ctx.log(f"timed out after {spec.timeout:g} s: stopping process group {pgid}")
                raise JobTimeout(f"timed out after {spec.timeout:g} s") from None
        finally:
            await self._end_group(proc, ctx)
            self._watchdog.forget(pgid)
            if feeder is not None:
                feeder.cancel()

    async def _end_group(self, proc: asyncio.subprocess.Process, ctx: ExecContext) -> None:
        """SIGTERM the command's group, SIGKILL what is left after the grace; idempotent.

        Each signal is sent before its line goes to the job's log, so a slow log (or a second
        cancel while a line is written) cannot leave a process running.
        """
        pgid = proc.pid
        if proc.returncode is not None and not _group_alive(pgid):
            return
        what = "process" if proc.returncode is None else "processes left behind in the"
        _signal_group(pgid, signal.SIGTERM)
        try:
            await ctx.log(f"terminating {what} group {pgid} (SIGTERM)")
            async with asyncio.timeout(self.kill_grace):
                await proc.wait()
                while _group_alive(pgid):  # noqa: ASYNC110 (a process group has no event to await)
                    await asyncio.sleep(0.05)
        except TimeoutError:
            pass
        finally:  # also when cancelled while waiting: nothing of the group may survive
            survived = _group_alive(pgid)
            _signal_group(pgid, signal.SIGKILL)
            if proc.returncode is None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(proc.wait())
            if survived:
                await ctx.log(f"process group {pgid} still there after SIGTERM: sent SIGKILL")

    async def aclose(self) -> None:
        """Stop the watchdog (the worker is stopping and its commands have ended)."""
        await self._watchdog.aclose()


async def _feed(proc: asyncio.subprocess.Process, data: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(data)
        await proc.stdin.drain()
    proc.stdin.close()


class _Reader:
    """Reads one pipe of a command into its :class:`Output`."""

    def __init__(self, transport: asyncio.ReadTransport, task: asyncio.Task[None]) -> None:
        self.transport = transport
        self.task = task

    @classmethod
    async def open(cls, fd: int, output: Output) -> _Reader:
        loop = asyncio.get_running_loop()
        stream = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stream), os.fdopen(fd, "rb", buffering=0)
        )
        return cls(transport, asyncio.create_task(output.pump(stream)))

    @staticmethod
    async def finish(readers: Sequence[_Reader]) -> None:
        """Let the readers reach the end of the output, unless something outside the group
        holds the pipes open (a process that started its own session): then stop reading."""
        tasks = [r.task for r in readers]
        _, pending = await asyncio.wait(tasks, timeout=1.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for reader in readers:
            reader.transport.close()


def _exit_text(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
