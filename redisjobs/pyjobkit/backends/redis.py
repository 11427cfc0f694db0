"""A Redis server as the backend (``from pyjobkit.backends.redis import RedisBackend``)."""

from __future__ import annotations

from ...connection import resolve_url
from .store import StoreBackend

__all__ = ["RedisBackend"]


class RedisBackend(StoreBackend):
    """A Redis server shared by producers and workers.

    Args:
        url: the server's URL (default ``$REDIS_URL``).
        queue: the queue the engine enqueues to and its workers serve.
        lease_ttl_s: seconds without a heartbeat before another worker takes a job over.
    """

    def __init__(
        self, url: str | None = None, *, queue: str = "default", lease_ttl_s: float = 30
    ) -> None:
        super().__init__(resolve_url(url, warn_private=True), queue=queue, lease_ttl_s=lease_ttl_s)
