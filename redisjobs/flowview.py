"""The read model of flows: a job with the tree of the jobs it waited for, and what waits for it.

A job's tree has the job at its root and, under each job, the jobs it depends on (the ones
that ran before it: a chain read from its last step back, a chord's callback over its group),
read level by level, one round trip per level whatever the queues. A job two others depend on
appears once, under the first; the tree is cut at :data:`MAX_NODES`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import deps
from .job import Job
from .keys import QueueKeys, Registry
from .queries import find_job_flow, get_jobs_flow
from .roundtrips import Flow, cmd

if TYPE_CHECKING:
    from .client import Client

MAX_NODES = 2000
"""Jobs one tree reads at most (a wider flow shows its first ones and says it was cut)."""
MAX_PLAIN_DEPTH = 200
"""Levels the plain (JSON) form of a tree nests at most: JSON readers, Python's among them,
refuse documents nested much deeper, and a chain of 2,000 steps is 2,000 levels."""


@dataclass(slots=True)
class TreeNode:
    """One job of a flow's tree.

    Attributes:
        queue: its queue.
        id: its id.
        job: the job; None when it is gone (expired or deleted).
        children: the jobs it waited for, each a node.
    """

    queue: str
    id: str
    job: Job | None
    children: list[TreeNode] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """``queue/id``."""
        return f"{self.queue}/{self.id}"

    def walk(self) -> Iterator[tuple[int, TreeNode]]:
        """Every node, depth first (the order a tree is printed in), with its depth."""
        stack: list[tuple[int, TreeNode]] = [(0, self)]
        while stack:
            depth, node = stack.pop()
            yield depth, node
            stack += [(depth + 1, child) for child in reversed(node.children)]


@dataclass(slots=True)
class Tree:
    """A job's tree (:func:`tree_flow`): its root and whether it was cut at :data:`MAX_NODES`."""

    root: TreeNode
    cut: bool = False

    def nodes(self) -> list[TreeNode]:
        """Its nodes, depth first."""
        return [node for _, node in self.root.walk()]

    def plain(self) -> dict[str, Any]:
        """The tree as JSON-ready values: ``{"root": node, "cut": bool}``, each node
        ``{id, queue, status, name, error, failure, children}`` (status, name, error and
        failure null for a job gone). Nodes deeper than :data:`MAX_PLAIN_DEPTH` are left out,
        and then `cut` is true as it is for a tree cut at :data:`MAX_NODES`."""
        cut = self.cut
        chain: list[dict[str, Any]] = []  # the plain nodes from the root to the last one made
        for depth, node in self.root.walk():
            if depth > MAX_PLAIN_DEPTH:
                cut = True
                continue
            plain = _plain_node(node)
            del chain[depth:]
            if chain:
                chain[-1]["children"].append(plain)
            chain.append(plain)
        return {"root": chain[0], "cut": cut}


def _plain_node(node: TreeNode) -> dict[str, Any]:
    job = node.job
    return {
        "id": node.id,
        "queue": node.queue,
        "status": job.status.value if job else None,
        "name": job.name if job else None,
        "error": job.error if job else None,
        "failure": job.failure if job else None,
        "children": [],
    }


def in_flow(job: Job) -> bool:
    """Whether `job` is part of a flow: it belongs to one, waits (or waited) for jobs, or jobs
    wait for it."""
    return bool(job.flow or job.depends_on or job.has_dependents)


def shown_root(job: Job) -> tuple[str, str]:
    """(queue, id) of the job whose tree shows `job` in its flow: the flow's last job when it
    belongs to one, else `job` itself."""
    return deps.split(job.flow, job.queue) if job.flow else (job.queue, job.id)


async def shown_tree(client: Client, job: Job) -> Tree | None:
    """The tree the views draw for `job` (None when it is in no flow): its flow's last job's
    (:func:`shown_root`), or its own when that job is gone (its flow ended and expired)."""
    if not in_flow(job):
        return None
    queue, root = shown_root(job)
    tree = await client.flow_tree(root, queue=queue)
    if tree is None and (queue, root) != (job.queue, job.id):
        tree = await client.flow_tree(job.id, queue=job.queue)
    return tree


def read_jobs_flow(pairs: list[tuple[str, str]]) -> Flow[list[Job | None]]:
    """The jobs (queue, id) of `pairs`, of any queues, None for one gone, in one round trip."""
    hashes = yield [cmd("hgetall", QueueKeys(q).job(j)) for q, j in pairs]
    return [Job.from_hash(q, j, h) if h else None for (q, j), h in zip(pairs, hashes, strict=True)]


def tree_flow(queue: str, job_id: str) -> Flow[Tree | None]:
    """The tree of job `job_id` of `queue` (None when there is no such job), with the
    :attr:`~redisjobs.Job.dependents` of its root."""
    (root_job,) = yield from read_jobs_flow([(queue, job_id)])
    if root_job is None:
        return None
    yield from dependents_flow([root_job])
    root = TreeNode(queue, job_id, root_job)
    seen, level, count = {root.ref}, [root], 1
    while level and count < MAX_NODES:
        wanted: list[tuple[TreeNode, str, str]] = []
        for node in level:
            for ref in node.job.depends_on if node.job else ():
                q, j = deps.split(ref, node.queue)
                if f"{q}/{j}" not in seen and count + len(wanted) < MAX_NODES:
                    seen.add(f"{q}/{j}")
                    wanted.append((node, q, j))
        jobs = yield from read_jobs_flow([(q, j) for _, q, j in wanted])
        level = []
        for (parent, q, j), job in zip(wanted, jobs, strict=True):
            child = TreeNode(q, j, job)
            parent.children.append(child)
            level.append(child)
        count += len(wanted)
    return Tree(root, cut=count >= MAX_NODES)


def dependents_flow(jobs: list[Job]) -> Flow[None]:
    """Fill in :attr:`~redisjobs.Job.dependents` of those of `jobs` that have any (their hash
    says so): one round trip when one has, none otherwise."""
    having = [job for job in jobs if job.has_dependents]
    if not having:
        return
    members = yield [cmd("smembers", QueueKeys(j.queue).job_dependents(j.id)) for j in having]
    for job, refs in zip(having, members, strict=True):
        job.dependents = tuple(sorted(r.decode() for r in refs))


def flow_members_flow(queue: str, job_id: str) -> Flow[list[Job]]:
    """The jobs of the flow whose last job is `job_id` of `queue` (its tree's jobs that belong
    to that flow), the last job first; empty when there is no such job."""
    tree = yield from tree_flow(queue, job_id)
    if tree is None:
        return []
    ref = f"{queue}/{job_id}"
    out = []
    for node in tree.nodes():
        job = node.job
        if job is not None and (node is tree.root or _flow_ref(job) == ref):
            out.append(job)
    return out


def _flow_ref(job: Job) -> str | None:
    """``queue/id`` of the flow `job` belongs to (its field holds a bare id for its queue)."""
    if job.flow is None:
        return None
    q, j = deps.split(job.flow, job.queue)
    return f"{q}/{j}"


def find_job_with_dependents_flow(
    job_id: str, queue: str | None, registry: Registry
) -> Flow[Job | None]:
    """:func:`~redisjobs.queries.find_job_flow`, with the found job's
    :attr:`~redisjobs.Job.dependents`."""
    job = yield from find_job_flow(job_id, queue, registry)
    return (yield from _with_dependents(job))


def get_job_flow(keys: QueueKeys, job_id: str) -> Flow[Job | None]:
    """Job `job_id` of `keys`' queue, with its :attr:`~redisjobs.Job.dependents` (None when
    there is no such job)."""
    (job,) = yield from get_jobs_flow(keys, [job_id])
    return (yield from _with_dependents(job))


def _with_dependents(job: Job | None) -> Flow[Job | None]:
    """`job` (None: none) with its :attr:`~redisjobs.Job.dependents` read."""
    if job is not None:
        yield from dependents_flow([job])
    return job
