"""Pausing a queue: its workers lease nothing new until it is resumed.

A pause is the key ``rj:{Q}:paused``, set and deleted by the ``pause`` and ``resume`` scripts,
which also say so on the queue's control channel. `start` checks the key (in the one EXISTS it
sends per call), so a paused queue's workers finish what they run, lease nothing more, and
read again the moment ``resume`` is published (docs/architecture.md, "Pause"). Enqueueing,
promotion of due jobs and reclaim go on. Each call is a flow, so the sync client says the same.
"""

from __future__ import annotations

from collections.abc import Callable

from .getters import QueueGetters, reaching
from .keys import QueueKeys
from .roundtrips import Flow, ScriptCall, cmd, run


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
    """The pause and resume calls of :class:`redisjobs.Client`."""

    @reaching
    async def pause(self, queue: str | None = None) -> bool:
        """Pause a queue: its workers finish the jobs they run and lease no new ones until
        :meth:`resume`. Enqueueing still works, and scheduled jobs still become pending.

        Returns:
            True when this call paused it; False when it was paused already.
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
        """Whether a queue is paused now."""
        redis, _ = await self._conn()
        return await run(redis, is_paused_flow(self.keys(queue)))

    async def _switch(self, flow: Callable[[QueueKeys], Flow[bool]], queue: str | None) -> bool:
        redis, scripts = await self._conn()
        return await run(redis, flow(self.keys(queue)), scripts)
