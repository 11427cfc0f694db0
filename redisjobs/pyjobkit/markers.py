"""The payload keys the face adds to a job for itself (Pyjobkit's spellings), stripped before
an executor sees the payload."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CHAIN_PAYLOAD_KEY",
    "INTERNAL_PAYLOAD_KEYS",
    "RETRY_POLICY_PAYLOAD_KEY",
    "SHADOW_PAYLOAD_KEY",
    "TAGS_PAYLOAD_KEY",
    "TRACE_CONTEXT_PAYLOAD_KEY",
    "WEBHOOK_PAYLOAD_KEY",
    "strip_internal_payload",
]

SHADOW_PAYLOAD_KEY = "__pjk_shadow"
"""True: a dry run (``ctx.is_shadow``); the result is discarded."""
TAGS_PAYLOAD_KEY = "__pjk_tags"
"""The job's tags, sorted, for workers that serve some tags only."""
CHAIN_PAYLOAD_KEY = "__pjk_chain"
"""The steps of a chain still to come."""
RETRY_POLICY_PAYLOAD_KEY = "__pjk_retry_policy"
"""The job's own retry policy spec."""
WEBHOOK_PAYLOAD_KEY = "__pjk_webhooks"
"""Where to report the job's end."""
TRACE_CONTEXT_PAYLOAD_KEY = "__pjk_trace_context"
"""The W3C trace context of the enqueueing span."""

INTERNAL_PAYLOAD_KEYS = frozenset(
    {
        SHADOW_PAYLOAD_KEY,
        TAGS_PAYLOAD_KEY,
        CHAIN_PAYLOAD_KEY,
        RETRY_POLICY_PAYLOAD_KEY,
        WEBHOOK_PAYLOAD_KEY,
        TRACE_CONTEXT_PAYLOAD_KEY,
    }
)


def strip_internal_payload(payload: Any) -> Any:
    """`payload` without the face's keys (any other value as it is)."""
    if not isinstance(payload, dict) or INTERNAL_PAYLOAD_KEYS.isdisjoint(payload):
        return payload
    return {k: v for k, v in payload.items() if k not in INTERNAL_PAYLOAD_KEYS}
