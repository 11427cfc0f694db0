"""Chains, groups, chords and flows: many jobs written as one, each waiting for the ones before.

A flow is planned here into jobs that wait for others (``depends_on``, see :mod:`redisjobs.deps`
and docs/architecture.md, "Flows"), and written parents first, so that nothing but the scripts
that record a job's end ever starts the next one:

* :func:`chain` runs its steps one after another; each step after the first receives the
  previous step's result as ``previous_result`` (Pyjobkit's chain: a ``call`` step's function
  gets it as a keyword argument, any other kind finds it in its payload map);
* :func:`group` runs its members side by side;
* :func:`chord` runs a group, then a callback that reads their results
  (``ctx.children_results()``); :func:`flow` is the same with BullMQ's words: a parent that
  runs after its children.

Steps may live on different queues. What a failure does follows each waiting job's
``on_parent_failure`` (default ``fail``: the rest of a chain fails with a reason naming the
failed step), or a child's own ``fail_parent_on_failure`` / ``ignore_dependency_on_failure``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .deps import Edge
from .executors._callspec import PREVIOUS
from .flowview import flow_members_flow, read_jobs_flow
from .job import Job, JobStatus
from .jobrules import RulePairs
from .keys import QueueKeys
from .options import new_job_id
from .producing import Producer, cancel_job_flow
from .roundtrips import Flow as Steps
from .task import TaskCall
from .wire import EnqueueRow

CHILD_POLICIES = {
    "fail_parent_on_failure": "fail",
    "ignore_dependency_on_failure": "ignore",
    "continue_parent_on_failure": "run",
}
"""A child step's options (BullMQ's names) that set what its parent does when it fails."""


@dataclass(frozen=True, slots=True)
class Step:
    """One job of a flow: what :meth:`redisjobs.Client.enqueue` takes.

    Args:
        kind: its executor.
        payload: its input.
        options: its enqueue options (``queue``, ``job_id``, ``priority``, ``max_retries``,
            ``on_parent_failure``...), and, for a child, one of :data:`CHILD_POLICIES`.
        call: the task call it was made of, if any.
    """

    kind: str
    payload: Any = None
    options: Mapping[str, Any] = field(default_factory=dict)
    call: TaskCall[Any] | None = None

    def edge_policy(self) -> str | None:
        """What the job waiting for this one does when it fails, when this step says."""
        said = [CHILD_POLICIES[k] for k in CHILD_POLICIES if self.options.get(k)]
        if len(said) > 1:
            raise ValueError(f"a step takes one of {', '.join(CHILD_POLICIES)}, not several")
        return said[0] if said else None


def step(kind: str, payload: Any = None, **options: Any) -> Step:
    """A step of a flow: a job of `kind` with `payload` and enqueue `options`."""
    return Step(kind, payload, options)


@dataclass(frozen=True, slots=True)
class Chain:
    """Nodes run one after another (:func:`chain`)."""

    nodes: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Group:
    """Nodes run side by side (:func:`group`)."""

    nodes: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Flow:
    """A parent step run after its children (:func:`flow`, :func:`chord`)."""

    parent: Step
    children: tuple[Node, ...]


Node = Step | Chain | Group | Flow
"""Anything a flow is made of."""

StepLike = Node | TaskCall[Any] | tuple[Any, ...]
"""What the builders take as a step: a node, a task call (``task.call(...)``, or
``task.options(...).call(...)``), ``(kind, payload)`` or ``(kind, payload, options)``."""


def as_node(item: StepLike) -> Node:
    """`item` as a node.

    Raises:
        TypeError: it is none of :data:`StepLike`.
    """
    if isinstance(item, Step | Chain | Group | Flow):
        return item
    if isinstance(item, TaskCall):
        payload = item.task.payload(item.args, item.kwargs, chained=True)
        return Step("call", payload, item.enqueue_options(), item)
    if isinstance(item, tuple) and len(item) in (2, 3) and isinstance(item[0], str):
        return Step(item[0], item[1], dict(item[2]) if len(item) == 3 else {})
    raise TypeError(
        "a step is a task call, (kind, payload), (kind, payload, options), a step(), "
        f"a chain, a group or a flow; got {type(item).__name__}"
    )


def chain(*steps: StepLike) -> Chain:
    """Steps that run one after another, each receiving the previous one's result as
    ``previous_result`` (a step after a group gets none: it reads ``ctx.children_results()``).
    """
    if not steps:
        raise ValueError("a chain needs at least one step")
    return Chain(tuple(as_node(s) for s in steps))


def group(*steps: StepLike | Iterable[StepLike]) -> Group:
    """Steps that run side by side: ``group(a, b)`` or ``group([a, b])``."""
    items: list[Any] = list(steps)
    if len(items) == 1 and not isinstance(items[0], tuple) and isinstance(items[0], Iterable):
        items = list(items[0])
    if not items:
        raise ValueError("a group needs at least one step")
    return Group(tuple(as_node(s) for s in items))


def flow(parent: StepLike, children: Iterable[StepLike]) -> Flow:
    """A parent step that runs after all its children (each a step, chain, group or flow),
    reading their results with ``ctx.children_results()``: BullMQ's flow."""
    node = as_node(parent)
    if not isinstance(node, Step):
        raise TypeError("a flow's parent is one step")
    kids = tuple(as_node(c) for c in children)
    if not kids:
        raise ValueError("a flow needs at least one child")
    return Flow(node, kids)


def chord(header: Group | Iterable[StepLike], callback: StepLike) -> Flow:
    """Celery's chord: the group `header`, then `callback` once all of it completed."""
    members = header.nodes if isinstance(header, Group) else group(list(header)).nodes
    return flow(callback, members)


@dataclass(slots=True)
class Planned:
    """One job of a planned flow."""

    step: Step
    queue: str
    job_id: str
    edges: list[Edge]
    pass_result: bool

    @property
    def ref(self) -> str:
        """``queue/id``."""
        return f"{self.queue}/{self.job_id}"


class Plan:
    """The jobs of a flow, parents first (:meth:`add`), as the Client writes them.

    Args:
        queue: the queue of a step that names none.
    """

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.jobs: list[Planned] = []

    def add(self, node: Node, parents: list[Planned], chained: bool = False) -> list[Planned]:
        """Plan `node` after `parents`; returns its last jobs (what comes next waits for)."""
        if isinstance(node, Step):
            return [self._job(node, parents, chained and len(parents) == 1)]
        if isinstance(node, Chain):
            tails = parents
            for i, part in enumerate(node.nodes):
                tails = self.add(part, tails, chained=chained or i > 0)
            return tails
        if isinstance(node, Group):
            return [tail for part in node.nodes for tail in self.add(part, parents, chained)]
        children = [tail for part in node.children for tail in self.add(part, parents, chained)]
        return [self._job(node.parent, children, False)]

    def _job(self, node: Step, parents: list[Planned], pass_result: bool) -> Planned:
        opts = node.options
        if pass_result:
            _check_receives(node)
        own = opts.get("on_parent_failure") or "fail"
        edges = [Edge(p.ref, p.step.edge_policy() or own) for p in parents]
        job_id = opts.get("job_id") or new_job_id()
        planned = Planned(node, opts.get("queue") or self.queue, job_id, edges, pass_result)
        self.jobs.append(planned)
        return planned


def _check_receives(node: Step) -> None:
    """Refuse a chained step that cannot take the previous step's result."""
    if node.call is not None and not node.call.takes(PREVIOUS):
        raise TypeError(
            f"task {node.call.task.name} follows another step in a chain, so it receives that "
            f"step's result as the keyword argument {PREVIOUS!r}, which it does not take"
        )
    if node.call is None and not isinstance(node.payload, Mapping | None):
        raise TypeError(
            f"a chained step's payload is a map (it receives {PREVIOUS!r} there), "
            f"got {type(node.payload).__name__}"
        )
    if isinstance(node.payload, Mapping) and PREVIOUS in node.payload:
        raise ValueError(f"a chained step's payload must leave {PREVIOUS!r} to the chain")


@dataclass(slots=True)
class FlowRun:
    """A flow as written (:meth:`redisjobs.Client.enqueue_flow`).

    Attributes:
        id: its id: the id of its last job (wait on it for the flow's result), or, for a flow
            that ends with several jobs side by side (a group), an id of no job.
        queue: the queue of its last job (the client's for a group).
        jobs: every job of it, parents first, as written (a re-sent flow with the same ids:
            the jobs as they are, marked :attr:`~redisjobs.Job.duplicate`).
        last: the ids of its last jobs: the one whose result is the flow's, or a group's.
    """

    id: str
    queue: str
    jobs: list[Job]
    last: list[str]

    @property
    def ref(self) -> str:
        """``queue/id``: what each of its jobs holds as its :attr:`~redisjobs.Job.flow`."""
        return f"{self.queue}/{self.id}"


def _rows(producer: Producer, plan: Plan, flow_ref: str) -> list[tuple[QueueKeys, EnqueueRow]]:
    """The enqueue row of each planned job, with its queue."""
    out = []
    for job in plan.jobs:
        opts = {k: v for k, v in job.step.options.items() if k not in _NOT_ENQUEUE}
        opts["job_id"] = job.job_id
        if job.edges:
            opts["depends_on"] = job.edges
        payload = job.step.payload
        if job.pass_result and payload is None:
            payload = {}  # a map, for the previous result to go in
        row = producer.row(job.step.kind, payload, opts)
        extra: RulePairs = (
            (("flow", flow_ref), ("pass_result", 1)) if job.pass_result else (("flow", flow_ref),)
        )
        out.append((QueueKeys(job.queue), row._replace(rules=row.rules + extra)))
    return out


_NOT_ENQUEUE = frozenset({"queue", "on_parent_failure", *CHILD_POLICIES})
"""A step's options that are the flow's, not its job's enqueue options."""


def enqueue_flow_flow(producer: Producer, node: StepLike, queue: str) -> Steps[FlowRun]:
    """Plan `node` (steps naming no queue go to `queue`) and write its jobs, parents first,
    each run of jobs of one queue in one batch.

    Raises:
        TypeError, ValueError: a step that is none, or an invalid option (nothing written).
    """
    plan = Plan(queue)
    last = plan.add(as_node(node), [])
    root_queue, root_id = (last[0].queue, last[0].job_id) if len(last) == 1 else (queue, "")
    root_id = root_id or new_job_id()
    rows = _rows(producer, plan, f"{root_queue}/{root_id}")  # every row checked before writing
    jobs: list[Job] = []
    start = 0
    for end in range(1, len(rows) + 1):
        if end == len(rows) or rows[end][0] != rows[start][0]:
            keys = rows[start][0]
            jobs += yield from producer.write_flow(keys, [row for _, row in rows[start:end]])
            start = end
    return FlowRun(root_id, root_queue, jobs, [p.job_id for p in last])


def cancel_flow_flow(queue: str, job_id: str) -> Steps[int]:
    """Cancel the flow whose last job is `job_id` of `queue`: each of its jobs not ended yet
    (one that runs is told to stop, as :meth:`redisjobs.Client.cancel` does); how many, those
    that a cancel of another ended in turn (they waited for it) included."""
    members = yield from flow_members_flow(queue, job_id)
    done, ended = 0, []
    for job in members:
        if job.status.is_final:
            continue
        if (yield from cancel_job_flow(QueueKeys(job.queue), job.id)):
            done += 1
        else:
            ended.append(job)
    if ended:
        now = yield from read_jobs_flow([(job.queue, job.id) for job in ended])
        done += sum(job is not None and job.status is JobStatus.CANCELLED for job in now)
    return done
