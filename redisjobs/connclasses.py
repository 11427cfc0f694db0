"""The connection classes of redisjobs' clients: redis-py's, with hiredis's command packing
(a real server) and guards on every write (any server, the embedded one included)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import hiredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError

__all__ = ["HiredisPack", "guarded", "pack"]


def pack(args: tuple[Any, ...]) -> bytes:
    """One command as the bytes to send, packed by hiredis (DataError for an argument it
    refuses: None, a list ...)."""
    try:
        packed: bytes = hiredis.pack_command(args)
    except TypeError as exc:
        raise DataError(str(exc)) from exc
    return packed


class HiredisPack:
    """Packs commands with hiredis's C packer: an asyncio connection's mixin, a sync one's packer.

    redis-py's asyncio connection packs every argument in Python (its sync one encodes each
    in Python first), which costs more than the whole Lua script on the server for a batch of
    enqueues: six times slower than ``hiredis.pack_command`` on 5,500 arguments."""

    def pack_command(self, *args: Any) -> list[bytes]:
        """One command as the bytes to send (DataError for an argument hiredis refuses)."""
        if isinstance(args[0], str) and " " in args[0]:  # "CONFIG GET" and friends
            args = (*args[0].split(), *args[1:])
        return [pack(args)]

    pack = pack_command


class _WriteGuards(AbstractConnection):
    """Two guards on every write of a pooled connection, on any loop and Python.

    A write to a connection the peer reset while it was idle is reported as a ConnectionError:
    uvloop closes the transport and the next write raises ``RuntimeError("... the handler is
    closed")`` where asyncio's own loop raises ``ConnectionResetError``, and redis-py retries
    and reconnects on ConnectionError only, so without this a reset connection would escape
    every worker loop and stop the worker.

    A cancel that arrives as a write completes is delivered: redis-py bounds each write with
    ``asyncio.wait_for``, which on Python 3.11 returns the write's result then and loses the
    cancel (fixed in 3.12). An ``asyncio.timeout`` around Redis calls would then never fire,
    and a loop under it (waiting for room in a queue, for a job's end) would run on forever.
    """

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        task = asyncio.current_task()
        asked = task.cancelling() if task is not None else 0
        try:
            await super().send_packed_command(command, check_health)
        except RuntimeError as exc:  # redis-py has already disconnected this connection
            if "closed" not in str(exc):
                raise
            raise RedisConnectionError(f"Error while writing to socket: {exc}") from exc
        if task is not None and task.cancelling() > asked:
            # sent, but the caller was cancelled meanwhile: its reply is never read
            await self.disconnect(nowait=True)
            raise asyncio.CancelledError


_made: dict[tuple[type[AbstractConnection], bool], type[AbstractConnection]] = {}


def guarded(cls: type[AbstractConnection], packing: bool = False) -> type[AbstractConnection]:
    """`cls` with :class:`_WriteGuards` (and, for a real server, hiredis's command packing)."""
    made = _made.get((cls, packing))
    if made is None:
        bases = (HiredisPack, _WriteGuards, cls) if packing else (_WriteGuards, cls)
        name = f"{'Hiredis' if packing else 'Guarded'}{cls.__name__}"
        made = _made[cls, packing] = type(name, bases, {})
    return made
