"""The shared driver of the benchmark: the same workloads for every library, redisjobs included.

An adapter (``adapters/<lib>.py``) implements a handful of primitives on one library's documented
API (enqueue one job, enqueue in bulk, wait for a result, count completed jobs, run a worker)
and calls :func:`main`. The package does the rest identically for every library: fresh queue
names, timing, worker subprocesses, ``INFO`` snapshots, ``/proc`` CPU readings and the JSON
report that ``run.py`` aggregates. It imports nothing outside the standard library because it
runs inside every peer's own venv (their Redis clients conflict, so there is no common one): the
driver talks to Redis for its measurements over a tiny RESP client of its own
(:mod:`harness.probes`).

Modules: :mod:`harness.sizes` (sizes and the table's rows), :mod:`harness.probes` (Redis
``INFO``, ``/proc`` CPU, statistics), :mod:`harness.adapter` (the interface an adapter
implements), :mod:`harness.workers` (gated worker subprocesses), :mod:`harness.workloads` (the
workloads and their order), :mod:`harness.cli` (an adapter's command line) and
:mod:`harness.render` (the Markdown report ``run.py`` writes).

Method, the same for every library:

- every workload gets a fresh queue name; ``run.py`` FLUSHALLs the private server between
  libraries, never inside one adapter run;
- *enqueue* workloads time ``n`` enqueues (one by one, 32 in flight, or one bulk call) after one
  warm-up enqueue into the same queue; the *sync API* ones call the library's synchronous
  producer (where it has one) in a thread of their own, timed inside that thread, one thread or
  32 sharing one producer;
- *processing* workloads are pre-filled: the jobs are enqueued first (bulk API, else 32 in
  flight), then the worker process(es) are started and import everything, print ``ready`` and
  block on stdin; the clock, the CPU counters and the ``INFO`` snapshot start when the driver
  writes ``go``, and stop when the library's own completed count reaches ``n`` (polled every
  5 ms; the polling commands are subtracted from the command counts). Interpreter start-up and
  imports are thus excluded for everyone, the library's connection set-up is included;
- *latency* is ``enqueue`` + the library's documented wait, one at a time, with a worker running;
- *memory* is the growth of ``used_memory`` while ``n`` jobs are enqueued one by one (one
  connection, so no client buffers of note) with no worker.
"""

from harness.adapter import Adapter, Unsupported, ceil_seconds, group_completed, split
from harness.cli import main

__all__ = ["Adapter", "Unsupported", "ceil_seconds", "group_completed", "main", "split"]
