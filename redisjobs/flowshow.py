"""How a flow's tree is shown to people and programs: the HTTP API's nested JSON, the command
line's indented lines, the dashboard's rows.

The tree comes from :func:`~redisjobs.flowview.tree_flow`; each view nests it no deeper than
:data:`MAX_DEPTH` levels (nested JSON and nested HTML lists are written by recursive readers
that a chain of thousands of steps would overflow) and says so when it had to cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .flowview import Tree, TreeNode
from .job import Job

MAX_DEPTH = 100
"""Levels of a tree a view shows at most (a longer chain shows its last steps, and says it
was cut)."""

GONE = "gone"
"""The status shown for a job of a tree that is no longer there (expired or deleted)."""


def in_flow(job: Job) -> bool:
    """Whether `job` belongs to a flow, waits for other jobs or has jobs waiting for it."""
    return bool(job.flow or job.depends_on or job.has_dependents)


def tree_of(job: Job) -> tuple[str, str]:
    """(queue, id) of the job whose tree shows `job`'s flow: the flow's last job when `job`
    belongs to a flow, else `job` itself."""
    if not job.flow:
        return job.queue, job.id
    queue, sep, job_id = job.flow.partition("/")
    return (queue, job_id) if sep else (job.queue, job.flow)


@dataclass(frozen=True, slots=True)
class Shown:
    """The part of a tree a view shows.

    Attributes:
        rows: (depth, node) of each node shown, depth first (the root at depth 0).
        cut: whether nodes were left out: the tree was cut when read, or it is deeper than
            :data:`MAX_DEPTH`.
    """

    rows: list[tuple[int, TreeNode]]
    cut: bool


def shown(tree: Tree) -> Shown:
    """The nodes of `tree` a view shows (those within :data:`MAX_DEPTH` levels)."""
    rows = [(depth, node) for depth, node in tree.root.walk() if depth < MAX_DEPTH]
    deeper = any(node.children for depth, node in rows if depth == MAX_DEPTH - 1)
    return Shown(rows, tree.cut or deeper)


def status_of(node: TreeNode) -> str:
    """The status of a node's job, or :data:`GONE`."""
    return GONE if node.job is None else node.job.status.value


def node_json(node: TreeNode) -> dict[str, Any]:
    """One node as the API's ``TreeNode`` schema has it, without its children."""
    job = node.job
    return {
        "id": node.id,
        "queue": node.queue,
        "status": status_of(node),
        "name": job.name if job else None,
        "error": job.error if job else None,
        "failure": job.failure if job else None,
        "children": [],
    }


def tree_json(tree: Tree) -> dict[str, Any]:
    """The API's ``Tree``: ``{"root": node, "cut": bool}``, each node with its ``children``."""
    view = shown(tree)
    out: dict[int, dict[str, Any]] = {}  # the node last seen at each depth
    for depth, node in view.rows:
        out[depth] = node_json(node)
        if depth:
            out[depth - 1]["children"].append(out[depth])
    return {"root": out[0], "cut": view.cut}
