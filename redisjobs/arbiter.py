"""One concurrency shared by the queues of a worker, in strict order or by weights.

A :class:`~redisjobs.Worker` over several queues runs one fetcher per queue (each with its own
leases, reclaim, pause and burst), and one :class:`Arbiter` decides which of them may lease into
the worker's free slots. Each queue sees the arbiter through a :class:`Lane`, which has the
interface of :class:`~redisjobs.slots.Slots`: its fetcher *wants* slots while its queue may
have work ready (it found a full batch, or a new entry woke it), and *settles* after each fetch,
giving back what it did not lease; a queue that came back short waits for work holding no slot.

* **Strict order** (a sequence of names, as Sidekiq's unweighted queues): free slots go to the
  first queue that wants them; a later queue gets slots only while every queue before it has
  nothing ready. Slots granted to a later queue and not yet used are taken back the moment an
  earlier queue wants them. What the order cannot prevent is the round trip: a `start` of a
  later queue already on its way to Redis when an earlier queue's job arrives still leases
  (docs/architecture.md, "A worker over several queues").
* **Weights** (a mapping name -> weight): each free slot goes to one of the queues that want
  one by smooth weighted round robin (nginx's): deterministic, exact over any run of slots
  while the same queues want (5:1 gives 5 of every 6 freed slots to the first), and evenly
  interleaved, so a light queue never waits behind a long run of a heavy one. Sidekiq's
  weighted random order gives the same ratio on average, with random runs.

Idle queues cost nothing per job of a busy one: they want nothing and are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .partitions import check_partitions, partitions_of
from .slots import Slots

if TYPE_CHECKING:
    from .app import App

QueueOrder = Sequence[str] | Mapping[str, int]
"""Queues in strict order (a sequence) or with weights (a mapping name -> weight >= 1)."""


def queue_order(
    queue: str | None,
    queues: QueueOrder | None,
    app: App | None,
    partitions: int | Mapping[str, int] = 1,
) -> list[str] | dict[str, int]:
    """The queues a worker serves: `queue`, else `queues`, else its app's (equal weights), else
    ``default``; a partitioned queue (`partitions`: a count for every queue, or queue -> count)
    as its partitions (:func:`partitioned`).

    Raises:
        ValueError: both `queue` and `queues`, no queue, a name twice, a weight that is not
            an integer >= 1, or a bad count of partitions.
    """
    order = _named_order(queue, queues, app)
    every = dict.fromkeys(order, partitions) if isinstance(partitions, int) else partitions
    return partitioned(order, check_partitions(every, next(iter(order))))


def partitioned(
    order: list[str] | dict[str, int], counts: Mapping[str, int]
) -> list[str] | dict[str, int]:
    """`order` with each queue of `counts` replaced by its partitions, served with equal weights:
    in a weighted order each takes an equal share of its queue's (the weights scaled so that
    all stay whole numbers); a strict order of one queue becomes equal weights.

    Raises:
        ValueError: a partitioned queue in a strict order of several (give weights instead).
    """
    if not counts:
        return order
    if isinstance(order, list):
        if len(order) > 1:
            raise ValueError(
                "a partitioned queue in a strict order of queues: give them weights instead"
            )
        order = {order[0]: 1}
    scale = math.lcm(*(counts.get(name, 1) for name in order))
    weights: dict[str, int] = {}
    for name, weight in order.items():
        count = counts.get(name, 1)
        for part in partitions_of(name, count):
            weights[part] = weight * scale // count
    return weights


def _named_order(
    queue: str | None, queues: QueueOrder | None, app: App | None
) -> list[str] | dict[str, int]:
    if queue is not None and queues is not None:
        raise ValueError("give queue or queues, not both")
    if queue is not None:
        return [queue]
    if queues is None:
        names = list(app.queues) if app is not None else ["default"]
        return dict.fromkeys(names, 1) if len(names) > 1 else names
    if isinstance(queues, str):
        raise ValueError("queues is a sequence of names or a mapping name -> weight, not a str")
    if isinstance(queues, Mapping):
        for name, weight in queues.items():
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
                raise ValueError(f"queue {name!r}: weight must be an integer >= 1, not {weight!r}")
        order: list[str] | dict[str, int] = dict(queues)
    else:
        order = list(queues)
        if len(set(order)) != len(order):
            raise ValueError(f"a queue named twice in {order!r}")
    if not order:
        raise ValueError("queues names no queue")
    return order


class Arbiter:
    """The slots of a worker over several queues (see the module's doc).

    Args:
        concurrency: jobs run at once at most, over all the queues.
        batch_size: jobs leased per fetch at most.
        order: the queues in strict order, or name -> weight.
    """

    def __init__(self, concurrency: int, batch_size: int, order: QueueOrder) -> None:
        self.concurrency, self.batch_size = concurrency, batch_size
        self.strict = not isinstance(order, Mapping)
        weights = order if isinstance(order, Mapping) else dict.fromkeys(order, 1)
        self.running = 0
        self.lanes = [Lane(self, queue, weight) for queue, weight in weights.items()]
        self.allocate()  # every queue wants slots until its first look

    def unallocated(self) -> int:
        """Free slots that no queue was granted."""
        return self.concurrency - self.running - sum(x.granted + x.reserved for x in self.lanes)

    def allocate(self) -> None:
        """Grant the free slots to the queues that want them (called on every change)."""
        wanting = [lane for lane in self.lanes if lane.wanting]
        if not wanting:
            return
        if self.strict:
            self._first(wanting[0])
        else:
            self._weighted(wanting, self.unallocated())

    def _first(self, first: Lane) -> None:
        # What later queues were granted and did not use yet is the first one's now.
        for lane in self.lanes[self.lanes.index(first) + 1 :]:
            lane.granted = 0
        free = self.unallocated()
        if free > 0:
            first.grant(free)

    def _weighted(self, wanting: list[Lane], free: int) -> None:
        total = sum(lane.weight for lane in wanting)
        given = dict.fromkeys(wanting, 0)
        for _ in range(free):
            for lane in wanting:
                lane.current += lane.weight
            pick = max(wanting, key=lambda lane: lane.current)  # ties: the earlier queue
            pick.current -= total
            given[pick] += 1
        for lane, count in given.items():
            if count:
                lane.grant(count)


class Lane(Slots):
    """One queue's view of an :class:`Arbiter`: what its fetcher and reclaim loop lease into.

    Args:
        arbiter: the arbiter.
        queue: the queue.
        weight: its weight (1 in strict order).

    Attributes:
        running: jobs of this queue running now.
        granted: slots the arbiter gave this queue that its fetcher has not reserved yet.
        reserved: slots its fetcher holds for the fetch under way.
        wanting: its queue may have work ready.
        current: its smooth weighted round robin score.
    """

    __slots__ = ("_arbiter", "current", "granted", "queue", "reserved", "wanting", "weight")

    shared = True

    def __init__(self, arbiter: Arbiter, queue: str, weight: int) -> None:
        super().__init__(arbiter.concurrency, arbiter.batch_size)
        self._arbiter, self.queue, self.weight = arbiter, queue, weight
        self.granted = self.reserved = self.current = 0
        self.wanting = True  # unknown until its first look: the arbiter grants it slots at once

    def grant(self, count: int) -> None:
        """The arbiter gives this queue `count` more slots (wakes its fetcher)."""
        self.granted += count
        self.wake.set()

    def free(self) -> int:
        """What this queue may lease now: its grant and reservation, and the slots no queue
        wants (a reclaim tick of an idle queue uses those), up to `batch_size`."""
        if self.closed:
            return 0
        spare = max(0, self._arbiter.unallocated())
        return min(self.reserved + self.granted + spare, self.batch_size)

    def reserve(self) -> int:
        """Hold up to `batch_size` granted slots for the fetch about to be made."""
        if self.closed:
            return 0
        held = min(self.reserved + self.granted, self.batch_size)
        self.granted -= held - self.reserved
        self.reserved = held
        return held

    def want(self) -> None:
        """Its queue may have work ready: ask for slots."""
        if not (self.wanting or self.closed):
            self.wanting = True
            self._arbiter.allocate()

    def settle(self, more: bool) -> None:
        """Give back the reservation; without `more` work ready, the grant too."""
        self.reserved = 0
        if not more:
            self.wanting = False
            self.granted = 0
        self._arbiter.allocate()

    def take(self) -> None:
        """A job of this queue was launched into a slot (reserved, else granted, else free)."""
        self.running += 1
        self._arbiter.running += 1
        if self.reserved:
            self.reserved -= 1
        elif self.granted:
            self.granted -= 1

    def release(self) -> None:
        """A job of this queue left its slot: the arbiter grants it anew."""
        self.running -= 1
        self._arbiter.running -= 1
        self._arbiter.allocate()

    def close(self) -> None:
        """This queue leases nothing more: its slots go back to the others."""
        self.closed, self.wanting = True, False
        self.granted = self.reserved = 0
        self.wake.set()
        self._arbiter.allocate()
