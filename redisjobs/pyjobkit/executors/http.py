"""``from pyjobkit.executors.http import HttpExecutor``: redisjobs' HTTP executor (httpx)."""

from __future__ import annotations

from ...executors.http import HTTPExecutor
from ...executors.http import HTTPExecutor as HttpExecutor

__all__ = ["HTTPExecutor", "HttpExecutor"]
