"""The backends an :class:`~redisjobs.pyjobkit.Engine` stores its jobs in."""

from __future__ import annotations

from .memory import MemoryBackend
from .redis import RedisBackend

__all__ = ["Backend", "MemoryBackend", "RedisBackend"]

Backend = MemoryBackend | RedisBackend
"""Either backend."""
