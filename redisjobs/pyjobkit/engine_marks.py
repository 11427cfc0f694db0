"""What ``Engine.enqueue`` adds to a job's payload for the face's workers (Pyjobkit's payload
markers: shadow runs, a job's own retry policy, tags) and the router that may rewrite its kind."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from .markers import (
    RETRY_POLICY_PAYLOAD_KEY,
    SHADOW_PAYLOAD_KEY,
    TAGS_PAYLOAD_KEY,
    WEBHOOK_PAYLOAD_KEY,
)
from .retry import RetryPolicy, parse_policy
from .webhooks import normalize_webhooks

__all__ = ["Router", "mark_payload", "route"]

log = logging.getLogger("redisjobs.pyjobkit.engine")

Router = Callable[[str, Any], "str | Awaitable[str | None] | None"]
"""``router(kind, payload)`` returns the kind to use instead (None keeps it); sync or async."""


def mark_payload(
    payload: Any,
    shadow: bool = False,
    retry_policy: str | RetryPolicy | None = None,
    tags: Iterable[str] | None = None,
    webhooks: Mapping[str, str] | None = None,
) -> Any:
    """`payload` with the markers asked for (the payload itself when none is).

    Raises:
        TypeError: a policy object (a job carries a spec string), or markers on a payload that
            is not a dict.
        ValueError: a bad policy spec.
    """
    marks: dict[str, Any] = {}
    if shadow:
        marks[SHADOW_PAYLOAD_KEY] = True
    if retry_policy is not None:
        if isinstance(retry_policy, RetryPolicy):
            raise TypeError(
                "a job's retry_policy must be a spec string (such as 'exponential:1:2'): a "
                "policy object cannot travel with the job; give it to the Worker instead"
            )
        parse_policy(retry_policy)  # refused now, not when the job fails
        marks[RETRY_POLICY_PAYLOAD_KEY] = retry_policy
    if tags is not None:
        cleaned = sorted({str(tag).strip() for tag in tags} - {""})
        if cleaned:
            marks[TAGS_PAYLOAD_KEY] = cleaned
    hooks = normalize_webhooks(webhooks)
    if hooks:
        marks[WEBHOOK_PAYLOAD_KEY] = hooks
    if not marks:
        return payload
    if not isinstance(payload, dict):
        raise TypeError("shadow, retry_policy, tags and webhooks need a dict payload")
    return {**payload, **marks}


async def route(router: Router | None, kind: str, payload: Any) -> str:
    """The kind `router` picks for the job (`kind` without a router, or when it returns None)."""
    if router is None:
        return kind
    routed = router(kind, payload)
    if inspect.isawaitable(routed):
        routed = await routed
    if routed is not None and routed != kind:
        log.info("router rewrote kind: %s -> %s", kind, routed)
        return str(routed)
    return kind
