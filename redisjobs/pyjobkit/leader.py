"""Leader election for "only one process does this" work (Pyjobkit's ``pyjobkit.leader``).

:class:`LeaderLock` is the interface; :class:`MemoryLeaderLock` holds a lock among the
instances of one process (tests, a single host). :func:`leader_loop` runs a coroutine while
the lock is held, renews it, and cancels the coroutine when the lock is lost.

redisjobs' own schedules need no leader at all: their due times are claimed atomically in
Redis by whichever worker gets there first (see ``Client.schedule``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import ClassVar

__all__ = ["LeaderLock", "MemoryLeaderLock", "leader_loop", "stopped"]

log = logging.getLogger("pyjobkit.leader")


class LeaderLock(ABC):
    """A lock that one holder at a time has, for `ttl_s` seconds unless renewed."""

    @abstractmethod
    async def try_acquire(self, *, ttl_s: float) -> bool:
        """Take the lock (or renew it, if held) for `ttl_s` seconds; whether it is held now."""

    @abstractmethod
    async def release(self) -> None:
        """Let go of the lock if this holder has it."""


class MemoryLeaderLock(LeaderLock):
    """A lock shared by the instances of one name in this process.

    Args:
        name: the lock's name.
    """

    _holders: ClassVar[dict[str, tuple[uuid.UUID | None, float]]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str = "default") -> None:
        self.name = name
        self.holder_id = uuid.uuid4()

    async def try_acquire(self, *, ttl_s: float) -> bool:
        """Take or renew the lock unless another holder has it and it has not expired."""
        with self._guard:
            owner, expires = self._holders.get(self.name, (None, 0.0))
            now = time.monotonic()  # in-process: this process's own clock is the one to use
            if owner in (None, self.holder_id) or now >= expires:
                self._holders[self.name] = (self.holder_id, now + ttl_s)
                return True
            return False

    async def release(self) -> None:
        """Free the lock if this instance holds it."""
        with self._guard:
            if self._holders.get(self.name, (None, 0.0))[0] == self.holder_id:
                del self._holders[self.name]

    @classmethod
    def reset_state(cls) -> None:
        """Forget every lock (test isolation)."""
        with cls._guard:
            cls._holders.clear()


async def stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `stop`; whether it was set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


async def _lead(
    lock: LeaderLock,
    ttl_s: float,
    renew_every_s: float,
    on_leader: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    grace: float,
) -> None:
    """Run `on_leader` (again, when it ends) while the lock renews."""
    task = asyncio.ensure_future(on_leader())
    try:
        while not await stopped(stop, renew_every_s):
            if not await lock.try_acquire(ttl_s=ttl_s):
                log.info("leader: lock lost; cancelling on_leader task")
                return
            if task.done():
                if not task.cancelled() and task.exception() is not None:
                    log.warning("leader: on_leader raised: %s", task.exception())
                task = asyncio.ensure_future(on_leader())
    finally:
        task.cancel()
        await _grace(task, grace)
        await lock.release()


async def _grace(task: asyncio.Future[None], seconds: float) -> None:
    done, _ = await asyncio.wait([task], timeout=seconds)
    if not done:
        log.warning(
            "leader: on_leader did not honour cancellation within %.1fs; releasing the lock",
            seconds,
        )


async def leader_loop(
    lock: LeaderLock,
    *,
    ttl_s: float = 30.0,
    renew_every_s: float | None = None,
    on_leader: Callable[[], Awaitable[None]],
    stop_event: asyncio.Event | None = None,
    cancel_grace_s: float = 5.0,
) -> None:
    """Run `on_leader` whenever `lock` is held, until `stop_event` is set.

    The lock is renewed every `renew_every_s` (default ``ttl_s / 2``); when it is lost,
    `on_leader` is cancelled (given `cancel_grace_s` to finish) and the loop goes back to
    trying for the lock. An exception of `on_leader` is logged and it runs again.

    Raises:
        ValueError: a non-positive `ttl_s`, `renew_every_s` or `cancel_grace_s`.
    """
    renew = ttl_s / 2 if renew_every_s is None else renew_every_s
    if not (ttl_s > 0 and renew > 0 and cancel_grace_s > 0):
        raise ValueError("ttl_s, renew_every_s and cancel_grace_s must be > 0")
    stop = stop_event or asyncio.Event()
    while not stop.is_set():
        if await lock.try_acquire(ttl_s=ttl_s):
            await _lead(lock, ttl_s, renew, on_leader, stop, cancel_grace_s)
        elif await stopped(stop, min(1.0, ttl_s / 3)):
            return
