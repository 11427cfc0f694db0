"""What the face's command lines share: executors named ``module:factory``, and the backend
a URL names."""

from __future__ import annotations

import importlib
from typing import Any

from .backends.memory import MemoryBackend
from .backends.redis import RedisBackend
from .backends.store import StoreBackend
from .executors.plugins import is_executor

__all__ = ["CLIError", "backend_of", "load_executor"]

_REDIS = ("redis://", "rediss://", "unix://", "redis+sentinel://", "rediss+sentinel://")


class CLIError(RuntimeError):
    """A command line or configuration the command cannot run with."""


def load_executor(spec: str) -> Any:
    """The executor that factory ``module:attr`` makes.

    Raises:
        CLIError: a malformed spec, a missing module or attribute, or not an executor.
    """
    module_name, sep, attr = spec.rpartition(":")
    if not module_name or not sep or not attr:
        raise CLIError(f"executor spec {spec!r} must be 'module:factory'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise CLIError(f"cannot load executor {spec!r}: {exc}") from exc
    made = factory()
    if not is_executor(made):
        raise CLIError(f"executor {spec!r} made {type(made).__name__}, not an executor")
    return made


def backend_of(dsn: str | None, queue: str = "default") -> StoreBackend:
    """The backend of a ``redis://`` (``rediss://``, ``unix://``, ``redis+sentinel://``) or
    ``memory://name`` URL.

    Raises:
        CLIError: no URL, or another kind (a SQL URL: redisjobs keeps jobs in Redis).
    """
    if not dsn:
        raise CLIError("a backend URL is required: --dsn redis://host:6379/0 (or PYJOBKIT_DSN)")
    if dsn.startswith("memory://"):
        return MemoryBackend(dsn.removeprefix("memory://") or None, queue=queue)
    if dsn.startswith(_REDIS):
        return RedisBackend(dsn, queue=queue)
    scheme = dsn.split(":", 1)[0]
    raise CLIError(
        f"unsupported backend URL scheme {scheme!r}: redisjobs keeps jobs in Redis, so use a "
        "redis://, rediss://, unix://, redis+sentinel:// or memory:// URL (there is no SQL "
        "backend to migrate)"
    )
