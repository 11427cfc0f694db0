"""Partitioned queues: one queue spread over N queues of its own, its partitions.

A queue lives in one hash slot, so on a Redis Cluster one queue, however hot, is served by one
master's CPU. A queue with ``partitions=N`` is N queues instead, ``<queue>:p0`` to
``<queue>:p<N-1>``, each with its own hash tag, which the cluster spreads over its masters:
producers spread the jobs over them, and a worker serves all of them with equal weights
(:mod:`redisjobs.arbiter`), so each partition gets its share of the worker's slots.

A job's partition is a hash of its id (CRC-32 of its UTF-8 bytes, modulo N: any language can
compute it), so a call about a job by id (get, wait, cancel, retry) finds its partition without
asking Redis. A job enqueued with a ``partition_key`` gets an id drawn until it hashes to the
key's partition: the jobs of one key land in one partition, where they keep their enqueue order.
Order across partitions is not kept; within one, it is that of a single queue.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

from .names import check_queue_name

MAX_PARTITIONS = 1024
"""The most partitions a queue may have."""


def partition(queue: str, index: int) -> str:
    """The name of partition `index` of `queue`."""
    return f"{queue}:p{index}"


def partitions_of(queue: str, count: int) -> list[str]:
    """The names of the `count` partitions of `queue` (`queue` itself when `count` is 1)."""
    return [partition(queue, i) for i in range(count)] if count > 1 else [queue]


def index_of(key: str, count: int) -> int:
    """The partition a job id (or a partition key) hashes to."""
    return zlib.crc32(key.encode()) % count


def check_partitions(given: int | Mapping[str, int], default: str) -> dict[str, int]:
    """`given` (a count for the `default` queue, or queue -> count) as queue -> count, with
    the queues of one partition left out.

    Raises:
        ValueError: a count that is not an integer from 1 to :data:`MAX_PARTITIONS`, or a bad
            queue name.
    """
    counts = dict(given) if isinstance(given, Mapping) else {default: given}
    for queue, count in counts.items():
        check_queue_name(queue)
        if (
            isinstance(count, bool)
            or not isinstance(count, int)
            or not 1 <= count <= MAX_PARTITIONS
        ):
            raise ValueError(
                f"queue {queue!r}: partitions must be an integer from 1 to {MAX_PARTITIONS}, "
                f"not {count!r}"
            )
    return {queue: count for queue, count in counts.items() if count > 1}
