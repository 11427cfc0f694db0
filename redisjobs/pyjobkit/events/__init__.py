"""Event buses (``from pyjobkit.events import LocalEventBus``)."""

from __future__ import annotations

from .local import LocalEventBus

__all__ = ["LocalEventBus"]
