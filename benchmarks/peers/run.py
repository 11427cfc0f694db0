"""Side-by-side benchmark of redisjobs and its Python peers, on one private redis-server.

Usage (from the repository root, with the project's venv)::

    python benchmarks/peers/run.py [--full | --smoke] [--repeat N] [--libs redisjobs,arq,...]
                                   [--out benchmarks/RESULTS.md] [--json PATH]

Every peer (arq, saq, taskiq + taskiq-redis, streaq, bullmq, rq) gets its own venv under
``benchmarks/.venvs/<lib>`` (their Redis clients conflict), installed from the pinned
``benchmarks/peers/requirements/<lib>.txt`` when it exists, else from the loose specs below
and then pinned into that file (``--upgrade`` re-resolves and re-pins). redisjobs runs in the
interpreter running this script. Each library's adapter (``adapters/<lib>.py``) runs as a
subprocess in its venv and drives the same workloads through :mod:`harness`; this script starts
one redis-server (free loopback port, ``--save "" --appendonly no``), FLUSHALLs it before every
adapter run, interleaves the repetitions (every library once, then again, the order rotated),
and writes a Markdown table of medians (min to max) with the ratio of redisjobs to the best peer.
A workload a library cannot do, or that fails, is ``n/a`` with the reason in a footnote.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PEERS_DIR = Path(__file__).resolve().parent
BENCH_DIR = PEERS_DIR.parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(PEERS_DIR))  # harness.py, when run as a script or imported by a test

from harness import FULL, HIGHER, SMOKE, InfoClient, MetricDef, Sizes, metric_defs  # noqa: E402

OURS = "redisjobs"
PEERS: dict[str, list[str]] = {
    "arq": ["arq", "hiredis", "uvloop"],
    # saq imports typing_extensions without declaring it (0.26.4); its "redis" extra caps redis.
    "saq": ["saq[redis,hiredis]", "typing_extensions", "uvloop"],
    "taskiq": ["taskiq", "taskiq-redis", "hiredis", "uvloop"],
    # streaq's client, coredis, has its own compiled parser: hiredis would go unused.
    "streaq": ["streaq", "uvloop"],
    "bullmq": ["bullmq", "hiredis", "uvloop"],
    # rq is synchronous: no event loop, so no uvloop.
    "rq": ["rq", "hiredis"],
}
"""Peer -> what to pip install when no pinned requirements file exists yet."""
ALL_LIBS = [OURS, *PEERS]
REQUIREMENTS_DIR = PEERS_DIR / "requirements"
DEFAULT_VENVS = BENCH_DIR / ".venvs"
DEFAULT_OUT = BENCH_DIR / "RESULTS.md"
STAMP = ".bench-requirements-sha256"
EN_DASH = "\u2013"  # typography of the report, spelled out for the linter
TIMES = "\u00d7"

log = logging.getLogger("benchmarks.peers.run")


# -- venvs --------------------------------------------------------------------------------------


class SetupError(Exception):
    """A peer's venv could not be built (the message becomes its footnote)."""


def pip(python: Path, *args: str) -> str:
    """Run pip in a venv; raise :class:`SetupError` with pip's last words when it fails."""
    cmd = [str(python), "-m", "pip", "--disable-pip-version-check", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        lines = [line for line in out.stderr.splitlines() if "is ignored" not in line]
        raise SetupError(f"`pip {' '.join(args)}` failed: {' '.join(lines[-3:])[:300]}")
    return out.stdout


def venv_python(venvs: Path, lib: str) -> Path:
    """The interpreter of `lib`'s venv."""
    return venvs / lib / "bin" / "python"


def ensure_venv(lib: str, venvs: Path, base_python: str, upgrade: bool) -> Path:
    """`lib`'s venv, built or refreshed from its pinned requirements (pinning them if new)."""
    pinned = REQUIREMENTS_DIR / f"{lib}.txt"
    venv = venvs / lib
    python = venv_python(venvs, lib)
    if upgrade and venv.exists():
        shutil.rmtree(venv)
    text = None if upgrade or not pinned.exists() else pinned.read_text()
    stamp = venv / STAMP
    digest = None if text is None else hashlib.sha256(text.encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python
    if not python.exists():
        log.warning("creating the %s venv in %s", lib, venv)
        made = subprocess.run(
            [base_python, "-m", "venv", str(venv)], capture_output=True, text=True, check=False
        )
        if made.returncode != 0:
            raise SetupError(f"`python -m venv` failed: {made.stderr.strip()[-300:]}")
    if text is None:
        log.warning("installing %s: %s (then pinning them)", lib, " ".join(PEERS[lib]))
        pip(python, "install", "--quiet", *PEERS[lib])
        frozen = pip(python, "freeze", "--exclude-editable")
        header = (
            f"# {lib}'s venv for benchmarks/peers, pinned by run.py on "
            f"{datetime.date.today()} from: {' '.join(PEERS[lib])}\n"
            "# Delete this file (or pass --upgrade) to re-resolve the latest versions.\n"
        )
        REQUIREMENTS_DIR.mkdir(exist_ok=True)
        pinned.write_text(header + frozen)
        text = pinned.read_text()
    else:
        log.warning("installing %s from %s", lib, pinned.relative_to(REPO_ROOT))
        pip(python, "install", "--quiet", "-r", str(pinned))
    stamp.write_text(hashlib.sha256(text.encode()).hexdigest() + "\n")
    return python


# -- running the adapters -----------------------------------------------------------------------


@dataclass
class Outcome:
    """One adapter run: its JSON report, or why there is none."""

    lib: str
    report: dict[str, Any] | None
    error: str | None = None
    seconds: float = 0.0


def adapter_env(lib: str) -> dict[str, str]:
    """The adapter's environment: ``benchmarks/peers`` importable (and, for us, the repo)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    paths = [str(PEERS_DIR)]
    if lib == OURS:
        paths += [str(BENCH_DIR), str(REPO_ROOT)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_adapter(lib: str, python: str, url: str, sizes: Sizes, timeout: float) -> Outcome:
    """Run `lib`'s adapter once against `url`; failures become an :class:`Outcome` error."""
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        out = Path(tmp) / "report.json"
        cmd = [python, "-m", f"adapters.{lib}", "--url", url, "--sizes", sizes.to_json()]
        cmd += ["--out", str(out)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd,
                cwd=PEERS_DIR,
                env=adapter_env(lib),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Outcome(lib, None, f"adapter run exceeded {timeout:.0f} s", timeout)
        seconds = time.perf_counter() - t0
        if proc.stderr.strip():
            log.info("%s stderr:\n%s", lib, proc.stderr.strip()[-3000:])
        if proc.returncode != 0 or not out.exists():
            tail = " ".join(proc.stderr.strip().splitlines()[-2:])[-300:]
            return Outcome(lib, None, f"adapter exited with {proc.returncode}: {tail}", seconds)
        report: dict[str, Any] = json.loads(out.read_text())
        return Outcome(lib, report, None, seconds)


def order(libs: Sequence[str], rep: int) -> list[str]:
    """`libs` rotated by `rep`, so no library always runs first (or last)."""
    k = rep % len(libs)
    return [*libs[k:], *libs[:k]]


# -- aggregation --------------------------------------------------------------------------------


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
        if lib != OURS and (med := results[lib].cells.get(m.key, Cell()).median) is not None
    }
    if ours is None or not peers:
        return "n/a"
    pick = max if m.better == HIGHER else min
    best = pick(peers, key=lambda lib: peers[lib])
    if peers[best] == 0:
        return f"n/a (best: {best}, 0)"
    return f"{ours / peers[best]:.2f}{TIMES} ({best})"


def results_table(
    results: dict[str, LibResults], libs: Sequence[str], sizes: Sizes, notes: Footnotes
) -> list[str]:
    """The main table: one row per metric, one column per library, then the ratio."""
    head = ["Workload", "Unit", *libs, "redisjobs ÷ best peer"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(libs) + 1)]
    for m in metric_defs(sizes):
        arrow = "↑" if m.better == HIGHER else "↓"
        row = [m.label, f"{m.unit} {arrow}"]
        row += [render_cell(results[lib], m, notes) for lib in libs]
        row.append(ratio_cell(results, m, libs))
        lines.append("| " + " | ".join(row) + " |")
    return lines


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


def render(run: Run, results: dict[str, LibResults]) -> str:
    """The whole RESULTS.md."""
    notes = Footnotes()
    table = results_table(results, run.libs, run.sizes, notes)
    s = run.sizes
    out = ["# redisjobs and its Python peers, side by side", ""]
    if run.smoke:
        out += [
            "> **Smoke run** (tiny sizes, one repetition): it only shows that every adapter runs",
            "> end to end. These numbers are not results; rerun without `--smoke` on a quiet",
            "> machine for the real table.",
            "",
        ]
    out += [
        f"- Command: `python {' '.join(run.argv)}` ({run.seconds / 60:.1f} min, {run.started})",
        f"- Machine: {run.machine}",
        f"- Repetitions: {run.repeat}, interleaved (every library once, then again; the order "
        f"rotates); each cell is the median, (min{EN_DASH}max) when the repetitions differ",
        f"- Sizes: {s.jobs:,} jobs for enqueue and processing, {s.sleep_jobs:,} sleep jobs, "
        f"{s.latency_samples:,} latency samples, {s.memory_jobs:,} jobs for memory; worker "
        f"concurrency {s.concurrency}; one private redis-server, FLUSHALL before every library's "
        "run",
        "- ↑ higher is better, ↓ lower is better; the last column is redisjobs' median divided by "
        "the best peer's (so > 1 is better on ↑ rows, < 1 on ↓ rows)",
        "",
        *table,
        "",
        "## Versions",
        "",
        *versions_table(results, run.libs),
        "",
        "## How each library is driven",
        "",
    ]
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
    """The method, as bullets (kept short; harness.py's docstring has the details)."""
    return [
        "- Each library runs in its own venv (`benchmarks/.venvs/<lib>`, pinned by "
        "`benchmarks/peers/requirements/<lib>.txt`) through its adapter "
        "(`benchmarks/peers/adapters/<lib>.py`), on its documented API; the shared driver is "
        "`benchmarks/peers/harness.py`. uvloop and hiredis wherever the library can use them, "
        "logging at WARNING everywhere.",
        "- Enqueue rows: one warm-up enqueue, then the timed jobs into a fresh queue (one by "
        "one; 32 calls outstanding; one call of the library's bulk API).",
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


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--full", action="store_true", help="full sizes (the default)")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition")
    p.add_argument("--repeat", type=int, help="repetitions (3 full, 1 smoke)")
    p.add_argument(
        "--libs",
        action="append",
        help=f"comma-separated libraries to run (default: {','.join(ALL_LIBS)})",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the Markdown report")
    p.add_argument("--json", type=Path, help="also write every raw adapter report here")
    p.add_argument("--venvs", type=Path, default=DEFAULT_VENVS, help="where peer venvs live")
    p.add_argument("--python", default=sys.executable, help="the interpreter for peer venvs")
    p.add_argument("--upgrade", action="store_true", help="re-resolve and re-pin peer venvs")
    p.add_argument("--timeout", type=float, help="seconds per adapter run (3600 full, 600 smoke)")
    p.add_argument("-v", "--verbose", action="store_true", help="show adapters' stderr")
    args = p.parse_args(argv)
    libs = [x for chunk in args.libs or [",".join(ALL_LIBS)] for x in chunk.split(",") if x]
    unknown = sorted(set(libs) - set(ALL_LIBS))
    if unknown:
        p.error(f"unknown libraries {unknown}; known: {ALL_LIBS}")
    args.libs = [lib for lib in ALL_LIBS if lib in libs]  # redisjobs first, then peers
    args.repeat = args.repeat or (1 if args.smoke else 3)
    args.timeout = args.timeout or (600.0 if args.smoke else 3600.0)
    return args


def interpreters(
    args: argparse.Namespace, results: dict[str, LibResults], keys: list[str]
) -> dict[str, str]:
    """Each library's interpreter; a peer whose venv fails is recorded and left out."""
    pythons: dict[str, str] = {}
    for lib in args.libs:
        if lib == OURS:
            pythons[lib] = sys.executable
            continue
        try:
            pythons[lib] = str(ensure_venv(lib, args.venvs, args.python, args.upgrade))
        except SetupError as exc:
            log.error("%s: %s", lib, exc)
            for _ in range(args.repeat):
                results[lib].fail_all(f"venv setup failed: {exc}", keys)
    return pythons


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A private redis-server (no persistence) for the whole run; yields its URL."""
    from redisjobs.testing import RedisServer

    with RedisServer() as server:
        yield server.url


def main(argv: Sequence[str] | None = None) -> int:
    """Build the venvs, run every library `--repeat` times, interleaved, write the report."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    sizes = SMOKE if args.smoke else FULL
    keys = [m.key for m in metric_defs(sizes)]
    results = {lib: LibResults(lib) for lib in args.libs}
    t0 = time.perf_counter()
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    pythons = interpreters(args, results, keys)
    raw: list[dict[str, Any]] = []
    with private_redis() as url:
        redis = InfoClient(url)
        version = redis.info("server").get("redis_version", "?")
        box = machine(version)
        for rep in range(args.repeat):
            for lib in order([lib for lib in args.libs if lib in pythons], rep):
                redis.command("FLUSHALL")  # our private server only
                log.warning("repetition %d/%d: %s ...", rep + 1, args.repeat, lib)
                outcome = run_adapter(lib, pythons[lib], url, sizes, args.timeout)
                log.warning(
                    "repetition %d/%d: %s done in %.1f s%s",
                    rep + 1,
                    args.repeat,
                    lib,
                    outcome.seconds,
                    f" ({outcome.error})" if outcome.error else "",
                )
                results[lib].add(outcome, keys)
                entry = {"repetition": rep, "lib": lib, "error": outcome.error}
                raw.append({**entry, **(outcome.report or {})})
        redis.close()
    argv_text = ["benchmarks/peers/run.py", *(sys.argv[1:] if argv is None else argv)]
    run = Run(argv_text, args.smoke, args.repeat, sizes, args.libs, version, box, started)
    run.seconds = time.perf_counter() - t0
    text = render(run, results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"sizes": sizes.to_json(), "runs": raw}, indent=2) + "\n")
    print(text)
    print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
