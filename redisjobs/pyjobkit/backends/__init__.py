"""The backends an :class:`~redisjobs.pyjobkit.Engine` stores its jobs in."""

from __future__ import annotations

from .memory import MemoryBackend
from .redis import RedisBackend
from .store import StoreBackend

__all__ = ["Backend", "MemoryBackend", "RedisBackend", "StoreBackend"]

Backend = StoreBackend
"""Either backend."""
