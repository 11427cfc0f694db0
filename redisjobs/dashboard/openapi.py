"""The OpenAPI 3.1 document of :mod:`.api`, written by hand next to it.

It is the contract for producers in other languages, so it says exactly what the handlers
accept and answer; ``tests/dashboard/test_openapi.py`` runs schemathesis against a live server
to keep the two the same.
"""

from __future__ import annotations

from typing import Any

from ..job import JobStatus
from ..names import JOB_ID
from .validation import MAX_BATCH, MAX_LIST, NUMBERS

QUEUE_PATTERN = r"^[A-Za-z0-9_.:\-]{1,128}$"
STATUSES = [s.value for s in JobStatus]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "The Host header does not name this server, or (a write) the body is not JSON.",
        401: "Credentials are missing or wrong (a bearer token, when one is configured).",
        403: "A cross-site request (its Origin is not this server).",
        404: "No such job (or a path this API does not have).",
        405: "The server is read-only.",
        409: "The job already finished.",
        413: "The body, or a payload, is too large.",
        415: "The body is not application/json.",
        422: "A field is not valid; the message says which and why.",
        503: "Redis cannot be reached.",
    }
    return {str(c): _json(_ref("Error"), text[c]) for c in sorted({400, 401, 404, 503, *codes})}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema["type"]
    return {**schema, "type": [kind, "null"]}


def _options() -> dict[str, Any]:
    described = {
        "max_retries": "Attempts after the first when a run fails.",
        "retry_delay": "Seconds before the first retry; retry n waits "
        "retry_delay * retry_backoff ** (n - 1).",
        "retry_backoff": "The exponential factor of retry delays.",
        "retry_jitter": "The fraction of randomness in each retry delay.",
        "timeout": "Seconds a run may take before it is cancelled and counted as failed.",
        "result_ttl": "Seconds a finished job (and its result) is kept.",
        "delay": "Seconds from now before the job may run.",
        "at": "When the job may run, in Unix time (seconds).",
    }
    props: dict[str, Any] = {
        "job_id": _nullable(
            {
                "type": "string",
                "pattern": JOB_ID.pattern,
                "description": "A caller-chosen id: while a job with this id exists, "
                "enqueueing it again writes nothing and answers with that job.",
            }
        )
    }
    for name, (integer, low, high) in NUMBERS.items():
        props[name] = _nullable(
            {
                "type": "integer" if integer else "number",
                "minimum": low,
                "maximum": high,
                "description": described[name] + " Null or absent: the server's default.",
            }
        )
    return {"type": "object", "additionalProperties": False, "properties": props}


def _job() -> dict[str, Any]:
    time = {"type": ["string", "null"], "format": "date-time"}
    props: dict[str, Any] = {
        "id": {"type": "string"},
        "queue": {"type": "string"},
        "kind": {"type": "string"},
        "status": {"type": "string", "enum": STATUSES},
        "progress": {"type": "number", "description": "0-100"},
        "progress_message": {"type": ["string", "null"]},
        "attempt": {"type": "integer", "minimum": 0},
        "max_retries": {"type": "integer", "minimum": 0},
        "timeout": {"type": ["number", "null"]},
        "worker": {"type": ["string", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "scheduled_at": time,
        "started_at": time,
        "completed_at": time,
        "result": {"description": 'The result (JSON; bytes as {"$bytes": base64}).'},
        "error": {"type": ["string", "null"]},
        "payload": {"description": "The payload, as JSON (absent in events' end)."},
    }
    return {
        "type": "object",
        "required": [name for name in props if name != "payload"],
        "additionalProperties": False,
        "properties": props,
    }


def _schemas() -> dict[str, Any]:
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "NewJob": {
            "type": "object",
            "required": ["kind"],
            "additionalProperties": False,
            "properties": {
                "kind": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 200,
                    "description": "The executor that runs it: call, http, subprocess, ssh or "
                    "your own.",
                },
                "payload": {"description": "Any JSON value; stored as msgpack."},
                "options": {"anyOf": [_ref("JobOptions"), {"type": "null"}]},
            },
        },
        "JobOptions": _options(),
        "Job": _job(),
        "StreamEvent": {
            "type": "object",
            "description": "One Server-Sent Event (OpenAPI 3.1 describes each event).",
            "required": ["data"],
            "properties": {
                "event": {"type": "string", "enum": ["message", "end"]},
                "id": {"type": "string", "description": "Resume after it with Last-Event-ID."},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "description": "A JSON event {id, type, queue, job_id, attempt, ts, data}; "
                    "for `end`, the Job as it ended.",
                },
            },
        },
        "JobPage": {
            "type": "object",
            "required": ["jobs", "cursor"],
            "additionalProperties": False,
            "properties": {
                "jobs": {"type": "array", "items": _ref("Job")},
                "cursor": {
                    "type": ["integer", "null"],
                    "description": "Pass as ?cursor= for the next page; null: no more.",
                },
            },
        },
        "Queue": {
            "type": "object",
            "required": ["name", "counts", "totals", "rates", "workers", "slots", "busy"],
            "properties": {
                "name": {"type": "string"},
                "counts": {
                    "type": "object",
                    "additionalProperties": {"type": "integer"},
                    "description": "Jobs in each status now, and dead (failed for good).",
                },
                "totals": {"type": "object", "additionalProperties": {"type": "integer"}},
                "rates": {"type": "object", "additionalProperties": {"type": "number"}},
                "workers": {"type": "integer"},
                "slots": {"type": "integer"},
                "busy": {"type": "integer"},
                "warning": {"type": ["string", "null"]},
            },
        },
    }


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
    job = _json(_ref("Job"), "The job.")
    writes = (400, 403, 405, 413, 415, 422)
    return {
        "/queues": {
            "get": {
                "operationId": "listQueues",
                "summary": "Every queue with its counts, rates and workers",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["queues"],
                            "properties": {"queues": {"type": "array", "items": _ref("Queue")}},
                        },
                        "The queues.",
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
                    "content": {"application/json": {"schema": _ref("NewJob")}},
                },
                "responses": {
                    "202": {**job, "description": "Enqueued (or, for a known job_id, as it is)."},
                    **_errors(*writes),
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
                "responses": {"200": _json(_ref("JobPage"), "The jobs."), **_errors(422)},
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
                                        "items": _ref("NewJob"),
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "202": _json(
                        {
                            "type": "object",
                            "required": ["jobs"],
                            "properties": {"jobs": {"type": "array", "items": _ref("Job")}},
                        },
                        "Enqueued, in the order given.",
                    ),
                    **_errors(*writes),
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
                        "content": {"text/event-stream": {"schema": _ref("StreamEvent")}},
                    },
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
                    "202": _json(
                        {
                            "type": "object",
                            "required": ["outcome", "job"],
                            "properties": {
                                "outcome": {"type": "string", "enum": ["cancelled", "requested"]},
                                "job": _ref("Job"),
                            },
                        },
                        "Cancelled (pending or scheduled) or asked to stop (running).",
                    ),
                    **_errors(403, 404, 405, 409, 422),
                },
            },
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "The document."), **_errors()},
            }
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
            'one; bytes in results come back as {"$bytes": "<base64>"}).',
        },
        "servers": [{"url": root_path or "/"}],
        "security": [{}, {"bearer": []}, {"basic": []}],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "parameters": _params(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
    }
