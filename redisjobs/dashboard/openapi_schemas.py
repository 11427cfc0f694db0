"""The component schemas of the OpenAPI document (:mod:`.openapi`): what a job, its options, a
queue and a Redis node look like on the wire of the HTTP API (:mod:`.present` and :mod:`.data`
write them, :mod:`.validation` reads them)."""

from __future__ import annotations

from typing import Any, get_args

from ..deps import MAX_PARENTS, POLICIES
from ..flowview import MAX_NODES, MAX_PLAIN_DEPTH
from ..job import FailureReason, JobStatus
from ..jobrules import LIMIT_KEY, MAX_KEEP_COUNT, UNIQUE_KEY, UNIQUE_MODES
from ..names import JOB_ID
from .openapi_fleet import fleet_schemas
from .validation import NUMBERS, YEAR

STATUSES = [s.value for s in JobStatus]
QUEUE_PATTERN = r"^[A-Za-z0-9_.:\-]{1,128}$"


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema `name`."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A response (or body) of JSON matching `schema`."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema["type"]
    return {**schema, "type": [kind, "null"]}


# keep_completed / keep_failed: seconds, or {age, count}
_KEEP: dict[str, Any] = {
    "oneOf": [
        {"type": "null"},
        {"type": "number", "exclusiveMinimum": 0, "maximum": 10 * YEAR},
        {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "age": {"type": "number", "exclusiveMinimum": 0, "maximum": 10 * YEAR},
                "count": {"type": "integer", "minimum": 1, "maximum": MAX_KEEP_COUNT},
            },
        },
    ]
}


def _rules() -> dict[str, Any]:
    """The properties of the rules (redisjobs.jobrules.JobRules) but their plain numbers."""
    props: dict[str, Any] = {}
    for outcome in ("completed", "failed"):
        props[f"keep_{outcome}"] = {
            **_KEEP,
            "description": f"How long (seconds, or age) a job that {outcome} is kept instead "
            f"of result_ttl, and/or how many {outcome} jobs the queue keeps at most (count). "
            "Null or absent: none.",
        }
    props["unique"] = _nullable(
        {
            "type": "string",
            "enum": sorted(UNIQUE_MODES),
            "description": "While the job's unique lock is held, enqueueing a job with the same "
            "unique_key writes nothing and answers with the job holding it (duplicate: true). "
            "until_start: released when a run starts; until_done: when the job ends; "
            "while_queued: whenever it stops waiting (taken again by a retry).",
        }
    )
    props["unique_key"] = _nullable(
        {
            "type": "string",
            "pattern": f"^{UNIQUE_KEY.pattern}$",
            "description": "The unique lock's key (default: derived from kind and payload).",
        }
    )
    props["limit_key"] = _nullable(
        {
            "type": "string",
            "pattern": f"^{LIMIT_KEY.pattern}$",
            "description": "The job's limit key (a tenant): jobs of different keys are served "
            "round-robin, and the key's rate limit and max_running apply to it.",
        }
    )
    props.update(_parents())
    return props


def _parents() -> dict[str, Any]:
    """The properties of the jobs a job waits for (redisjobs.deps)."""
    queue, job_id = QUEUE_PATTERN.strip("^$"), JOB_ID.pattern.strip("^$")
    return {
        "depends_on": _nullable(
            {
                "type": "array",
                "items": {"type": "string", "pattern": f"^({queue}/)?{job_id}$"},
                "minItems": 1,
                "maxItems": MAX_PARENTS,
                "description": "The jobs it waits for (ids of the queue, queue/id of others; "
                "each must exist): it is waiting until they all completed, then runs. Not "
                "with delay or at. Null or absent: none.",
            }
        ),
        "on_parent_failure": _nullable(
            {
                "type": "string",
                "enum": sorted(POLICIES),
                "description": "What it does when a job it waits for fails or is cancelled: "
                "fail (the default: it fails without running, failure dependency), cancel, "
                "ignore (runs once the others completed), run (runs at once). Needs "
                "depends_on.",
            }
        ),
    }


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
        "priority": "0 to 2**21, lower runs sooner (default 100); FIFO within a priority. "
        "Strict: a job waits while more urgent ones are pending.",
        "unique_ttl": "Seconds the unique lock lasts at most (default 3600).",
        "idempotency_ttl": "Seconds after the job ends during which its job_id stays a "
        "duplicate (enqueued again with an idempotency_ttl), past its result_ttl.",
    }
    props: dict[str, Any] = {
        "job_id": _nullable(
            {
                "type": "string",
                "pattern": JOB_ID.pattern,
                "description": "A caller-chosen id: while a job with this id exists, "
                "enqueueing it again writes nothing and answers with that job.",
            }
        ),
        **_rules(),
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
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        "dependentSchemas": _dependent(),
    }


def _dependent() -> dict[str, Any]:
    """The options' ``dependentSchemas``: what an option given requires of the others."""
    # unique_key and unique_ttl belong to a unique job, on_parent_failure to one with parents
    return {
        "unique_key": _requires("unique", "string"),
        "unique_ttl": _requires("unique", "string"),
        "on_parent_failure": _requires("depends_on", "array"),
        # a job that waits for others is not delayed too
        "depends_on": {
            "anyOf": [
                {"properties": {"depends_on": {"type": "null"}}},
                {"properties": {"delay": {"type": "null"}, "at": {"type": "null"}}},
            ]
        },
    }


def _requires(option: str, kind: str) -> dict[str, Any]:
    """A schema that requires `option`, not null."""
    return {"required": [option], "properties": {option: {"type": kind}}}


def _job() -> dict[str, Any]:
    time = {"type": ["string", "null"], "format": "date-time"}
    props: dict[str, Any] = {
        "id": {"type": "string"},
        "name": {
            "type": "string",
            "description": "What the job runs: a call job's function name (its payload's fn), "
            "the kind for other kinds.",
        },
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
        "failure": {
            "type": ["string", "null"],
            "enum": [*get_args(FailureReason), None],
            "description": "Why the last run that failed did; null when none failed.",
        },
        "priority": {
            "type": "integer",
            "minimum": 0,
            "description": "Lower runs sooner; 100 unless given.",
        },
        "duplicate": {
            "type": "boolean",
            "description": "In an enqueue's answer: nothing was written, this job existed "
            "(its id, or the holder of the unique lock). False when read.",
        },
        **_job_flow(),
        "payload": {"description": "The payload, as JSON (absent in events' end)."},
    }
    return {
        "type": "object",
        "required": [name for name in props if name != "payload"],
        "additionalProperties": False,
        "properties": props,
    }


def _job_flow() -> dict[str, Any]:
    """The properties of a job that place it in a flow."""
    return {
        "depends_on": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The jobs it waits (or waited) for: ids of its own queue, "
            "queue/id of others.",
        },
        "dependents": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The jobs waiting for it, spelled as depends_on. Read with a job "
            "alone (GET /jobs/{job_id}); empty in listings and events.",
        },
        "flow": {
            "type": ["string", "null"],
            "description": "The flow (a chain, a chord) it belongs to: its last job's id, "
            "queue/id when of another queue; null for none.",
        },
    }


def _tree_node() -> dict[str, Any]:
    gone = "; null when the job is gone (expired or deleted)"
    props: dict[str, Any] = {
        "id": {"type": "string"},
        "queue": {"type": "string"},
        "status": {"type": ["string", "null"], "enum": [*STATUSES, None], "description": gone},
        "name": {"type": ["string", "null"], "description": "What it runs" + gone},
        "error": {"type": ["string", "null"]},
        "failure": {"type": ["string", "null"], "enum": [*get_args(FailureReason), None]},
        "children": {
            "type": "array",
            "items": ref("TreeNode"),
            "description": "The jobs it waited for.",
        },
    }
    return {
        "type": "object",
        "required": list(props),
        "additionalProperties": False,
        "properties": props,
    }


def schemas() -> dict[str, Any]:
    """The ``components.schemas`` of the document."""
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
                "options": {"anyOf": [ref("JobOptions"), {"type": "null"}]},
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
        "Tree": {
            "type": "object",
            "required": ["root", "cut"],
            "additionalProperties": False,
            "properties": {
                "root": ref("TreeNode"),
                "cut": {
                    "type": "boolean",
                    "description": f"Jobs were left out: past {MAX_NODES} jobs, or deeper "
                    f"than {MAX_PLAIN_DEPTH} levels.",
                },
            },
        },
        "TreeNode": _tree_node(),
        "JobPage": {
            "type": "object",
            "required": ["jobs", "cursor"],
            "additionalProperties": False,
            "properties": {
                "jobs": {"type": "array", "items": ref("Job")},
                "cursor": {
                    "type": ["integer", "null"],
                    "description": "Pass as ?cursor= for the next page; null: no more.",
                },
            },
        },
        **fleet_schemas(),
    }
