"""Pyjobkit's ``simulate`` command: run the jobs of a JSON (or YAML) file on an in-memory backend
and print a summary by status (exit 1 when one failed or timed out, 2 for a bad file)::

    {"jobs": [{"kind": "subprocess", "payload": {"cmd": "echo hi"}, "shadow": true}]}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .backends.memory import MemoryBackend
from .cli_common import CLIError, load_executor
from .engine import Engine
from .executors.http import HttpExecutor
from .executors.subprocess import SubprocessExecutor
from .logging import configure_logging
from .worker import Worker

__all__ = ["SimulateError", "main"]

_JOB_KEYS = ("kind", "payload", "priority", "max_attempts", "timeout_s", "idempotency_key")


class SimulateError(RuntimeError):
    """The input file is not a set of jobs."""


def _load_input(path: Path) -> dict[str, Any]:
    """The jobs file: JSON, or YAML (``.yaml``/``.yml``, with PyYAML installed)."""
    text = path.read_text(encoding="utf-8")
    try:
        data = _yaml(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except ValueError as exc:  # json's and yaml's parse errors alike
        raise SimulateError(f"{path}: cannot parse: {exc}") from exc
    if not isinstance(data, dict) or "jobs" not in data:
        raise SimulateError("the input must be a mapping with a top-level 'jobs' list")
    if not isinstance(data["jobs"], list):
        raise SimulateError("'jobs' must be a list")
    for job in data["jobs"]:
        if not isinstance(job, dict) or "kind" not in job:
            raise SimulateError(f"each job must define 'kind'; got {job!r}")
    return data


def _yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError as exc:
        raise SimulateError("YAML input needs PyYAML: install it, or use a .json file") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc


def _load_executor_factory(spec: str) -> Any:
    """The executor of an ``--executor module:factory`` option."""
    try:
        return load_executor(spec)
    except CLIError as exc:
        raise SimulateError(str(exc)) from exc


async def _simulate(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, fmt=args.log_format)
    jobs = _load_input(Path(args.input))["jobs"]
    extra = [_load_executor_factory(spec) for spec in args.executor or []]
    engine = Engine(
        backend=MemoryBackend(), executors=[SubprocessExecutor(), HttpExecutor(), *extra]
    )
    async with engine:
        ids = []
        for job in jobs:
            options = {k: job[k] for k in _JOB_KEYS if k in job}
            marks = {k: job[k] for k in ("shadow", "retry_policy", "tags") if k in job}
            ids.append(await engine.enqueue(**options | marks))
        worker = Worker(engine, max_concurrency=args.concurrency, poll_interval=0.01)
        worker.handle_signals = False
        await asyncio.wait_for(worker.run(once=True), timeout=args.timeout)
        summary: dict[str, list[dict[str, Any]]] = {}
        for job_id in ids:
            record = await engine.get(job_id)
            entry = {"id": str(job_id), "kind": record["kind"], "result": record["result"]}
            summary.setdefault(record["status"], []).append(entry)
    json.dump({"summary": summary}, sys.stdout, default=str, indent=2)
    sys.stdout.write("\n")
    return 1 if summary.get("failed") or summary.get("timeout") else 0


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and simulate."""
    parser = argparse.ArgumentParser(prog="pyjobkit-simulate", description=__doc__)
    parser.add_argument("input", help="the jobs file (.json)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to drain at most")
    parser.add_argument("--executor", action="append", help="module:factory, repeatable")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    args = parser.parse_args(argv)
    try:
        code = asyncio.run(_simulate(args))
    except (SimulateError, OSError) as exc:
        print(f"pyjobkit-simulate: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    raise SystemExit(code)
