"""The OpenAPI paths of the operator actions (:mod:`.api_ops`): workers, retry, run now,
delete, pause, dead letters and bulk actions."""

from __future__ import annotations

from typing import Any

from ..history import HISTORY_MINUTES
from ..names import JOB_ID
from .bulk import ACTIONS, MAX_IDS
from .openapi_parts import counted, errors, p
from .openapi_schemas import json_content, ref
from .validation import MAX_LIST

WRITES = (403, 405, 422)


def _conflict(text: str) -> dict[str, Any]:
    return {"409": json_content(ref("Error"), text)}


def _job_action(op: str, summary: str, conflict: str) -> dict[str, Any]:
    return {
        "parameters": [p("job_id"), p("job_queue")],
        "post": {
            "operationId": op,
            "summary": summary,
            "responses": {
                "200": json_content(ref("Job"), "The job as it is now."),
                **errors(*WRITES),
                **_conflict(conflict),
            },
        },
    }


def _signal(signal: str, summary: str) -> dict[str, Any]:
    answer = {
        "type": "object",
        "required": ["worker", "signal"],
        "properties": {"worker": {"type": "string"}, "signal": {"const": signal}},
    }
    return {
        "parameters": [p("worker_id")],
        "post": {
            "operationId": f"{signal}Worker",
            "summary": summary,
            "description": "The worker reads it with its next registry refresh (lease_ttl / 3 "
            "seconds at most); a worker process over several queues acts as one.",
            "responses": {
                "202": json_content(answer, "Left for the worker."),
                **errors(*WRITES),
            },
        },
    }


def _switch(verb: str, summary: str) -> dict[str, Any]:
    answer = {
        "type": "object",
        "required": ["queue", "paused", "changed"],
        "properties": {
            "queue": {"type": "string"},
            "paused": {"type": "boolean"},
            "changed": {"type": "boolean", "description": "False: it already was."},
        },
    }
    return {
        "parameters": [p("queue")],
        "post": {
            "operationId": f"{verb}Queue",
            "summary": summary,
            "responses": {"200": json_content(answer, "Done."), **errors(*WRITES)},
        },
    }


def _page() -> list[dict[str, Any]]:
    return [
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST, "default": 50},
        },
        {
            "name": "cursor",
            "in": "query",
            "schema": {"type": "integer", "minimum": 0, "maximum": 10**12, "default": 0},
        },
    ]


def _bulk() -> dict[str, Any]:
    body = {
        "type": "object",
        "required": ["action", "ids"],
        "additionalProperties": False,
        "properties": {
            "action": {"type": "string", "enum": list(ACTIONS)},
            "ids": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_IDS,
                "items": {"type": "string", "pattern": JOB_ID.pattern},
            },
        },
    }
    ids = {"type": "array", "items": {"type": "string"}}
    answer = {
        "type": "object",
        "required": ["queue", "action", "done", "skipped"],
        "properties": {
            "queue": {"type": "string"},
            "action": {"type": "string", "enum": list(ACTIONS)},
            "done": ids,
            "skipped": {
                **ids,
                "description": "Jobs the action did not apply to (gone, or in another status).",
            },
        },
    }
    return {
        "parameters": [p("queue")],
        "post": {
            "operationId": "bulkAction",
            "summary": "Retry (failed or cancelled), cancel (unfinished), delete (finished) or "
            "run now (scheduled) chosen jobs of the queue, each on its own",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body}},
            },
            "responses": {
                "200": json_content(answer, "What was done."),
                **errors(400, 413, 415, *WRITES),
            },
        },
    }


def _dead() -> dict[str, Any]:
    page = {
        "type": "object",
        "required": ["queue", "count", "jobs", "cursor"],
        "properties": {
            "queue": {"type": "string"},
            "count": {"type": "integer", "minimum": 0, "description": "Dead letters kept."},
            "jobs": {"type": "array", "items": ref("Job")},
            "cursor": {"type": ["integer", "null"]},
        },
    }
    return {
        "/queues/{queue}/dead": {
            "parameters": [p("queue")],
            "get": {
                "operationId": "listDead",
                "summary": "A page of the queue's dead letters (jobs that failed for good), "
                "newest first, with their errors",
                "parameters": _page(),
                "responses": {"200": json_content(page, "The dead letters."), **errors(422)},
            },
        },
        "/queues/{queue}/dead:retry": {
            "parameters": [p("queue")],
            "post": {
                "operationId": "retryDead",
                "summary": "Run every dead letter of the queue again",
                "responses": {
                    "200": counted("retried", "How many were put back."),
                    **errors(*WRITES),
                },
            },
        },
    }


def _history() -> dict[str, Any]:
    minutes = {
        "name": "minutes",
        "in": "query",
        "description": "How far back (a note a minute, kept a day).",
        "schema": {"type": "integer", "minimum": 1, "maximum": HISTORY_MINUTES, "default": 60},
    }
    answer = json_content(ref("History"), "The columns.")
    return {
        "/queues/{queue}/history": {
            "parameters": [p("queue")],
            "get": {
                "operationId": "queueHistory",
                "summary": "The queue's processed and failed per minute, depth and latency "
                "over time, noted a minute apart by its workers",
                "parameters": [minutes],
                "responses": {"200": answer, **errors(422)},
            },
        },
        "/history": {
            "get": {
                "operationId": "history",
                "summary": "The history of every queue, summed minute by minute",
                "parameters": [minutes],
                "responses": {"200": answer, **errors(422)},
            }
        },
    }


def delete_job() -> dict[str, Any]:
    """The ``delete`` operation of ``/jobs/{job_id}``."""
    answer = {
        "type": "object",
        "required": ["deleted", "queue"],
        "properties": {"deleted": {"type": "string"}, "queue": {"type": "string"}},
    }
    return {
        "operationId": "deleteJob",
        "summary": "Delete a finished job now (its hash, log and index entries)",
        "responses": {
            "200": json_content(answer, "Deleted."),
            **errors(*WRITES),
            **_conflict("The job has not finished."),
        },
    }


def operations() -> dict[str, Any]:
    """The paths of the operator actions."""
    workers = {
        "type": "object",
        "required": ["workers"],
        "properties": {"workers": {"type": "array", "items": ref("Worker")}},
    }
    gone = {
        "name": "gone",
        "in": "query",
        "description": "Also the workers lost or stopped within the last hour.",
        "schema": {"type": "string", "enum": ["true", "false"]},
    }
    return {
        "/queues/{queue}/jobs:bulk": _bulk(),
        "/queues/{queue}/pause": _switch("pause", "Pause the queue: its workers start nothing new"),
        "/queues/{queue}/resume": _switch("resume", "Resume the queue"),
        **_dead(),
        "/jobs/{job_id}/retry": _job_action(
            "retryJob", "Run a failed or cancelled job again", "The job is neither."
        ),
        "/jobs/{job_id}/run-now": _job_action(
            "runJobNow", "Run a scheduled job now", "The job is not scheduled."
        ),
        "/workers": {
            "get": {
                "operationId": "listWorkers",
                "summary": "The workers: live and quiet ones (with gone=true, lost and stopped "
                "ones too)",
                "parameters": [gone],
                "responses": {"200": json_content(workers, "The workers."), **errors(422)},
            }
        },
        **_history(),
        "/workers/{worker_id}/quiet": _signal("quiet", "Have a worker take no more jobs"),
        "/workers/{worker_id}/stop": _signal("stop", "Stop a worker gracefully"),
    }
