"""A Redis server as the backend (``from pyjobkit.backends.redis import RedisBackend``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...connection import resolve_url

__all__ = ["RedisBackend"]


@dataclass(frozen=True, slots=True)
class RedisBackend:
    """A Redis server shared by producers and workers.

    Args:
        url: the server's URL (default ``$REDIS_URL``).
        queue: the queue the engine enqueues to and its workers serve.
    """

    url: str = field(default_factory=lambda: resolve_url(None, warn_private=True))
    queue: str = "default"
