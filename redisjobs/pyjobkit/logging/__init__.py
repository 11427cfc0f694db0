"""Logging for the Pyjobkit face: a per-job memory sink and JSON log lines."""

from __future__ import annotations

from .memory import MemoryLogSink
from .structured import JsonFormatter, configure_logging

__all__ = ["JsonFormatter", "MemoryLogSink", "configure_logging"]
