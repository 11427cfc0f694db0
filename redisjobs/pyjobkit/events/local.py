"""An in-process event bus: handlers subscribed to a topic get what is published to it."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Handler", "LocalEventBus"]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]
"""``await handler(payload)``."""


class LocalEventBus:
    """Publishes to the handlers of a topic at once; a failing handler is logged and spoils
    nothing for the others."""

    def __init__(self) -> None:
        self._handlers: defaultdict[str, list[Handler]] = defaultdict(list)

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Call `handler` with every payload published to `topic`."""
        self._handlers[topic].append(handler)

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Hand `payload` to every handler of `topic` (concurrently) and wait for them."""
        handlers = self._handlers.get(topic, ())
        outcomes = await asyncio.gather(*(h(payload) for h in handlers), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                log.error("event handler failed on %s", topic, exc_info=outcome)
