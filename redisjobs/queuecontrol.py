"""Pausing a queue (its workers lease nothing new until it is resumed), its limits, and the
signals an operator sends a worker.

A pause is the key ``rj:{Q}:paused``, set and deleted by the ``pause`` and ``resume`` scripts,
which also say so on the queue's control channel. `start` checks the key (in the one EXISTS it
sends per call), so a paused queue's workers finish what they run, lease nothing more, and
read again the moment ``resume`` is published (docs/architecture.md, "Pause"). Enqueueing,
promotion of due jobs and reclaim go on. Each call is a flow, so the sync client says the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .getters import QueueGetters, reaching
from .keys import QueueKeys
from .limits import KeyState, Limit, clear_limit_flow, key_states_flow, limits_flow, set_limit_flow
from .presence import signal_flow
from .roundtrips import Flow, ScriptCall, cmd, run
from .workerinfo import SIGNALS


def _switch_flow(keys: QueueKeys, script: str) -> Flow[bool]:
    return bool((yield ScriptCall(script, keys, [])))


def pause_flow(keys: QueueKeys) -> Flow[bool]:
    """Pause the queue; True when this call paused it, False when it was paused already."""
    return _switch_flow(keys, "pause")


def resume_flow(keys: QueueKeys) -> Flow[bool]:
    """Resume the queue; True when this call resumed it, False when it was not paused."""
    return _switch_flow(keys, "resume")


def is_paused_flow(keys: QueueKeys) -> Flow[bool]:
    """Whether the queue is paused now."""
    (exists,) = yield [cmd("exists", keys.paused)]
    return bool(exists)


class QueueControl(QueueGetters):
    """The pause, resume and limit calls of :class:`redisjobs.Client`."""

    @reaching
    async def pause(self, queue: str | None = None) -> bool:
        """Pause a queue: its workers finish the jobs they run and lease no new ones until
        :meth:`resume`. Enqueueing still works, and scheduled jobs still become pending.

        Returns:
            True when this call paused it (a partitioned queue: any of its partitions); False
            when it was paused already.
        """
        return await self._switch(pause_flow, queue)

    @reaching
    async def resume(self, queue: str | None = None) -> bool:
        """Resume a paused queue: its workers lease jobs again at once.

        Returns:
            True when this call resumed it; False when it was not paused.
        """
        return await self._switch(resume_flow, queue)

    @reaching
    async def is_paused(self, queue: str | None = None) -> bool:
        """Whether a queue is paused now (a partitioned queue: every partition)."""
        return all(await self._each(is_paused_flow, queue, scripts=False))

    async def _switch(self, flow: Callable[[QueueKeys], Flow[bool]], queue: str | None) -> bool:
        return any(await self._each(flow, queue))

    async def _each(
        self, flow: Callable[[QueueKeys], Flow[bool]], queue: str | None, scripts: bool = True
    ) -> list[bool]:
        """`flow` on `queue`, or on each of its partitions at once."""
        redis, with_scripts = await self._conn(self.keys(queue))
        return list(
            await asyncio.gather(
                *(run(redis, flow(k), with_scripts if scripts else None) for k in self.every(queue))
            )
        )

    @reaching
    async def set_limit(
        self,
        queue: str | None = None,
        rate: float | None = None,
        per: float = 1.0,
        burst: int | None = None,
        *,
        key: str | None = None,
        max_running: int | None = None,
        max_pending: int | None = None,
    ) -> None:
        """Set a limit of a queue; workers apply it from their next lease, without restarting.

        Args:
            queue: the queue (default: the client's).
            rate: at most this many jobs start per `per` seconds (fleet wide).
            per: the period of `rate`, seconds.
            burst: jobs that may start at once after a quiet spell (default: `rate`).
            key: None for the whole queue; a limit key for its jobs; ``"*"`` for every key
                without a spec of its own; ``"<task>:*"`` for every key of one task.
            max_running: at most this many jobs of one key run at once (needs `key`).
            max_pending: bound on the queue's backlog, enforced at enqueue (without `key`).

        Raises:
            ValueError: an invalid limit (nothing is written).
        """
        redis, _ = await self._conn(self.keys(queue))
        flow = set_limit_flow(self.keys(queue), rate, per, burst, key, max_running, max_pending)
        await run(redis, flow)

    @reaching
    async def clear_limit(self, queue: str | None = None, key: str | None = None) -> bool:
        """Remove a limit (`key` as for :meth:`set_limit`; None: the queue-wide rate and
        max_pending): its jobs start at full speed at once.

        Returns:
            True when there was one.
        """
        redis, _ = await self._conn(self.keys(queue))
        return await run(redis, clear_limit_flow(self.keys(queue), key))

    @reaching
    async def limits(self, queue: str | None = None) -> list[Limit]:
        """The limits of a queue, the queue-wide one first."""
        redis, _ = await self._conn(self.keys(queue))
        return await run(redis, limits_flow(self.keys(queue)))

    @reaching
    async def limit_keys(self, queue: str | None = None) -> list[KeyState]:
        """The limit keys of a queue with jobs waiting or running: backlog, running jobs, and
        when each may next be served (None: at its max_running, or drained)."""
        redis, _ = await self._conn(self.keys(queue))
        return await run(redis, key_states_flow(self.keys(queue)))

    @reaching
    async def signal_worker(self, worker_id: str, signal: str) -> bool:
        """Ask a live worker to go ``quiet`` (take no more jobs; those it runs finish and are
        recorded) or to ``stop`` (gracefully, as on SIGTERM), through its registry entry.

        The worker reads it at its next registry refresh (``lease_ttl / 3`` seconds at most).
        A worker process serving several queues has an entry per queue and acts as one on a
        signal to any of them. A quiet worker stays, heartbeating, until stopped.

        Returns:
            False when no live worker has that id.

        Raises:
            ValueError: `signal` is neither ``quiet`` nor ``stop``.
        """
        if signal not in SIGNALS:
            raise ValueError(f"a worker signal is one of {', '.join(SIGNALS)}, not {signal!r}")
        if not any(w.id == worker_id for w in await self.workers()):
            return False
        redis, _ = await self._conn()
        await run(redis, signal_flow(self.registry, worker_id, signal))
        return True
