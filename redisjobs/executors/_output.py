"""A command's output, as it arrives: log lines, progress lines, and a capped tail.

Shared by the ``subprocess`` and ``ssh`` executors. Each complete line goes to the job's log
(stderr lines marked ``[stderr]``), except a progress line::

    ::progress 42
    ::progress 42.5 copying files

which sets the job's progress (percent, with an optional message) instead. The last
`tail_bytes` of each stream are kept for the result and for error messages.
"""

from __future__ import annotations

import re
from typing import Protocol

from . import ExecContext

MAX_LINE = 4096
"""Characters of one output line kept in the job's log; the rest of the line is dropped."""

EXCERPT = 500
"""Characters of stderr quoted in a failed job's error."""

_PROGRESS = re.compile(rb"::progress\s+(\d+(?:\.\d+)?)%?(?:\s+(.*))?\Z")


class ByteStream(Protocol):
    """asyncio's StreamReader and asyncssh's reader, in bytes mode."""

    async def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes; b"" at the end."""


class Output:
    """One stream of a command: feeds the job's log and keeps the tail."""

    def __init__(self, ctx: ExecContext, *, name: str, tail_bytes: int) -> None:
        self._ctx = ctx
        self._prefix = "[stderr] " if name == "stderr" else ""
        self._tail_bytes = tail_bytes
        self._tail = bytearray()
        self._dropped = False  # the tail lost its beginning
        self._partial = bytearray()

    async def pump(self, stream: ByteStream) -> None:
        """Read `stream` to its end."""
        while chunk := await stream.read(65536):
            await self.feed(chunk)
        await self.close()

    async def feed(self, data: bytes) -> None:
        """Take the next bytes of the stream."""
        self._partial += data
        if b"\n" in data:
            *lines, rest = self._partial.split(b"\n")
            self._partial = bytearray(rest)
            for line in lines:
                await self._line(bytes(line))
        elif len(self._partial) > 4 * MAX_LINE:  # no newline in sight: log what we have
            await self._line(bytes(self._partial), b"")
            self._partial.clear()

    async def close(self) -> None:
        """The stream ended: a last line without a newline counts too."""
        if self._partial:
            await self._line(bytes(self._partial), b"")
            self._partial.clear()

    async def _line(self, line: bytes, end: bytes = b"\n") -> None:
        line = line.rstrip(b"\r")
        m = _PROGRESS.match(line)
        if m is not None:
            message = m.group(2).decode("utf-8", "replace").strip() if m.group(2) else None
            await self._ctx.set_progress(float(m.group(1)), message or None)
            return
        self._keep(line + end)
        text = line.decode("utf-8", "replace")
        if len(text) > MAX_LINE:
            text = text[:MAX_LINE] + "…"
        await self._ctx.log(self._prefix + text)

    def _keep(self, data: bytes) -> None:
        self._tail += data
        excess = len(self._tail) - self._tail_bytes
        if excess > 0:
            del self._tail[:excess]
            self._dropped = True

    def text(self) -> str:
        """The tail as text ("…" in front when its beginning was dropped)."""
        text = self._tail.decode("utf-8", "replace")
        return "…" + text if self._dropped else text

    def excerpt(self) -> str:
        """The end of the tail, short enough to quote in an error."""
        text = self._tail.decode("utf-8", "replace").strip()
        return text if len(text) <= EXCERPT else "…" + text[-EXCERPT:]
