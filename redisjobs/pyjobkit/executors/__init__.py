"""The built-in executors under Pyjobkit's names: ``http`` (:class:`HttpExecutor`, httpx),
``subprocess`` (:class:`SubprocessExecutor`) and ``docker`` (:class:`DockerExecutor`, aiodocker).

Like :mod:`redisjobs.executors`, a name's module (and its dependency) loads on its first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .docker import DockerExecutor
    from .http import HTTPExecutor, HttpExecutor
    from .subprocess import SubprocessExecutor

__all__ = ["DockerExecutor", "HTTPExecutor", "HttpExecutor", "SubprocessExecutor"]

_MODULES = {
    "HTTPExecutor": "http",
    "HttpExecutor": "http",
    "SubprocessExecutor": "subprocess",
    "DockerExecutor": "docker",
}


def __getattr__(name: str) -> Any:
    """Load an executor's module on first use of its name."""
    try:
        module = _MODULES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
