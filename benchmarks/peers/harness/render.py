"""The Markdown report of ``run.py``: the repetitions folded per library, then rendered.

With peers, every row ends with redisjobs' median divided by the best peer's; a single library
(``run.py --only``) gets its table without that column, plus its Redis commands per job by name.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.sizes import HIGHER, MetricDef, Sizes, metric_defs

OURS = "redisjobs"
FLOOR = "floor"
"""The bare loop over the same Redis (``adapters/floor.py``): not a peer, the floor under all."""
EN_DASH = "\u2013"  # typography of the report, spelled out for the linter
TIMES = "\u00d7"
INTERLEAVED = ", interleaved (every library once, then again; the order rotates)"


# -- aggregation --------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One adapter run: its JSON report, or why there is none."""

    lib: str
    report: dict[str, Any] | None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class Cell:
    """One library's numbers for one metric over the repetitions."""

    values: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        """The median, or None without a single value."""
        return statistics.median(self.values) if self.values else None


@dataclass
class LibResults:
    """Everything measured for one library."""

    lib: str
    cells: dict[str, Cell] = field(default_factory=dict)
    reports: list[dict[str, Any]] = field(default_factory=list)
    runs: int = 0

    def cell(self, key: str) -> Cell:
        """The cell of metric `key` (created empty)."""
        return self.cells.setdefault(key, Cell())

    def add(self, outcome: Outcome, keys: Sequence[str]) -> None:
        """Fold one adapter run in."""
        self.runs += 1
        if outcome.report is None:
            for k in keys:
                self.cell(k).errors.append(outcome.error or "no report")
            return
        self.reports.append(outcome.report)
        values: dict[str, float] = outcome.report["values"]
        errors: dict[str, str] = outcome.report["errors"]
        for k in keys:
            if k in values:
                self.cell(k).values.append(float(values[k]))
            else:
                self.cell(k).errors.append(errors.get(k, "not measured"))

    def fail_all(self, reason: str, keys: Sequence[str]) -> None:
        """Record that the library could not run at all."""
        self.runs += 1
        for k in keys:
            self.cell(k).errors.append(reason)


# -- rendering ----------------------------------------------------------------------------------


class Footnotes:
    """Numbered Markdown footnotes, one per distinct (library, reason)."""

    def __init__(self) -> None:
        self.notes: dict[tuple[str, str], int] = {}

    def ref(self, lib: str, reason: str) -> str:
        """The ``[^n]`` reference for `reason`, numbering it on first use."""
        n = self.notes.setdefault((lib, reason), len(self.notes) + 1)
        return f"[^{n}]"

    def render(self) -> list[str]:
        """The footnote definitions."""
        return [f"[^{n}]: {lib}: {reason}" for (lib, reason), n in self.notes.items()]


def number(value: float, digits: int) -> str:
    """`value` with thousands separators and `digits` decimals."""
    return f"{value:,.{digits}f}"


def render_cell(res: LibResults, m: MetricDef, notes: Footnotes) -> str:
    """``median (min-max)``, or ``n/a`` with a footnote; partial failures footnoted too."""
    cell = res.cells.get(m.key, Cell())
    reason = most_common(cell.errors)
    if cell.median is None:
        return f"n/a{notes.ref(res.lib, reason or 'not measured')}"
    text = number(cell.median, m.digits)
    lo, hi = min(cell.values), max(cell.values)
    if len(cell.values) > 1 and number(lo, m.digits) != number(hi, m.digits):
        text += f" ({number(lo, m.digits)}{EN_DASH}{number(hi, m.digits)})"
    if reason is not None:
        failed = f"failed in {len(cell.errors)} of {res.runs} repetitions: {reason}"
        text += notes.ref(res.lib, failed)
    return text


def most_common(reasons: list[str]) -> str | None:
    """The most frequent reason, or None."""
    return max(set(reasons), key=reasons.count) if reasons else None


def ratio_cell(results: dict[str, LibResults], m: MetricDef, libs: Sequence[str]) -> str:
    """redisjobs' median divided by the best peer's median, naming that peer."""
    ours = results[OURS].cells.get(m.key, Cell()).median if OURS in results else None
    peers = {
        lib: med
        for lib in libs
        if is_peer(lib) and (med := results[lib].cells.get(m.key, Cell()).median) is not None
    }
    if ours is None or not peers:
        return "n/a"
    pick = max if m.better == HIGHER else min
    best = pick(peers, key=lambda lib: peers[lib])
    if peers[best] == 0:
        return f"n/a (best: {best}, 0)"
    return f"{ours / peers[best]:.2f}{TIMES} ({best})"


def floor_cell(results: dict[str, LibResults], m: MetricDef) -> str:
    """redisjobs' median as a share of the floor's (1.00 would be the bare loop's cost); n/a
    when the floor measured nothing (its memory per job is within the noise of used_memory)."""
    ours = results[OURS].cells.get(m.key, Cell()).median if OURS in results else None
    floor = results[FLOOR].cells.get(m.key, Cell()).median if FLOOR in results else None
    if ours is None or floor is None or floor <= 0:
        return "n/a"
    return f"{ours / floor:.2f}{TIMES}"


def is_peer(lib: str) -> bool:
    """Whether `lib` is one of redisjobs' peers (neither redisjobs nor the floor)."""
    return lib not in (OURS, FLOOR)


def has_peers(libs: Sequence[str]) -> bool:
    """Whether any peer runs (only then is there a ratio to the best peer to show)."""
    return any(is_peer(lib) for lib in libs)


def has_floor(libs: Sequence[str]) -> bool:
    """Whether the floor runs beside redisjobs (then each figure is also given as its share)."""
    return FLOOR in libs and OURS in libs


def results_table(
    results: dict[str, LibResults], libs: Sequence[str], sizes: Sizes, notes: Footnotes
) -> list[str]:
    """The main table: one row per metric, one column per library, then the ratio (if peers)."""
    ratio, floor = has_peers(libs), has_floor(libs)
    head = ["Workload", "Unit", *libs, *(["redisjobs ÷ best peer"] if ratio else [])]
    head += ["redisjobs ÷ floor"] if floor else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for m in metric_defs(sizes):
        arrow = "↑" if m.better == HIGHER else "↓"
        row = [m.label, f"{m.unit} {arrow}"]
        row += [render_cell(results[lib], m, notes) for lib in libs]
        if ratio:
            row.append(ratio_cell(results, m, libs))
        if floor:
            row.append(floor_cell(results, m))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def commands_table(res: LibResults) -> list[str]:
    """Redis commands per job by name (enqueue, processing) from the last report, if any."""
    commands: dict[str, dict[str, float]] = res.reports[-1]["commands"] if res.reports else {}
    if not commands:
        return []
    lines = ["| Workload | Redis commands per job, by name |", "|---|---|"]
    for workload, calls in commands.items():
        named = ", ".join(f"{k} {v:g}" for k, v in calls.items())
        lines.append(f"| {workload} | {named} |")
    return ["## Redis commands per job", "", *lines, ""]


def versions_table(results: dict[str, LibResults], libs: Sequence[str]) -> list[str]:
    """Library, its versions, Python and event loop, from the adapters' own reports."""
    lines = ["| Library | Installed versions | Python | Event loop |", "|---|---|---|---|"]
    for lib in libs:
        reports = results[lib].reports
        if not reports:
            lines.append(f"| {lib} | not run | | |")
            continue
        r = reports[-1]
        versions = ", ".join(f"{k} {v}" for k, v in r["versions"].items())
        loop = "none (synchronous)" if lib == "rq" else r["event_loop"]
        lines.append(f"| {lib} | {versions} | {r['python']} | {loop} |")
    return lines


def machine(redis_version: str) -> str:
    """CPU model, cores, kernel, Python and Redis, on one line."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ""
    with contextlib.suppress(OSError):
        load = ", load average at start {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return (
        f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, redis-server {redis_version}{load}"
    )


@dataclass
class Run:
    """What the whole run was, for the header."""

    argv: list[str]
    smoke: bool
    repeat: int
    sizes: Sizes
    libs: list[str]
    redis_version: str
    machine: str
    started: str
    seconds: float = 0.0


def title(run: Run) -> list[str]:
    """The heading and, for a smoke run, the warning that its numbers are not results."""
    heading = "redisjobs and its Python peers, side by side" if has_peers(run.libs) else OURS
    out = [f"# {heading}", ""]
    if run.smoke:
        out += [
            "> **Smoke run** (tiny sizes, one repetition): it only shows that every adapter runs",
            "> end to end. These numbers are not results; rerun without `--smoke` on a quiet",
            "> machine for the real table.",
            "",
        ]
    return out


def setup_lines(run: Run) -> list[str]:
    """The bullets under the title: command, machine, repetitions, sizes, how to read it."""
    s = run.sizes
    out = [
        f"- Command: `python {' '.join(run.argv)}` ({run.seconds / 60:.1f} min, {run.started})",
        f"- Machine: {run.machine}",
        f"- Repetitions: {run.repeat}{INTERLEAVED if has_peers(run.libs) else ''}; each cell is "
        f"the median, (min{EN_DASH}max) when the repetitions differ",
        f"- Sizes: {s.jobs:,} jobs for enqueue and processing, {s.sleep_jobs:,} sleep jobs, "
        f"{s.latency_samples:,} latency samples, {s.memory_jobs:,} jobs for memory; worker "
        f"concurrency {s.concurrency}; one private redis-server, FLUSHALL before every library's "
        "run",
        "- ↑ higher is better, ↓ lower is better",
    ]
    if has_peers(run.libs):
        out[-1] += (
            "; `redisjobs ÷ best peer` is redisjobs' median divided by the best peer's (so > 1 "
            "is better on ↑ rows, < 1 on ↓ rows)"
        )
    if has_floor(run.libs):
        out[-1] += (
            "; `redisjobs ÷ floor` divides it by the floor's, a bare loop over the same Redis "
            "(`XADD` / `XREADGROUP` / `XACK` + `PUBLISH`) through redis-py: the least Redis work a "
            "stream-based queue can do, though not the least client time (a queue with its own "
            "pipelined connection can beat it where redis-py's per-command Python is the cost)"
        )
    return out


def render(run: Run, results: dict[str, LibResults]) -> str:
    """The whole report (``benchmarks/RESULTS.md`` for a run with the peers)."""
    notes = Footnotes()
    out = [*title(run), *setup_lines(run), ""]
    out += [*results_table(results, run.libs, run.sizes, notes), ""]
    if not has_peers(run.libs) and OURS in results:
        out += commands_table(results[OURS])
    out += ["## Versions", "", *versions_table(results, run.libs), ""]
    out += ["## How each library is driven", ""]
    for lib in run.libs:
        reports = results[lib].reports
        text = " ".join(reports[-1]["notes"]) if reports else "(no report)"
        out.append(f"- **{lib}**: {text}")
    out += ["", "## Method", "", *method_lines(), ""]
    footnotes = notes.render()
    if footnotes:
        out += ["## Notes", "", *footnotes, ""]
    return "\n".join(out)


def method_lines() -> list[str]:
    """The method, as bullets (kept short; the harness package's docstring has the details)."""
    return [
        "- Each library runs in its own venv (`benchmarks/.venvs/<lib>`, pinned by "
        "`benchmarks/peers/requirements/<lib>.txt`) through its adapter "
        "(`benchmarks/peers/adapters/<lib>.py`), on its documented API; the shared driver is "
        "`benchmarks/peers/harness/`. uvloop and hiredis wherever the library can use them, "
        "logging at WARNING everywhere.",
        "- Enqueue rows: one warm-up enqueue, then the timed jobs into a fresh queue (one by "
        "one; 32 calls outstanding; one call of the library's bulk API).",
        "- Sync API rows: the library's synchronous producer API (n/a where it has none), "
        "called in a thread of the driver's with its event loop idle, the clock started and "
        "stopped in that thread after one warm-up call; one thread calling one by one, or 32 "
        "threads sharing one producer (its client or connection pool).",
        "- Processing rows: the jobs are enqueued first (bulk API, else 32 in flight), then the "
        "worker process(es) start, import everything and wait; the clock, `/proc` CPU of the "
        "worker process tree and `INFO cpu`/`INFO commandstats` start at the go signal and stop "
        "when the library's own completed count reaches the total (polled every 5 ms; the "
        "polls' commands are subtracted). Commands run inside Lua scripts are counted, as "
        "`INFO commandstats` does.",
        "- Latency: enqueue + the library's documented wait for the result, one at a time, one "
        "worker process running.",
        "- Memory: growth of `used_memory` while the jobs are enqueued one by one, no worker.",
    ]
