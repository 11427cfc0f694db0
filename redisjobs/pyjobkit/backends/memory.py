"""The embedded in-memory backend (``from pyjobkit.backends.memory import MemoryBackend``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = ["MemoryBackend"]


@dataclass(frozen=True, slots=True)
class MemoryBackend:
    """The embedded in-memory backend: jobs live in this process only (tests, scripts).

    Args:
        name: the store's name; backends of one name in one process share their jobs.
        queue: the queue the engine enqueues to and its workers serve.
    """

    name: str = field(default_factory=lambda: f"pyjobkit-{os.urandom(6).hex()}")
    queue: str = "default"

    @property
    def url(self) -> str:
        """The backend's URL."""
        return f"memory://{self.name}"
