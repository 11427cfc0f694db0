"""Dependencies between jobs: who a job waits for, and what it does when one of them fails.

A job enqueued with ``depends_on`` waits (status ``waiting``) until every job it names (its
*parents*) has ended, then runs, in the script that records the last parent's outcome
(docs/architecture.md, "Flows"). On the wire its rule ``depends_on`` is one token per parent,
``policy:ref``, space separated; a ref is a job id of the job's own queue or ``queue/id``
(neither a queue name nor a job id holds a ``/``, a space or a ``:`` in an id).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, NamedTuple, get_args

from .names import check_job_id, check_queue_name

ParentPolicy = Literal["fail", "cancel", "ignore", "run"]
"""What a waiting job does when a parent fails for good or is cancelled:

* ``fail`` (the default): it fails at once without running (``failure`` is ``dependency``,
  its error names the parent and that parent's error), and so do the jobs waiting for it;
  a parent that was cancelled cancels it instead;
* ``cancel``: it is cancelled at once, without running, and so are the jobs waiting for it;
* ``ignore``: the parent counts as done: the job runs once the others complete, and
  ``ctx.children_failures()`` tells it which failed (BullMQ's ``ignoreDependencyOnFailure``);
* ``run``: it runs at once, without waiting for the other parents (a compensating step;
  BullMQ's ``continueParentOnFailure``), ``ctx.children_failures()`` telling why.

A retry of the failed parent (:meth:`redisjobs.Client.retry`) opens the edge again: the jobs
that ended because of it wait again, so a retried step continues its chain.
"""
POLICIES: frozenset[str] = frozenset(get_args(ParentPolicy))

MAX_PARENTS = 1000
"""The most parents one job may have (``_lib.lua``'s MAX_DEPS)."""


class Edge(NamedTuple):
    """One parent of a job: its ref and the policy on its failure."""

    ref: str
    """``queue/id``, or a bare id for a parent of the job's own queue."""
    policy: str


def ref_of(parent: object) -> str:
    """The ref of a parent as `depends_on` takes it: a job id (a job of the dependent's own
    queue), ``"queue/id"``, a ``(queue, id)`` pair, a :class:`~redisjobs.Job` or a task's job
    handle (anything with ``id`` and ``queue``).

    Raises:
        ValueError, TypeError: not a job or an invalid id or queue name.
    """
    if isinstance(parent, str):
        if "/" in parent:
            queue, _, job_id = parent.partition("/")
            return f"{check_queue_name(queue)}/{check_job_id(job_id)}"
        return check_job_id(parent)
    if isinstance(parent, tuple) and len(parent) == 2:
        return ref_of(f"{parent[0]}/{parent[1]}")
    pid, pqueue = getattr(parent, "id", None), getattr(parent, "queue", None)
    if isinstance(pid, str) and isinstance(pqueue, str):
        return ref_of(f"{pqueue}/{pid}") if pqueue else ref_of(pid)
    raise TypeError(
        f"depends_on takes job ids, 'queue/id' strings, (queue, id) pairs or jobs, "
        f"not {type(parent).__name__}"
    )


def check_policy(policy: object) -> str:
    """`policy` when it is a :data:`ParentPolicy`.

    Raises:
        ValueError: it is not.
    """
    if policy not in POLICIES:
        choices = ", ".join(sorted(POLICIES))
        raise ValueError(f"on_parent_failure must be one of {choices}, got {policy!r}")
    return str(policy)


def edges_of(parents: Iterable[Any], policy: object) -> list[Edge]:
    """The edges of `depends_on` (each parent once, :func:`ref_of`), each under `policy`,
    unless a parent is an :class:`Edge` already (a flow's, with its own policy).

    Raises:
        ValueError, TypeError: a bad parent or policy, none at all, or more than
            :data:`MAX_PARENTS`.
    """
    if isinstance(parents, str | bytes):
        raise TypeError("depends_on takes a list of jobs, not one string")
    default = check_policy("fail" if policy is None else policy)
    edges: dict[str, Edge] = {}
    for parent in parents:
        edge = parent if isinstance(parent, Edge) else Edge(ref_of(parent), default)
        edges.setdefault(edge.ref, edge)
    if not 1 <= len(edges) <= MAX_PARENTS:
        raise ValueError(f"depends_on takes 1-{MAX_PARENTS} jobs, got {len(edges)}")
    return list(edges.values())


def encode(edges: Iterable[Edge]) -> str:
    """The rule value of `edges`: ``policy:ref`` tokens, space separated."""
    return " ".join(f"{e.policy}:{e.ref}" for e in edges)


def decode(value: str) -> list[Edge]:
    """The edges of a ``depends_on`` field as stored (tokens that do not parse are skipped:
    the field may have been written by something else)."""
    out = []
    for token in value.split():
        policy, _, ref = token.partition(":")
        if ref and policy in POLICIES:
            out.append(Edge(ref, policy))
    return out


def split(ref: str, queue: str) -> tuple[str, str]:
    """(queue, job id) of `ref` as seen from a job of `queue`."""
    other, sep, job_id = ref.partition("/")
    return (other, job_id) if sep else (queue, ref)


def relative(ref: str, queue: str) -> str:
    """`ref` as seen from a job of `queue`: a bare id for a job of `queue`, else ``queue/id``."""
    other, job_id = split(ref, queue)
    return job_id if other == queue else f"{other}/{job_id}"


def foreign(edges: Iterable[Edge], queue: str) -> list[tuple[str, str]]:
    """(queue, job id) of each parent in `edges` of a queue other than `queue`."""
    out = []
    for edge in edges:
        other, job_id = split(edge.ref, queue)
        if other != queue:
            out.append((other, job_id))
    return out
