"""The alert rules and the Grafana dashboard in docs/: promtool checks and unit-tests the rules
(and the dashboard's queries as PromQL), and every metric either uses is one /metrics serves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client", reason="the metrics extra is not installed")

from prometheus_client.parser import text_string_to_metric_families

from redisjobs import Client
from redisjobs.metrics import enable_job_durations, render
from tests.conftest import WorkerFactory

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "docs" / "prometheus"
DASHBOARD = ROOT / "docs" / "grafana" / "redisjobs.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus)")
METRIC = re.compile(r"\b((?:redisjobs|process)_[a-z_]+)")
# Grafana's variables, as values PromQL takes
VARIABLES = {"$__rate_interval": "5m", "$queue": ".*", "$job": ".*"}


def _promtool(*args: str, cwd: Path) -> None:
    assert PROMTOOL is not None
    run = subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _exprs() -> list[str]:
    panels: list[dict[str, Any]] = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p["targets"]]


@needs_promtool
def test_promtool_checks_and_unit_tests_the_alert_rules() -> None:
    _promtool("check", "rules", "alerts.yml", cwd=RULES)
    _promtool("test", "rules", "alerts.test.yml", cwd=RULES)


@needs_promtool
def test_the_dashboards_queries_are_promql(tmp_path: Path) -> None:
    rules = []
    for i, expr in enumerate(_exprs()):
        for name, value in VARIABLES.items():
            expr = expr.replace(name, value)
        rules.append(f"      - record: panel_{i}\n        expr: {json.dumps(expr)}\n")
    (tmp_path / "panels.yml").write_text("groups:\n  - name: panels\n    rules:\n" + "".join(rules))
    _promtool("check", "rules", "panels.yml", cwd=tmp_path)


def test_the_dashboard_is_laid_out() -> None:
    board = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and panel["targets"], panel["title"]
    assert {v["name"] for v in board["templating"]["list"]} == {"datasource", "job", "queue"}


async def test_every_metric_the_rules_and_the_dashboard_use_is_served(
    client: Client, worker: WorkerFactory
) -> None:
    enable_job_durations()
    await worker(modules=["tests.jobs"])
    job = await client.enqueue("call", {"fn": "tests.jobs:add", "args": [1, 2]})
    assert await client.wait(job.id, timeout=10) == 3
    served: set[str] = set()
    for family in text_string_to_metric_families((await render(client)).decode()):
        served |= {family.name, *(s.name for s in family.samples)}
    used = set(METRIC.findall((RULES / "alerts.yml").read_text() + " ".join(_exprs())))
    assert len(used) > 10
    assert used <= served, used - served
