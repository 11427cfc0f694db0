"""Executors from other packages, found by entry point (``pyjobkit.executors`` group).

A plugin package declares a factory, any callable without required arguments that returns an
executor::

    [project.entry-points."pyjobkit.executors"]
    s3 = "myplugin.executors:make_s3_executor"

:func:`discover_executors` loads them; a plugin that fails to import, whose factory raises, or
that returns something else than an executor is logged and skipped.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Iterable
from typing import Any

from ..contracts import Executor

__all__ = ["EXECUTOR_ENTRY_POINT_GROUP", "discover_executors", "is_executor"]

EXECUTOR_ENTRY_POINT_GROUP = "pyjobkit.executors"

log = logging.getLogger("pyjobkit.executors.plugins")


def is_executor(value: Any) -> bool:
    """Whether `value` has an executor's shape: a string ``kind`` and a ``run`` method."""
    return isinstance(getattr(value, "kind", None), str) and callable(getattr(value, "run", None))


def _load(entry: Any) -> Executor | None:
    try:
        factory = entry.load()
    except Exception:
        log.warning("failed to load executor plugin %r", entry.name, exc_info=True)
        return None
    try:
        made = factory()
    except Exception:
        log.warning("executor plugin %r raised during factory call", entry.name, exc_info=True)
        return None
    if not is_executor(made):
        log.warning(
            "executor plugin %r did not return an Executor (got %r); skipping",
            entry.name,
            type(made).__name__,
        )
        return None
    executor: Executor = made
    return executor


def discover_executors(
    *, group: str = EXECUTOR_ENTRY_POINT_GROUP, only: Iterable[str] | None = None
) -> list[Executor]:
    """The executors the installed plugins of `group` make, in entry point order.

    Args:
        group: the entry point group.
        only: load only the entry points of these names.
    """
    allowed = None if only is None else set(only)
    found = []
    for entry in importlib.metadata.entry_points(group=group):
        if allowed is None or entry.name in allowed:
            executor = _load(entry)
            if executor is not None:
                found.append(executor)
    return found
