"""Actions on jobs an operator picked: the dashboard's bulk buttons and ``jobs:bulk`` of the API.

Each job is acted on alone, as its own button would (a retry that races with a worker, a cancel
of a job that just finished, is skipped and reported, not an error): the answer says which ids
were done and which were skipped because their job was not in a state the action applies to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from ..client import Client

ACTIONS = ("retry", "cancel", "delete", "run-now")
"""``retry`` a failed or cancelled job, ``cancel`` an unfinished one, ``delete`` a finished one,
``run-now`` a scheduled one."""
MAX_IDS = 1000
"""Jobs one bulk action takes at most."""


def _verb(client: Client, action: str) -> Callable[..., Awaitable[bool]]:
    verbs: dict[str, Callable[..., Awaitable[bool]]] = {
        "retry": client.retry,
        "cancel": client.cancel,
        "delete": client.remove,
        "run-now": client.run_now,
    }
    return verbs[action]


async def bulk(
    client: Client, queue: str, action: str, ids: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Do `action` to each of the jobs `ids` of `queue`; the ids done and those skipped.

    Raises:
        ValueError: an unknown action, or more than :data:`MAX_IDS` ids.
    """
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    if len(ids) > MAX_IDS:
        raise ValueError(f"a bulk action takes {MAX_IDS} jobs at most, got {len(ids)}")
    verb = _verb(client, action)
    done: list[str] = []
    skipped: list[str] = []
    for job_id in dict.fromkeys(ids):  # each once, in the order given
        (done if await verb(job_id, queue=queue) else skipped).append(job_id)
    return done, skipped
