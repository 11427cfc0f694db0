"""``Engine.chain(step, step, ...)``: jobs that run one after another, each getting the one
before's result as ``payload["previous_result"]``.

It is a redisjobs flow (:func:`redisjobs.composition.chain`): every step is written at once,
each waiting in Redis for the one before; a step that fails ends the chain (the steps after it
end ``failed``, their failure ``dependency``, and never run).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..composition import chain, step
from ._ids import uuid_of

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["enqueue_chain"]


async def enqueue_chain(engine: Engine, steps: tuple[Mapping[str, Any], ...]) -> uuid.UUID:
    """Write the chain of `steps` (mappings of :meth:`Engine.enqueue`'s arguments); the id of
    its first job.

    Raises:
        ValueError: no steps, a step without a kind, or a bad argument in one.
    """
    if not steps:
        raise ValueError("a chain needs at least one step")
    nodes = []
    for n, given in enumerate(steps):
        if "kind" not in given:
            raise ValueError(f"chain step {n}: 'kind' is required")
        spec = await engine.prepared(dict(given))
        kind, payload = spec.pop("kind"), spec.pop("payload")
        nodes.append(step(kind, payload, **{k: v for k, v in spec.items() if v is not None}))
    client = await engine.client()
    run = await client.enqueue_flow(chain(*nodes), queue=engine.backend.queue)
    return uuid_of(run.jobs[0].id)
