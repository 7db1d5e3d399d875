"""Simulated network: delay, loss, duplication, reordering and partitions.

Why: Raft's safety must not depend on the network behaving. Every message gets
an independent random delay (so messages reorder), may be dropped or duplicated,
and is subject to the current partition both when sent and when it would arrive.
Partitions are sets of blocked directed links, so one-way partitions, isolated
nodes and bridges are all the same mechanism.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from paddock.consensus.types import Message
from paddock.sim.loop import EventLoop


@dataclass(slots=True)
class NetworkFaults:
    """Per-message fault probabilities and delays (seconds of virtual time)."""

    min_delay: float = 0.0005
    max_delay: float = 0.004
    drop: float = 0.0
    duplicate: float = 0.0
    #: Chance a message is held back much longer (strong reordering).
    slow: float = 0.0
    slow_delay: float = 0.05


class SimNetwork:
    def __init__(
        self,
        loop: EventLoop,
        rng: random.Random,
        node_ids: Sequence[int],
        deliver: Callable[[Message], None],
    ) -> None:
        self.loop = loop
        self.rng = rng
        self.node_ids = tuple(node_ids)
        self.deliver = deliver
        self.faults = NetworkFaults()
        self.blocked: set[tuple[int, int]] = set()
        self.sent = 0
        self.dropped = 0
        self.duplicated = 0

    # -- partitions -----------------------------------------------------------

    def heal(self) -> None:
        self.blocked.clear()

    def is_blocked(self, src: int, dst: int) -> bool:
        return (src, dst) in self.blocked

    def block_one_way(self, sources: Sequence[int], targets: Sequence[int]) -> None:
        for s in sources:
            for t in targets:
                if s != t:
                    self.blocked.add((s, t))

    def split(self, groups: Sequence[Sequence[int]]) -> None:
        """Symmetric partition into ``groups`` (nodes in no group stay connected
        to everyone: that is how a bridge is expressed)."""
        self.heal()
        for i, a in enumerate(groups):
            for j, b in enumerate(groups):
                if i != j:
                    self.block_one_way(a, b)

    def connected_to_majority(self, node: int, alive: Callable[[int], bool]) -> bool:
        """Can ``node`` exchange messages both ways with a majority (itself included)?"""
        reach = sum(
            1
            for other in self.node_ids
            if other == node
            or (
                alive(other)
                and (node, other) not in self.blocked
                and (other, node) not in self.blocked
            )
        )
        return reach * 2 > len(self.node_ids)

    # -- traffic ----------------------------------------------------------------

    def _delay(self) -> float:
        f = self.faults
        d = f.min_delay + self.rng.random() * (f.max_delay - f.min_delay)
        if f.slow and self.rng.random() < f.slow:
            d += self.rng.random() * f.slow_delay
        return d

    def send(self, msg: Message) -> None:
        self.sent += 1
        if (msg.src, msg.dst) in self.blocked:
            self.dropped += 1
            return
        f = self.faults
        if f.drop and self.rng.random() < f.drop:
            self.dropped += 1
            return
        self.loop.call_later(self._delay(), self._arrive, msg)
        if f.duplicate and self.rng.random() < f.duplicate:
            self.duplicated += 1
            copy = replace(msg, entries=list(msg.entries))
            self.loop.call_later(self._delay(), self._arrive, copy)

    def _arrive(self, msg: Message) -> None:
        if (msg.src, msg.dst) in self.blocked:
            self.dropped += 1
            return
        self.deliver(msg)
