"""Kind ``ssh``: run a command on another host with asyncssh, over reused connections.

Payload::

    {"host": "build-1.internal", "argv": ["make", "-C", "/srv/app", "release"],
     "port": 22, "username": "deploy", "env": {"RELEASE": "42"}, "timeout": 900}
    {"host": "build-1.internal", "cmd": "cd /srv/app && make release"}  # for the remote shell

Result: ``{"exit_status": 0, "stdout": "...", "stderr": "..."}`` (tails). Output is streamed to
the job's log line by line, ``::progress N`` lines set the progress, and a non-zero exit status
fails the job with the code and the end of stderr, as for ``subprocess``. ``argv`` is quoted
with :func:`shlex.join`; ``env`` is exported by the remote shell before the command (sshd accepts
few variables through the protocol).

Security lives in the worker's configuration, never in the payload: host keys are checked
against `known_hosts` (``~/.ssh/known_hosts`` by default; switching that off is a loud constructor
option), credentials are the worker's (`client_keys`, `password`; no agent), and a payload's
``key_path`` is accepted only inside `key_dir`. The worker's ``~/.ssh/config`` is not read, so
nothing outside the constructor changes where jobs connect or how hosts are checked.

On timeout or cancel the remote process gets SIGTERM, then SIGKILL after `kill_grace`, and the
channel is closed. Connections are shared per (host, port, user, key) by up to `max_sessions`
jobs at once and closed after `idle_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ExecutorError, JobTimeout, MissingExtra, PayloadError

try:
    import asyncssh
except ImportError as exc:  # asyncssh comes with the `ssh` extra
    raise MissingExtra("the ssh executor", "ssh", exc) from None

from . import ExecContext
from ._common import HostAllowList, command, env_map, fields, opt_int, opt_seconds, opt_str
from ._output import Output
from .base import ExecutorBase

log = logging.getLogger("redisjobs.executors.ssh")

_EXAMPLE = '{"host": "...", "argv": ["uptime"]}'
_Key = tuple[str, int, str | None, str | None]  # host, port, username, key path


@dataclass(eq=False)
class _Conn:
    conn: asyncssh.SSHClientConnection
    users: int = 0
    idle_since: float = field(default_factory=time.monotonic)


class SSHExecutor(ExecutorBase):
    """Runs commands on remote hosts.

    Args:
        known_hosts: the known_hosts file host keys are checked against (default
            ``~/.ssh/known_hosts``).
        insecure_skip_host_key_check: accept any host key. Only for throwaway networks: it
            lets anyone in the middle read the commands and the credentials.
        username: the default remote user (default: the worker's user).
        client_keys: private key files to log in with (default: ``~/.ssh/id_*``).
        passphrase: the passphrase of encrypted `client_keys`.
        password: a password to log in with.
        key_dir: a directory whose keys a payload may name as ``key_path``.
        allow_hosts: hosts jobs may reach (``*.example.com`` for subdomains); None: any.
        connect_timeout: seconds to connect and log in.
        keepalive_interval: seconds between keepalives on a connection (dead peers are found).
        idle_timeout: seconds an unused connection stays open.
        max_sessions: jobs sharing one connection at once (OpenSSH's MaxSessions is 10).
        timeout: seconds a command may run when its payload sets no ``timeout``.
        kill_grace: seconds between SIGTERM and SIGKILL when a command is stopped.
        output_limit: bytes of each of stdout and stderr kept in the result.
    """

    kind = "ssh"

    def __init__(
        self,
        *,
        known_hosts: str | os.PathLike[str] | None = None,
        insecure_skip_host_key_check: bool = False,
        username: str | None = None,
        client_keys: Sequence[str | os.PathLike[str]] | None = None,
        passphrase: str | None = None,
        password: str | None = None,
        key_dir: str | os.PathLike[str] | None = None,
        allow_hosts: Iterable[str] | None = None,
        connect_timeout: float = 10.0,
        keepalive_interval: float = 15.0,
        idle_timeout: float = 60.0,
        max_sessions: int = 10,
        timeout: float | None = None,
        kill_grace: float = 5.0,
        output_limit: int = 64 * 1024,
    ) -> None:
        if insecure_skip_host_key_check:
            log.warning(
                "ssh executor: HOST KEYS ARE NOT CHECKED. Anyone between this worker and its "
                "hosts can read and change the commands and capture the credentials."
            )
        self._known_hosts: Any = (
            None
            if insecure_skip_host_key_check
            else (os.fspath(known_hosts) if known_hosts else ())
        )
        self.username = username
        self._client_keys: Any = [os.fspath(k) for k in client_keys] if client_keys else ()
        self._passphrase = passphrase
        self._password = password
        self._key_dir = os.path.realpath(key_dir) if key_dir else None
        self.allow_hosts = HostAllowList(allow_hosts)
        self.connect_timeout = connect_timeout
        self.keepalive_interval = keepalive_interval
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.output_limit = output_limit
        self._pool: dict[_Key, list[_Conn]] = {}
        self._connecting: dict[_Key, asyncio.Lock] = {}
        self._janitor: asyncio.Task[None] | None = None

    # -- the payload ----------------------------------------------------------------------------

    def _target(self, p: Any) -> _Key:
        host = opt_str(p, "host")
        if not host:
            raise PayloadError('an ssh payload needs a "host"')
        self.allow_hosts.check(host)
        port = opt_int(p, "port", 22)
        assert port is not None
        if not 0 < port < 65536:
            raise PayloadError(f"bad port {port}")
        return host, port, opt_str(p, "username") or self.username, self._key_path(p)

    def _key_path(self, p: Any) -> str | None:
        key_path = opt_str(p, "key_path")
        if key_path is None:
            return None
        real = os.path.realpath(key_path)
        if self._key_dir is None or os.path.commonpath([real, self._key_dir]) != self._key_dir:
            raise PayloadError(
                f"key_path {key_path!r} is not inside the key directory this worker allows"
            )
        return real

    @staticmethod
    def _command_line(p: Any) -> str:
        argv, cmd = command(p)
        line = shlex.join(argv) if argv is not None else cmd
        assert line is not None
        env = env_map(p)
        if env:
            exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
            line = f"export {exports}; {line}"
        return line

    # -- running --------------------------------------------------------------------------------

    async def run(self, *, job_id: str, payload: Any, ctx: ExecContext) -> dict[str, Any]:
        """Run the payload's command on its host and return its exit status and output tails."""
        p = fields(payload, self.kind, _EXAMPLE)
        target = self._target(p)
        line = self._command_line(p)
        timeout = opt_seconds(p, "timeout", self.timeout)
        where = f"{target[2] + '@' if target[2] else ''}{target[0]}:{target[1]}"
        async with self._session(target, where) as conn:
            try:
                proc = await conn.create_process(line, encoding=None)
            except asyncssh.Error as exc:
                raise ExecutorError(f"{where}: cannot start the command: {exc}") from None
            proc.stdin.write_eof()
            out = Output(ctx, name="stdout", tail_bytes=self.output_limit)
            err = Output(ctx, name="stderr", tail_bytes=self.output_limit)
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.gather(out.pump(proc.stdout), err.pump(proc.stderr))
                    await proc.wait_closed()
            except TimeoutError:
                await self._stop(proc)
                raise JobTimeout(f"{where}: timed out after {timeout:g} s") from None
            except BaseException:
                await self._stop(proc)
                raise
        status, exit_signal = proc.exit_status, proc.exit_signal
        if exit_signal is not None:
            raise ExecutorError(f"{where}: killed by SIG{exit_signal[0]}: {err.excerpt()}")
        if status is None:
            raise ExecutorError(f"{where}: the connection closed before the command ended")
        if status != 0:
            raise ExecutorError(f"{where}: exit status {status}: {err.excerpt() or '(no stderr)'}")
        return {"exit_status": status, "stdout": out.text(), "stderr": err.text()}

    async def _stop(self, proc: asyncssh.SSHClientProcess[bytes]) -> None:
        """SIGTERM the remote process, SIGKILL it after the grace, close the channel."""
        with contextlib.suppress(OSError, asyncssh.Error):
            proc.send_signal("TERM")
        try:
            await asyncio.shield(asyncio.wait_for(proc.wait_closed(), self.kill_grace))
        except TimeoutError:
            _kill(proc)
        except asyncio.CancelledError:  # cancelled again while waiting: no grace left
            _kill(proc)
            raise
        finally:
            proc.close()

    # -- connections ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _session(
        self, target: _Key, where: str
    ) -> AsyncIterator[asyncssh.SSHClientConnection]:
        entry = await self._acquire(target, where)
        try:
            yield entry.conn
        finally:
            entry.users -= 1
            entry.idle_since = time.monotonic()

    async def _acquire(self, target: _Key, where: str) -> _Conn:
        async with self._connecting.setdefault(target, asyncio.Lock()):
            conns = self._pool.setdefault(target, [])
            conns[:] = [c for c in conns if not c.conn.is_closed()]
            entry = next((c for c in conns if c.users < self.max_sessions), None)
            if entry is None:
                entry = _Conn(await self._connect(target, where))
                conns.append(entry)
            entry.users += 1
        if self._janitor is None or self._janitor.done():
            self._janitor = asyncio.create_task(self._close_idle())
        return entry

    async def _connect(self, target: _Key, where: str) -> asyncssh.SSHClientConnection:
        host, port, username, key_path = target
        try:
            return await asyncssh.connect(
                host,
                port,
                username=username or (),  # asyncssh: () is "the local user", None a TypeError
                known_hosts=self._known_hosts,
                client_keys=[key_path] if key_path else self._client_keys,
                passphrase=self._passphrase,
                password=self._password,
                agent_path=None,
                config=None,  # ~/.ssh/config could turn host key checks off or redirect hosts
                connect_timeout=self.connect_timeout,
                keepalive_interval=self.keepalive_interval,
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise ExecutorError(
                f"{where}: host key not verified against known_hosts ({exc})", retryable=False
            ) from None
        except asyncssh.PermissionDenied as exc:
            raise ExecutorError(f"{where}: login refused: {exc}", retryable=False) from None
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise ExecutorError(f"{where}: cannot connect: {exc or type(exc).__name__}") from None

    async def _close_idle(self) -> None:
        while any(self._pool.values()):
            await asyncio.sleep(min(self.idle_timeout, 5.0))
            cutoff = time.monotonic() - self.idle_timeout
            for conns in self._pool.values():
                for entry in [c for c in conns if c.users == 0 and c.idle_since < cutoff]:
                    conns.remove(entry)
                    entry.conn.close()

    async def aclose(self) -> None:
        """Close every connection."""
        if self._janitor is not None:
            self._janitor.cancel()
            self._janitor = None
        conns = [entry.conn for entries in self._pool.values() for entry in entries]
        self._pool.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.wait_closed()


def _kill(proc: asyncssh.SSHClientProcess[bytes]) -> None:
    with contextlib.suppress(OSError, asyncssh.Error):
        proc.send_signal("KILL")
