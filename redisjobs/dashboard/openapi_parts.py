"""The pieces every path of the OpenAPI document shares: its error answers and parameters."""

from __future__ import annotations

from typing import Any

from ..names import JOB_ID
from .openapi_schemas import QUEUE_PATTERN, json_content, ref
from .validation import WORKER_ID


def errors(*codes: int) -> dict[str, Any]:
    """The error answers of an operation: those of every one, and `codes`."""
    text = {
        400: "The Host header does not name this server, or (a write) the body is not JSON.",
        401: "Credentials are missing or wrong (a bearer token, when one is configured).",
        403: "A cross-site request (its Origin is not this server).",
        404: "No such job (an enqueue: a job it depends on), or a path this API does not have.",
        405: "The server is read-only.",
        409: "The job is not in a state the operation applies to (it already finished).",
        413: "The body, or a payload, is too large.",
        415: "The body is not application/json.",
        422: "A field is not valid; the message says which and why.",
        429: "The queue is full (its max_pending): nothing was enqueued; retry later, after "
        "the Retry-After header's seconds at least.",
        503: "Redis cannot be reached.",
    }
    out = {
        str(c): json_content(ref("Error"), text[c]) for c in sorted({400, 401, 404, 503, *codes})
    }
    if "429" in out:
        out["429"]["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait at least before sending again.",
                "schema": {"type": "integer", "minimum": 0},
            }
        }
    return out


def params() -> dict[str, Any]:
    """The parameters paths refer to (:func:`p`)."""
    return {
        "queue": _in_path("queue", QUEUE_PATTERN),
        "job_id": _in_path("job_id", JOB_ID.pattern),
        "job_queue": {
            "name": "queue",
            "in": "query",
            "required": False,
            "description": "The job's queue; without it, every known queue is looked through.",
            "schema": {"type": "string", "pattern": QUEUE_PATTERN},
        },
        "worker_id": _in_path("worker_id", WORKER_ID.pattern),
    }


def _in_path(name: str, pattern: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": pattern},
    }


def p(name: str) -> dict[str, str]:
    """A reference to parameter `name` of :func:`params`."""
    return {"$ref": f"#/components/parameters/{name}"}


def counted(name: str, description: str, **extra: dict[str, Any]) -> dict[str, Any]:
    """A 200 answer ``{queue, <name>: n, ...extra}``."""
    properties = {"queue": {"type": "string"}, name: {"type": "integer", "minimum": 0}, **extra}
    schema = {"type": "object", "required": ["queue", name, *extra], "properties": properties}
    return json_content(schema, description)
