"""Following a Sentinel failover as it happens: every connection to the old master is closed.

A failover promotes a replica at once, but the sentinels reconfigure the old master as a replica
of the new one only when they next look at it, seconds later (a forced ``SENTINEL FAILOVER``
leaves it a master that long). Until then the old master accepts every write, and each is lost
when it resyncs from the new one. A connection that waits for ``READONLY`` to learn of the move
(redis-py's) keeps writing there all that time. So each sentinel pool of a process watches the
sentinels' ``+switch-master`` announcement, and on it closes every connection of the pool, in use
or not: the calls in flight fail as on a lost connection (which their callers retry), and each
new connection asks the sentinels where the master is. The watcher also asks the sentinels every
:data:`RECHECK` seconds, so a missed announcement (a sentinel lost while subscribed) costs at most
that long.

A durable write (``WAIT``, docs/guarantees.md) closes the window that is left: the old master
lost its replica at the promotion, so no write there is confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger("redisjobs")

CHANNEL = "+switch-master"
RECHECK = 5.0
"""Seconds between two questions to the sentinels about where the master is."""
LISTEN = 1.0
"""Seconds one wait for an announcement lasts (the loop's tick)."""
STEP = 6.0
"""Seconds one step of a watch may take at most: asking every sentinel where the master is (a
second each, when they answer slowly, as during a failover), then a :data:`LISTEN` read. A stop
waits that long for the watch to end, so that its sentinels' clients are closed after it."""


def switched_to(message: Any, service: str) -> tuple[str, int] | None:
    """The new master's address if `message` announces `service`'s switch, else None.

    The announcement reads ``<service> <old ip> <old port> <new ip> <new port>``.
    """
    if not isinstance(message, dict) or message.get("type") != "message":
        return None
    data = message["data"]
    parts = (data.decode() if isinstance(data, bytes) else str(data)).split()
    if len(parts) != 5 or parts[0] != service or not parts[4].isdigit():
        return None
    return parts[3], int(parts[4])


Address = tuple[str, int]


async def close_sentinels(manager: Any) -> None:
    """Close the clients of an asyncio ``Sentinel`` (the oldest redis-py we support has no
    ``Sentinel.aclose``)."""
    await asyncio.gather(*(client.aclose() for client in manager.sentinels), return_exceptions=True)


class MasterWatch:
    """Watches where the sentinels of `manager` (an asyncio ``Sentinel``) put `service`'s
    master, and calls `moved` when it is no longer the address `known` gives.

    Args:
        manager: the sentinels' clients.
        service: the master's name.
        known: the address the pool connects to now (None before its first connection).
        moved: records the new address and closes the pool's connections.
    """

    def __init__(
        self,
        manager: Any,
        service: str,
        known: Callable[[], Address | None],
        moved: Callable[[Address], Awaitable[None]],
    ) -> None:
        self.manager = manager
        self.stopped = False
        """Set to end :meth:`run` (with a cancel: a cancel alone can be lost inside a read of
        redis-py, which then raises its timeout instead, and the loop would go on)."""
        self._service = service
        self._known = known
        self._moved = moved

    async def run(self) -> None:
        """Watch until cancelled, from one sentinel at a time (the next when one fails)."""
        sentinels = self.manager.sentinels
        turn = 0
        while not self.stopped:
            sentinel = sentinels[turn % len(sentinels)]
            turn += 1
            try:
                await self._listen(sentinel)
            except (RedisError, OSError) as exc:
                log.debug("sentinel watch: %s failed (%s); trying the next", sentinel, exc)
                await asyncio.sleep(LISTEN)

    async def _listen(self, sentinel: Any) -> None:
        async with sentinel.pubsub() as pubsub:
            await pubsub.subscribe(CHANNEL)
            checked = 0.0
            while not self.stopped:
                if time.monotonic() - checked >= RECHECK:  # also right after subscribing
                    address = await self.manager.discover_master(self._service)
                    if self.stopped:  # asked while it stopped: its pool may be closing
                        return
                    await self._check(address)
                    checked = time.monotonic()
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=LISTEN)
                address = switched_to(message, self._service)
                if address is not None:
                    await self._check(address)

    async def _check(self, address: Address) -> None:
        known = self._known()
        if known is not None and known != address:
            log.warning("sentinel: the master of %r moved to %s:%d", self._service, *address)
            await self._moved(address)


class WatchTask:
    """A :class:`MasterWatch` running as a task of the loop that made the pool's first
    connection, until :meth:`stop`."""

    def __init__(self, watch: MasterWatch) -> None:
        self._watch = watch
        self._task: asyncio.Task[None] | None = None

    def ensure(self) -> None:
        """Start watching unless already watching (in the running loop)."""
        if self._task is None or self._task.done():
            self._watch.stopped = False
            self._task = asyncio.get_running_loop().create_task(self._watch.run())

    async def stop(self) -> None:
        """Stop watching: cancel the watch and wait for it to end (within :data:`STEP` seconds,
        its flag ending it if the cancel is lost in a read), so that nothing of it touches the
        sentinels' clients after they are closed. One cancel: more could interrupt the close of
        its pub/sub connection."""
        task, self._task = self._task, None
        self._watch.stopped = True
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=STEP)


class WatchThread:
    """A :class:`MasterWatch` for a sync pool: run by an event loop of its own in a daemon
    thread, started by the pool's first connection, until :meth:`stop`.

    Args:
        make: makes the watch, in that thread (its sentinels' clients belong to its loop; the
            thread closes them when it ends).
    """

    def __init__(self, make: Callable[[], MasterWatch]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._running: MasterWatch | None = None
        self._stopped = False

    def ensure(self) -> None:
        """Start watching unless already watching."""
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._stopped = False
                self._thread = threading.Thread(
                    target=asyncio.run,
                    args=(self._serve(),),
                    name="redisjobs-sentinel-watch",
                    daemon=True,
                )
                self._thread.start()

    def stop(self) -> None:
        """Stop watching (the thread ends as soon as its loop runs the cancel, or within
        :data:`LISTEN` seconds if the cancel is lost in a read)."""
        with self._lock:
            loop, task, self._thread = self._loop, self._task, None
            self._stopped = True
            if self._running is not None:
                self._running.stopped = True
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # its loop has already ended
                loop.call_soon_threadsafe(task.cancel)

    async def _serve(self) -> None:
        watch = self._make()
        # The watch runs as a task of its own, the one a stop cancels: a cancel that arrives
        # after the watch ended must not land in the close of the sentinels' clients below,
        # which would leave connections open as the thread's loop ends.
        running = asyncio.ensure_future(watch.run())
        with self._lock:
            self._loop, self._task = asyncio.get_running_loop(), running
            self._running, watch.stopped = watch, self._stopped  # stopped before it began?
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await running
        finally:
            await close_sentinels(watch.manager)
