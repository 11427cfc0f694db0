"""The OpenAPI schemas of the operator views: queues, Redis nodes, workers, history."""

from __future__ import annotations

from typing import Any

from ..workerinfo import LISTED_JOBS


def fleet_schemas() -> dict[str, Any]:
    """The schemas of :mod:`.openapi_schemas` for the operator views."""
    return {
        "Queue": _queue(),
        "Node": _node(),
        "Worker": worker_schema(),
        "History": _history(),
        "Redis": _redis(),
    }


def _redis() -> dict[str, Any]:
    """A Redis server's facts (redisjobs.serverfacts.ServerFacts) and its risky settings."""
    whole = {"type": "integer", "minimum": 0}
    props: dict[str, Any] = {
        "version": {"type": "string"},
        "mode": {"type": "string"},
        "uptime_s": whole,
        "used_memory": whole,
        "maxmemory": {**whole, "description": "0: no limit."},
        "maxmemory_policy": {"type": "string"},
        "fragmentation": {"type": "number"},
        "clients": whole,
        "blocked_clients": whole,
        "appendonly": {"type": "boolean"},
        "last_save": {**whole, "description": "The last RDB snapshot (Unix time; 0: never)."},
        "ops_per_sec": whole,
        "risks": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Settings that lose jobs: an eviction policy, no AOF.",
        },
    }
    return {"type": "object", "required": list(props), "properties": props}


def _queue() -> dict[str, Any]:
    return {
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
            "latency": {
                "type": "number",
                "description": "Seconds the oldest pending job has waited.",
            },
            "read_at": {
                "type": "number",
                "description": "Redis's clock at the read (Unix time).",
            },
            "warning": {"type": ["string", "null"]},
        },
    }


def _node() -> dict[str, Any]:
    """A Redis node serving the queues (redisjobs.nodes.NodeInfo)."""
    replica = "; null unless a replica"
    props: dict[str, Any] = {
        "address": {"type": "string", "description": "host:port (memory: the embedded one)."},
        "role": {"type": "string", "enum": ["master", "replica", "sentinel"]},
        "state": {
            "type": ["string", "null"],
            "description": "A replica's replication state (online once synced)" + replica,
        },
        "lag_s": {
            "type": ["integer", "null"],
            "description": "Seconds since it last acknowledged the master" + replica,
        },
        "offset_behind": {
            "type": ["integer", "null"],
            "description": "Bytes of the master's stream it has not acknowledged" + replica,
        },
    }
    return {
        "type": "object",
        "required": list(props),
        "additionalProperties": False,
        "properties": props,
    }


def worker_schema() -> dict[str, Any]:
    """The ``Worker`` schema."""
    when = {"type": ["string", "null"], "format": "date-time"}
    count = {"type": "integer", "minimum": 0}
    return {
        "type": "object",
        "required": ["id", "state", "host", "pid", "queues", "running", "processed", "failed"],
        "properties": {
            "id": {"type": "string"},
            "state": {
                "type": "string",
                "enum": ["live", "quiet", "lost", "offline"],
                "description": "lost: no heartbeat for a lease TTL; offline: it stopped.",
            },
            "host": {"type": "string"},
            "pid": {"type": "integer"},
            "queues": {"type": "array", "items": {"type": "string"}},
            "concurrency": count,
            "held": count,
            "running": {
                "type": "array",
                "items": {"type": "string"},
                "description": f"Ids of the jobs it runs ({LISTED_JOBS} at most).",
            },
            "processed": count,
            "failed": count,
            "hung_threads": count,
            "allowed": {"type": "string", "description": "What it may run."},
            "lease_ttl": {"type": ["number", "null"]},
            "started_at": when,
            "heartbeat_at": when,
            "stopped_at": when,
        },
    }


def _history() -> dict[str, Any]:
    """Columns for charts: the times, then each series, a value per time (null: a gap)."""
    column = {"type": "array", "items": {"type": ["number", "null"]}}
    series = ["processed", "failed", "enqueued", "waiting", "pending", "scheduled", "running"]
    return {
        "type": "object",
        "required": ["queue", "t", *series, "latency", "last"],
        "properties": {
            "queue": {"type": ["string", "null"], "description": "null: every queue, summed."},
            "t": {**column, "description": "Unix time of each point."},
            **{name: column for name in series},
            "latency": {**column, "description": "Seconds the oldest pending job had waited."},
            "last": {
                "type": ["object", "null"],
                "description": "The last note's time (Unix) and its counters, from which a "
                "live point is drawn.",
            },
        },
    }
