"""The request and response models of the face's FastAPI router (imported with pydantic)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EnqueueRequest", "JobOut"]


class EnqueueRequest(BaseModel):
    """``POST /jobs``: :meth:`Engine.enqueue`'s arguments."""

    kind: str
    payload: dict[str, Any] = Field(default_factory=dict)
    priority: int = 100
    max_attempts: int | None = None
    scheduled_for: datetime | None = None
    timeout_s: float | None = None
    idempotency_key: str | None = None
    tags: list[str] | None = None
    shadow: bool = False
    retry_policy: str | None = None
    webhooks: dict[str, str] | None = None


class JobOut(BaseModel):
    """A job record as the router returns it (unknown fields dropped)."""

    model_config = ConfigDict(extra="ignore")
    id: uuid.UUID
    kind: str | None = None
    status: str | None = None
    payload: Any = None
    result: Any = None
    error: str | None = None
    attempts: int | None = None
    max_attempts: int | None = None
    priority: int | None = None
    scheduled_for: datetime | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
