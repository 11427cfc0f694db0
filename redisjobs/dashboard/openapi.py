"""The OpenAPI 3.1 document of :mod:`.api`, written by hand next to it.

It is the contract for producers in other languages, so it says exactly what the handlers
accept and answer; ``tests/dashboard/test_openapi.py`` runs schemathesis against a live server
to keep the two the same.
"""

from __future__ import annotations

from typing import Any

from ..job import FINAL_STATUSES
from .openapi_ops import delete_job, operations
from .openapi_parts import counted, errors, p, params
from .openapi_schemas import STATUSES, json_content, ref, schemas
from .validation import MAX_AGE, MAX_BATCH, MAX_LIST

FINAL = sorted(FINAL_STATUSES)


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
                                "redis": {
                                    "anyOf": [ref("Redis"), {"type": "null"}],
                                    "description": "The master's facts (null: the embedded "
                                    "backend, or INFO refused).",
                                },
                            },
                        },
                        "The queues, and the Redis nodes serving them.",
                    ),
                    **errors(),
                },
            }
        },
        "/queues/{queue}/jobs": {
            "parameters": [p("queue")],
            "post": {
                "operationId": "enqueue",
                "summary": "Enqueue one job",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("NewJob")}},
                },
                "responses": {
                    "202": {**job, "description": "Enqueued (or, for a known job_id, as it is)."},
                    **errors(*writes, 429),
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
                "responses": {"200": json_content(ref("JobPage"), "The jobs."), **errors(422)},
            },
        },
        "/queues/{queue}/jobs:batch": {
            "parameters": [p("queue")],
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
                    **errors(*writes, 429),
                },
            },
        },
        "/jobs/{job_id}": {
            "parameters": [p("job_id"), p("job_queue")],
            "get": {
                "operationId": "getJob",
                "summary": "A job",
                "responses": {"200": job, **errors(404, 422)},
            },
            "delete": delete_job(),
        },
        "/jobs/{job_id}/events": {
            "parameters": [
                p("job_id"),
                p("job_queue"),
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
                    **errors(404, 422),
                },
            },
        },
        "/jobs/{job_id}/tree": {
            "parameters": [p("job_id"), p("job_queue")],
            "get": {
                "operationId": "jobTree",
                "summary": "The job with the jobs it waited for, nested",
                "description": "Under each job, the jobs it depends on (a chain read from its "
                "last step back, a chord's callback over its group); a job two others depend "
                "on appears once. The tree of a whole flow is its last job's (the job's "
                "`flow`). `cut`: the flow was larger than one read takes.",
                "responses": {
                    "200": json_content(ref("Tree"), "The tree."),
                    **errors(404, 422),
                },
            },
        },
        "/jobs/{job_id}/cancel": {
            "parameters": [p("job_id"), p("job_queue")],
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
                    **errors(403, 404, 405, 409, 422),
                },
            },
        },
        **_cleaning(),
        **operations(),
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": json_content({"type": "object"}, "The document."),
                    **errors(),
                },
            }
        },
    }


def _cleaning() -> dict[str, Any]:
    """The operations that clean a queue (bodiless POSTs, their options in the query)."""
    writes = (403, 405, 422)
    return {
        "/queues/{queue}/purge": {
            "parameters": [p("queue")],
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
                    "200": counted(
                        "purged", "How many were deleted.", status={"type": "string", "enum": FINAL}
                    ),
                    **errors(*writes),
                },
            },
        },
        "/queues/{queue}/drain": {
            "parameters": [p("queue")],
            "post": {
                "operationId": "drain",
                "summary": "Drop the queue's waiting, pending and scheduled jobs (running ones "
                "finish)",
                "responses": {
                    "200": counted("drained", "How many were dropped."),
                    **errors(*writes),
                },
            },
        },
        "/queues/{queue}/obliterate": {
            "parameters": [p("queue")],
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
                    "200": counted("obliterated", "How many jobs were deleted."),
                    **errors(*writes),
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
            "parameters": params(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
    }
