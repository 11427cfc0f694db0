"""The embedded in-memory backend (``from pyjobkit.backends.memory import MemoryBackend``)."""

from __future__ import annotations

import os

from .store import StoreBackend

__all__ = ["MemoryBackend"]


class MemoryBackend(StoreBackend):
    """The embedded in-memory backend: jobs live in this process only (tests, scripts).

    Args:
        name: the store's name; backends of one name in one process share their jobs (a new
            backend gets a store of its own).
        queue: the queue the engine enqueues to and its workers serve.
        lease_ttl_s: seconds without a heartbeat before another worker takes a job over.
    """

    def __init__(
        self, name: str | None = None, *, queue: str = "default", lease_ttl_s: float = 30
    ) -> None:
        self.name = name or f"pyjobkit-{os.urandom(6).hex()}"
        super().__init__(f"memory://{self.name}", queue=queue, lease_ttl_s=lease_ttl_s)
