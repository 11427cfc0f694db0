"""The flow panel of a job's page: the tree of the flow it is part of, and the jobs waiting for it.

The tree is :func:`~redisjobs.flowview.shown_tree`'s (one read per level, whatever the queues);
the page draws it as nested lists. The lists are opened and closed here, from the depth of each
node in a depth-first walk, rather than by a recursive template: a chain of a thousand steps is
a thousand levels deep, past any recursion limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup

from .. import deps
from ..client import Client
from ..flowview import Tree, TreeNode, shown_tree
from ..job import FINAL_STATUSES, Job

MAX_DEPENDENTS = 100
"""Jobs waiting for the page's job that the panel lists at most (the rest are counted)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One job of the drawn tree.

    Attributes:
        node: the job's node.
        before: the tags that close the rows before it and open its list (constant markup,
            never text of a job).
        current: it is the page's job.
    """

    node: TreeNode
    before: Markup
    current: bool


@dataclass(slots=True)
class FlowView:
    """What the flow panel shows.

    Attributes:
        job: the page's job.
        tree: the tree of its flow's last job (or its own).
        dependents: the jobs waiting for it, the first :data:`MAX_DEPENDENTS`.
        more: how many more wait for it.
    """

    job: Job
    tree: Tree
    dependents: list[TreeNode] = field(default_factory=list)
    more: int = 0

    def rows(self) -> list[Row]:
        """The tree's jobs depth first, each with the tags that put it at its depth."""
        rows, last = [], -1
        for depth, node in self.tree.root.walk():
            # A walk goes one level down at a time, or back up any number of levels.
            tags = "<ul>" if depth > last else "</li>" + "</ul></li>" * (last - depth)
            current = (node.queue, node.id) == (self.job.queue, self.job.id)
            rows.append(Row(node, Markup(tags), current))
            last = depth
        return rows

    def end(self) -> Markup:
        """The tags that close the tree after its last row."""
        last = max(depth for depth, _ in self.tree.root.walk())
        return Markup("</li>" + "</ul></li>" * last + "</ul>")

    def refs(self) -> frozenset[str]:
        """``queue/id`` of every job shown."""
        return frozenset(n.ref for n in [*self.tree.nodes(), *self.dependents])

    def unended(self) -> set[str]:
        """``queue/id`` of the jobs shown that have not ended (they can still change)."""
        nodes = [*self.tree.nodes(), *self.dependents]
        return {n.ref for n in nodes if n.job is not None and n.job.status not in FINAL_STATUSES}


async def flow_view(client: Client, job: Job) -> FlowView | None:
    """The flow panel of `job` (None when it is part of no flow).

    `job` must have its :attr:`~redisjobs.Job.dependents` (as ``Client.find_job`` reads it).
    """
    tree = await shown_tree(client, job)
    if tree is None:
        return None
    wanted = job.dependents[:MAX_DEPENDENTS]
    dependents = await _nodes(client, job.queue, wanted)
    return FlowView(job, tree, dependents, len(job.dependents) - len(wanted))


async def _nodes(client: Client, queue: str, refs: Sequence[str]) -> list[TreeNode]:
    """The jobs `refs` (ids of `queue`, ``queue/id`` of others): one read per queue."""
    pairs = [deps.split(ref, queue) for ref in refs]
    found: dict[tuple[str, str], Job | None] = {}
    for name in dict.fromkeys(q for q, _ in pairs):
        ids = [j for q, j in pairs if q == name]
        jobs = await client.get_many(ids, queue=name)
        found.update(zip(((name, j) for j in ids), jobs, strict=True))
    return [TreeNode(q, j, found[(q, j)]) for q, j in pairs]
