"""The benchmark of redisjobs: alone, or side by side with its Python peers, on one redis-server.

Usage (from the repository root, with the project's venv)::

    python benchmarks/peers/run.py [--full | --smoke] [--repeat N] [--libs redisjobs,arq,...]
                                   [--only LIB] [--jobs N] [--sleep-jobs N]
                                   [--latency-samples N] [--memory-jobs N] [--concurrency N]
                                   [--out PATH] [--json PATH]

``--only redisjobs`` measures redisjobs alone, with exactly the code of the side-by-side run
(no venv is built, and the report goes to stdout unless ``--out`` is given). Every peer (arq,
saq, taskiq + taskiq-redis, streaq, bullmq, rq) gets its own venv under
``benchmarks/.venvs/<lib>`` (their Redis clients conflict), installed from the pinned
``benchmarks/peers/requirements/<lib>.txt`` when it exists, else from the loose specs below
and then pinned into that file (``--upgrade`` re-resolves and re-pins). redisjobs runs in the
interpreter running this script, and so does ``floor``, a bare loop on redis-py
(``adapters/floor.py``: XADD, XREADGROUP, XACK + PUBLISH) that sets the floor each of redisjobs'
figures is also given as a share of. Each library's adapter (``adapters/<lib>.py``) runs as a
subprocess in its venv and drives the same workloads through :mod:`harness`; this script starts
one redis-server (free loopback port, ``--save "" --appendonly no``), FLUSHALLs it before every
adapter run, interleaves the repetitions (every library once, then again, the order rotated),
and writes a Markdown table of medians (min to max) with the ratio of redisjobs to the best peer
(:mod:`harness.render`). A workload a library cannot do, or that fails, is ``n/a`` with the
reason in a footnote.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PEERS_DIR = Path(__file__).resolve().parent
BENCH_DIR = PEERS_DIR.parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(PEERS_DIR))  # harness/, when run as a script or imported by a test

from harness.probes import InfoClient  # noqa: E402
from harness.render import FLOOR, OURS, LibResults, Outcome, Run, machine, render  # noqa: E402
from harness.sizes import FULL, SMOKE, Sizes, metric_defs, resized  # noqa: E402

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
ALL_LIBS = [OURS, FLOOR, *PEERS]
LOCAL = (OURS, FLOOR)
"""The libraries run in this interpreter: redisjobs, and the floor (redis-py only)."""
REQUIREMENTS_DIR = PEERS_DIR / "requirements"
DEFAULT_VENVS = BENCH_DIR / ".venvs"
DEFAULT_OUT = BENCH_DIR / "RESULTS.md"
STAMP = ".bench-requirements-sha256"

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


# -- main ---------------------------------------------------------------------------------------


def add_size_flags(p: argparse.ArgumentParser) -> None:
    """``--jobs`` and the other sizes, each overriding the full (or ``--smoke``) default."""
    p.add_argument("--jobs", type=positive, help="jobs for enqueue and processing (20000)")
    p.add_argument("--sleep-jobs", type=positive, help="jobs sleeping 10 ms (2000)")
    p.add_argument("--latency-samples", type=positive, help="enqueue -> result samples (1000)")
    p.add_argument("--memory-jobs", type=positive, help="queued jobs for memory (10000)")
    p.add_argument("--concurrency", type=positive, help="worker concurrency (100)")


def positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--full", action="store_true", help="full sizes (the default)")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition")
    p.add_argument("--repeat", type=positive, help="repetitions (3 full, 1 smoke)")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--libs", action="append", help=f"comma-separated libraries (default: {','.join(ALL_LIBS)})"
    )
    which.add_argument("--only", choices=ALL_LIBS, help="one library alone, e.g. redisjobs")
    add_size_flags(p)
    p.add_argument(
        "--out",
        type=Path,
        help="the Markdown report (default: benchmarks/RESULTS.md "
        "with peers; stdout only for one library)",
    )
    p.add_argument("--json", type=Path, help="also write every raw adapter report here")
    p.add_argument("--venvs", type=Path, default=DEFAULT_VENVS, help="where peer venvs live")
    p.add_argument("--python", default=sys.executable, help="the interpreter for peer venvs")
    p.add_argument("--upgrade", action="store_true", help="re-resolve and re-pin peer venvs")
    p.add_argument("--timeout", type=float, help="seconds per adapter run (3600 full, 600 smoke)")
    p.add_argument("-v", "--verbose", action="store_true", help="show adapters' stderr")
    args = p.parse_args(argv)
    args.libs = [args.only] if args.only else chosen_libs(p, args.libs)
    args.repeat = args.repeat or (1 if args.smoke else 3)
    args.timeout = args.timeout or (600.0 if args.smoke else 3600.0)
    if args.out is None and len(args.libs) > 1:
        args.out = DEFAULT_OUT
    return args


def chosen_libs(p: argparse.ArgumentParser, given: list[str] | None) -> list[str]:
    """The libraries of ``--libs`` (all by default), redisjobs first, then the peers."""
    libs = [x for chunk in given or [",".join(ALL_LIBS)] for x in chunk.split(",") if x]
    unknown = sorted(set(libs) - set(ALL_LIBS))
    if unknown:
        p.error(f"unknown libraries {unknown}; known: {ALL_LIBS}")
    return [lib for lib in ALL_LIBS if lib in libs]


def sizes_of(args: argparse.Namespace) -> Sizes:
    """The sizes asked for: explicit size flags win over the full or ``--smoke`` defaults."""
    return resized(
        SMOKE if args.smoke else FULL,
        jobs=args.jobs,
        sleep_jobs=args.sleep_jobs,
        latency_samples=args.latency_samples,
        memory_jobs=args.memory_jobs,
        concurrency=args.concurrency,
    )


def interpreters(
    args: argparse.Namespace, results: dict[str, LibResults], keys: list[str]
) -> dict[str, str]:
    """Each library's interpreter; a peer whose venv fails is recorded and left out."""
    pythons: dict[str, str] = {}
    for lib in args.libs:
        if lib in LOCAL:
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


@dataclass
class Plan:
    """What to run: libraries (with their interpreters), sizes, repetitions."""

    pythons: dict[str, str]
    sizes: Sizes
    repeat: int
    timeout: float
    keys: list[str]


def repetitions(plan: Plan, url: str, results: dict[str, LibResults]) -> list[dict[str, Any]]:
    """Every library once per repetition, the order rotated; returns the raw reports."""
    redis = InfoClient(url)
    raw: list[dict[str, Any]] = []
    try:
        for rep in range(plan.repeat):
            for lib in order(list(plan.pythons), rep):
                redis.command("FLUSHALL")  # our private server only
                step = f"repetition {rep + 1}/{plan.repeat}: {lib}"
                log.warning("%s ...", step)
                outcome = run_adapter(lib, plan.pythons[lib], url, plan.sizes, plan.timeout)
                failed = f" ({outcome.error})" if outcome.error else ""
                log.warning("%s done in %.1f s%s", step, outcome.seconds, failed)
                results[lib].add(outcome, plan.keys)
                entry = {"repetition": rep, "lib": lib, "error": outcome.error}
                raw.append({**entry, **(outcome.report or {})})
    finally:
        redis.close()
    return raw


def main(argv: Sequence[str] | None = None) -> int:
    """Build the venvs, run every library `--repeat` times, interleaved, write the report."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    sizes = sizes_of(args)
    keys = [m.key for m in metric_defs(sizes)]
    results = {lib: LibResults(lib) for lib in args.libs}
    t0 = time.perf_counter()
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    plan = Plan(interpreters(args, results, keys), sizes, args.repeat, args.timeout, keys)
    with private_redis() as url:
        version = redis_version(url)
        box = machine(version)  # its load average is the one at the start
        raw = repetitions(plan, url, results)
    argv_text = ["benchmarks/peers/run.py", *(sys.argv[1:] if argv is None else argv)]
    run = Run(argv_text, args.smoke, args.repeat, sizes, args.libs, version, box, started)
    run.seconds = time.perf_counter() - t0
    text = render(run, results)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"\nwritten to {args.out}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"sizes": sizes.to_json(), "runs": raw}, indent=2) + "\n")
    return 0


def redis_version(url: str) -> str:
    """The version of the redis-server at `url`."""
    redis = InfoClient(url)
    try:
        return redis.info("server").get("redis_version", "?")
    finally:
        redis.close()


if __name__ == "__main__":
    sys.exit(main())
