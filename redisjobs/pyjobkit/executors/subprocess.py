"""``from pyjobkit.executors.subprocess import SubprocessExecutor``: Pyjobkit's semantics on
redisjobs' subprocess machinery.

Payload ``{"cmd": "echo hi | tr a-z A-Z"}`` (a shell string) or ``{"cmd": ["echo", "hi"]}``,
with ``cwd``, ``env`` and ``timeout``. The result is ``{"returncode": N, "duration_ms": ...,
"stdout": ..., "stderr": ...}``, **also for a non-zero exit** (Pyjobkit's way: the job
succeeds and its result says how the command ended). Each output line goes to ``ctx.log`` with
its stream. With `allowed_commands`, only those programs run and shell strings are refused
(:class:`PermissionError`: a shell string would get past the list).

Kept from redisjobs' own executor: each command leads its own process group, which is ended
(SIGTERM, then SIGKILL 3 s later, each said in the log) on timeout, cancel or a crash of the
worker; the child gets a minimal
environment plus the payload's ``env`` (of which variables that change what a program loads
are refused).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from ...executors import ExecContext as _BaseContext
from ...executors.subprocess import SubprocessExecutor as _Subprocess

__all__ = ["SubprocessExecutor"]

log = logging.getLogger("pyjobkit.executors.subprocess")

_STDERR = "[stderr] "


class _Streams:
    """Passes each output line to a Pyjobkit context's ``log`` with its stream."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    async def log(self, message: str) -> None:
        if message.startswith(_STDERR):
            await self._ctx.log(message.removeprefix(_STDERR), stream="stderr")
        else:
            await self._ctx.log(message, stream="stdout")

    async def set_progress(self, value: float, message: str | None = None) -> None:
        await self._ctx.set_progress(value)


class SubprocessExecutor(_Subprocess):
    """Runs local commands the way Pyjobkit's executor does.

    Args:
        allowed_commands: the programs (``argv[0]``) jobs may run; None runs any command and
            logs a warning on the first run.
        **options: redisjobs' :class:`redisjobs.executors.SubprocessExecutor` options
            (``timeout``, ``kill_grace``, ``pass_env``, ``allow_cwd`` ...).
    """

    def __init__(self, *, allowed_commands: Iterable[str] | None = None, **options: Any) -> None:
        options.setdefault("allow_shell", allowed_commands is None)
        options.setdefault("allow_cwd", ["/"])  # Pyjobkit lets a payload choose its cwd
        options.setdefault("kill_grace", 3.0)  # Pyjobkit's wait between SIGTERM and SIGKILL
        super().__init__(**options)
        self.allowed_commands = None if allowed_commands is None else frozenset(allowed_commands)
        self._warned = False

    def _check_allowed(self, cmd: Any) -> None:
        if self.allowed_commands is None:
            if not self._warned:
                self._warned = True
                log.warning(
                    "SubprocessExecutor running without allowed_commands; "
                    "do not expose enqueue to untrusted callers."
                )
            return
        if isinstance(cmd, str):
            raise PermissionError(
                "subprocess command must be a list when allowed_commands is set; "
                "shell strings bypass the allowlist"
            )
        head = cmd[0] if isinstance(cmd, list | tuple) and cmd else ""
        if head not in self.allowed_commands:
            raise PermissionError(f"subprocess command {head!r} is not in the allowlist")

    async def run(self, *, job_id: Any, payload: Any, ctx: Any) -> dict[str, Any]:
        """Run the command; its exit code (zero or not), duration and output tails."""
        cmd = payload.get("cmd", payload.get("argv")) if isinstance(payload, dict) else None
        self._check_allowed(cmd)
        started = time.perf_counter()
        streams: Any = _Streams(ctx)
        context: _BaseContext = streams
        returncode, out, err = await self.execute(payload, context)
        if returncode != 0:
            await ctx.log(f"process exited with code {returncode}", stream="stderr")
        return {
            "returncode": returncode,
            "duration_ms": int((time.perf_counter() - started) * 1000),
            "stdout": out.text(),
            "stderr": err.text(),
        }
