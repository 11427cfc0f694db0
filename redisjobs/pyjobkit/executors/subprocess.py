"""``from pyjobkit.executors.subprocess import SubprocessExecutor``: redisjobs' own."""

from __future__ import annotations

from ...executors.subprocess import SubprocessExecutor

__all__ = ["SubprocessExecutor"]
