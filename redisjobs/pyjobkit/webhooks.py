"""Completion webhooks: ``Engine.enqueue(..., webhooks={"complete": url, "fail": url,
"timeout": url})`` has the worker POST the job's outcome when it ends that way.

The body is JSON: ``{"job_id", "kind", "status", "attempts", "duration_ms", "result"}``. With a
secret (``PYJOBKIT_WEBHOOK_SECRET``, or `secret`), each request carries
``X-Pyjobkit-Timestamp`` and ``X-Pyjobkit-Signature: sha256=<HMAC-SHA256 of
"<timestamp>.<body>">``; a receiver checks it with :func:`verify_signature`, which also refuses a
timestamp outside its replay window. A 5xx reply or a transport error is retried with
exponential backoff, a 4xx is not (the receiver refused it); a webhook that fails for good is
logged and counted, and never changes the job.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import metrics
from .markers import WEBHOOK_PAYLOAD_KEY

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_REPLAY_WINDOW_S",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WEBHOOK_PAYLOAD_KEY",
    "WEBHOOK_SECRET_ENV",
    "fire",
    "normalize_webhooks",
    "verify_signature",
]

WEBHOOK_SECRET_ENV = "PYJOBKIT_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-Pyjobkit-Signature"
TIMESTAMP_HEADER = "X-Pyjobkit-Timestamp"
DEFAULT_REPLAY_WINDOW_S = 300

EVENTS = {"success": "complete", "failed": "fail", "timeout": "timeout"}
"""A final status -> the webhook key it fires."""

log = logging.getLogger("pyjobkit.webhooks")


def normalize_webhooks(webhooks: Mapping[str, str] | None) -> dict[str, str] | None:
    """The webhooks with their keys trimmed and lower-cased, None for none.

    Raises:
        ValueError: a key other than ``complete``, ``fail``, ``timeout``, or an empty URL.
    """
    if not webhooks:
        return None
    clean = {}
    for raw, url in webhooks.items():
        key = str(raw).strip().lower()
        if key not in EVENTS.values():
            raise ValueError(
                f"webhooks keys must be one of {{'complete', 'fail', 'timeout'}}; got {raw!r}"
            )
        if not isinstance(url, str) or not url.strip():
            raise ValueError(f"webhook URL for {key!r} must be a non-empty string")
        clean[key] = url.strip()
    return clean


def _signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_signature(
    *,
    body: bytes,
    secret: str,
    signature_header: str | None,
    timestamp_header: str | None,
    replay_window_s: int = DEFAULT_REPLAY_WINDOW_S,
    now: float | None = None,
) -> bool:
    """Whether a webhook request is signed with `secret` and recent (within `replay_window_s`
    of `now`, default this machine's clock); False for anything malformed. Constant-time."""
    if not signature_header or not timestamp_header:
        return False
    try:
        stamp = int(timestamp_header)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - stamp) > replay_window_s or not signature_header.startswith("sha256="):
        return False
    return hmac.compare_digest(_signature(secret, stamp, body), signature_header)


def _request(
    status: str, job: Mapping[str, Any], secret: str | None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"status": status, **job}, default=str).encode()
    headers = {"Content-Type": "application/json"}
    secret = secret if secret is not None else os.environ.get(WEBHOOK_SECRET_ENV)
    if secret:
        stamp = int(time.time())  # the receiver's replay window compares it with its clock
        headers[TIMESTAMP_HEADER] = str(stamp)
        headers[SIGNATURE_HEADER] = _signature(secret, stamp, body)
    return body, headers


async def _deliver(
    client: httpx.AsyncClient | None, url: str, body: bytes, headers: dict[str, str]
) -> None:
    """POST once; a reply outside 2xx raises the error redisjobs' http executor would."""
    import httpx  # the [http] extra: loaded by the first webhook, not by the face

    from ..executors.http import status_error

    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(httpx.AsyncClient())
        reply = await client.post(url, content=body, headers=headers, timeout=5.0)
    if not reply.is_success:  # a 4xx is final (the receiver refused it), a 5xx is not
        raise status_error(f"POST {url}", reply, reply.content, retry_4xx=False)


async def fire(
    *,
    webhooks: Mapping[str, str] | None,
    status: str,
    job_id: uuid.UUID,
    kind: str,
    attempts: int,
    duration_ms: float | None,
    result: Any,
    client: httpx.AsyncClient | None = None,
    max_attempts: int = 3,
    initial_delay_s: float = 0.5,
    secret: str | None = None,
) -> None:
    """POST the job's outcome to its webhook for `status` (``success``, ``failed`` or
    ``timeout``), if it has one, trying up to `max_attempts` times; never raises for the
    delivery (a failure is logged)."""
    url = (webhooks or {}).get(EVENTS.get(status, ""), "")
    if not url:
        return
    job = {"job_id": str(job_id), "kind": kind, "attempts": attempts, "duration_ms": duration_ms}
    body, headers = _request(status, {**job, "result": result}, secret)
    from .executors.http import send_retrying  # brings httpx, which only webhooks need here

    tries = max(1, max_attempts)

    async def failed(attempt: int, exc: Exception) -> None:
        metrics.webhook_failures.inc()
        log.warning(
            "webhook %s failed (attempt %d/%d) for job %s: %s", url, attempt, tries, job_id, exc
        )

    try:
        await send_retrying(
            lambda: _deliver(client, url, body, headers),
            retries=tries - 1,
            backoff=initial_delay_s,
            failed=failed,
            retryable=lambda exc: getattr(exc, "retryable", True),
        )
    except Exception:
        log.warning("webhook %s permanently failed for job %s", url, job_id)
