"""The OpenAPI 3.1 document of :mod:`.api`, written by hand next to it.

It is the contract for producers in other languages, so it says exactly what the handlers
accept and answer; ``tests/dashboard/test_openapi.py`` runs schemathesis against a live server
to keep the two the same.
"""

from __future__ import annotations

from typing import Any

from ..job import FINAL_STATUSES
from ..names import JOB_ID
from .openapi_schemas import QUEUE_PATTERN, STATUSES, json_content, ref, schemas
from .validation import MAX_AGE, MAX_BATCH, MAX_LIST

FINAL = sorted(FINAL_STATUSES)


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "The Host header does not name this server, or (a write) the body is not JSON.",
        401: "Credentials are missing or wrong (a bearer token, when one is configured).",
        403: "A cross-site request (its Origin is not this server).",
        404: "No such job (an enqueue: a job it depends on), or a path this API does not have.",
        405: "The server is read-only.",
        409: "The job already finished.",
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


def _params() -> dict[str, Any]:
    return {
        "queue": {
            "name": "queue",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": QUEUE_PATTERN},
        },
        "job_id": {
            "name": "job_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": JOB_ID.pattern},
        },
        "job_queue": {
            "name": "queue",
            "in": "query",
            "required": False,
            "description": "The job's queue; without it, every known queue is looked through.",
            "schema": {"type": "string", "pattern": QUEUE_PATTERN},
        },
    }


def _p(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _paths() -> dict[str, Any]:
    job = json_content(ref("Job"), "The job.")
    writes = (400, 403, 405, 413, 415, 422)
    return {
        "/queues": {
            "get": {
                "operationId": "listQueues",
                "summary": "Every queue with its counts, rates and workers; the Redis nodes",
                "responses": {
                    "200": json_content(
                        {
                            "type": "object",
                            "required": ["queues", "nodes"],
                            "properties": {
                                "queues": {"type": "array", "items": ref("Queue")},
                                "nodes": {
                                    "type": "array",
                                    "items": ref("Node"),
                                    "description": "The master first, its replicas, then "
                                    "the sentinels (a redis+sentinel:// URL).",
                                },
                            },
                        },
                        "The queues, and the Redis nodes serving them.",
                    ),
                    **_errors(),
                },
            }
        },
        "/queues/{queue}/jobs": {
            "parameters": [_p("queue")],
            "post": {
                "operationId": "enqueue",
                "summary": "Enqueue one job",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("NewJob")}},
                },
                "responses": {
                    "202": {**job, "description": "Enqueued (or, for a known job_id, as it is)."},
                    **_errors(*writes, 429),
                },
            },
            "get": {
                "operationId": "listJobs",
                "summary": "A page of the queue's jobs, newest first",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": STATUSES},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_LIST,
                            "default": 50,
                        },
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": 10**12,
                            "default": 0,
                        },
                    },
                ],
                "responses": {"200": json_content(ref("JobPage"), "The jobs."), **_errors(422)},
            },
        },
        "/queues/{queue}/jobs:batch": {
            "parameters": [_p("queue")],
            "post": {
                "operationId": "enqueueBatch",
                "summary": f"Enqueue 1-{MAX_BATCH} jobs: all of them, or none when one is invalid",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["jobs"],
                                "additionalProperties": False,
                                "properties": {
                                    "jobs": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": MAX_BATCH,
                                        "items": ref("NewJob"),
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "202": json_content(
                        {
                            "type": "object",
                            "required": ["jobs"],
                            "properties": {"jobs": {"type": "array", "items": ref("Job")}},
                        },
                        "Enqueued, in the order given.",
                    ),
                    **_errors(*writes, 429),
                },
            },
        },
        "/jobs/{job_id}": {
            "parameters": [_p("job_id"), _p("job_queue")],
            "get": {
                "operationId": "getJob",
                "summary": "A job",
                "responses": {"200": job, **_errors(404, 422)},
            },
        },
        "/jobs/{job_id}/events": {
            "parameters": [
                _p("job_id"),
                _p("job_queue"),
                {
                    "name": "since",
                    "in": "query",
                    "description": "Replay from after this event id (the default: the job's "
                    "start). A reconnecting reader's Last-Event-ID header does the same.",
                    "schema": {"type": "string", "pattern": r"^\d{1,20}(-\d{1,20})?$"},
                },
            ],
            "get": {
                "operationId": "jobEvents",
                "summary": "The job's events as Server-Sent Events, until it ends",
                "description": "Each message's data is one JSON event {id, type, queue, job_id, "
                "attempt, ts, data}, with an SSE id to resume from. The last message is "
                "`event: end`, whose data is the job as it ended.",
                "responses": {
                    "200": {
                        "description": "The event stream.",
                        "content": {"text/event-stream": {"schema": ref("StreamEvent")}},
                    },
                    **_errors(404, 422),
                },
            },
        },
        "/jobs/{job_id}/tree": {
            "parameters": [_p("job_id"), _p("job_queue")],
            "get": {
                "operationId": "jobTree",
                "summary": "The job with the jobs it waited for, nested",
                "description": "Under each job, the jobs it depends on (a chain read from its "
                "last step back, a chord's callback over its group); a job two others depend "
                "on appears once. The tree of a whole flow is its last job's (the job's "
                "`flow`). `cut`: the flow was larger than one read takes.",
                "responses": {
                    "200": json_content(ref("Tree"), "The tree."),
                    **_errors(404, 422),
                },
            },
        },
        "/jobs/{job_id}/cancel": {
            "parameters": [_p("job_id"), _p("job_queue")],
            "post": {
                "operationId": "cancelJob",
                "summary": "Cancel a job; a running one is stopped by its worker",
                "responses": {
                    "202": json_content(
                        {
                            "type": "object",
                            "required": ["outcome", "job"],
                            "properties": {
                                "outcome": {"type": "string", "enum": ["cancelled", "requested"]},
                                "job": ref("Job"),
                            },
                        },
                        "Cancelled (pending or scheduled) or asked to stop (running).",
                    ),
                    **_errors(403, 404, 405, 409, 422),
                },
            },
        },
        **_cleaning(),
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": json_content({"type": "object"}, "The document."),
                    **_errors(),
                },
            }
        },
    }


def _counted(name: str, description: str, **extra: dict[str, Any]) -> dict[str, Any]:
    """A 200 answer ``{queue, <name>: n, ...extra}``."""
    properties = {"queue": {"type": "string"}, name: {"type": "integer", "minimum": 0}, **extra}
    schema = {"type": "object", "required": ["queue", name, *extra], "properties": properties}
    return json_content(schema, description)


def _cleaning() -> dict[str, Any]:
    """The operations that clean a queue (bodiless POSTs, their options in the query)."""
    writes = (403, 405, 422)
    return {
        "/queues/{queue}/purge": {
            "parameters": [_p("queue")],
            "post": {
                "operationId": "purge",
                "summary": "Delete the queue's finished jobs of one status, by age",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": FINAL, "default": "failed"},
                    },
                    {
                        "name": "older_than",
                        "in": "query",
                        "description": "Only jobs that finished at least this many seconds ago.",
                        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_AGE},
                    },
                ],
                "responses": {
                    "200": _counted(
                        "purged", "How many were deleted.", status={"type": "string", "enum": FINAL}
                    ),
                    **_errors(*writes),
                },
            },
        },
        "/queues/{queue}/drain": {
            "parameters": [_p("queue")],
            "post": {
                "operationId": "drain",
                "summary": "Drop the queue's waiting, pending and scheduled jobs (running ones "
                "finish)",
                "responses": {
                    "200": _counted("drained", "How many were dropped."),
                    **_errors(*writes),
                },
            },
        },
        "/queues/{queue}/obliterate": {
            "parameters": [_p("queue")],
            "post": {
                "operationId": "obliterate",
                "summary": "Delete every job and key of the queue",
                "parameters": [
                    {
                        "name": "force",
                        "in": "query",
                        "description": "Go on while live workers serve the queue.",
                        "schema": {"type": "string", "enum": ["true", "false"]},
                    }
                ],
                "responses": {
                    "200": _counted("obliterated", "How many jobs were deleted."),
                    **_errors(*writes),
                    "409": json_content(
                        ref("Error"), "Live workers serve the queue (and force is not true)."
                    ),
                },
            },
        },
    }


def document(root_path: str = "") -> dict[str, Any]:
    """The OpenAPI document, its server being where the API is mounted (`root_path`)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "redisjobs",
            "version": "1",
            "description": "Enqueue and follow redisjobs jobs from any language. Bodies are "
            "JSON; payloads and results are stored as msgpack (JSON maps to msgpack one to "
            'one; bytes in results come back as {"$bytes": "<base64>"}, the datetimes, '
            "Decimals, UUIDs, tuples and sets of Python producers as ISO 8601 text, text and "
            "arrays).",
        },
        "servers": [{"url": root_path or "/"}],
        "security": [{}, {"bearer": []}, {"basic": []}],
        "paths": _paths(),
        "components": {
            "schemas": schemas(),
            "parameters": _params(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
    }
