"""The Pyjobkit face's names where they were first importable; :mod:`redisjobs.pyjobkit` is
their home, at Pyjobkit's module paths."""

from __future__ import annotations

from .pyjobkit.backends import MemoryBackend, RedisBackend
from .pyjobkit.contracts import EventBus, ExecContext, Executor, LogRecord, LogSink
from .pyjobkit.engine import STATUS, Engine
from .pyjobkit.worker import Worker

__all__ = [
    "STATUS",
    "Engine",
    "EventBus",
    "ExecContext",
    "Executor",
    "LogRecord",
    "LogSink",
    "MemoryBackend",
    "RedisBackend",
    "Worker",
]
