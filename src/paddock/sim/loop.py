"""The simulator's single event loop: virtual time, one heap, seeded randomness.

Why: a run must be a pure function of its seed so that any failure replays
exactly. Everything that happens is an event popped from one heap of
``(virtual_time, seq, callback, args)``; ``seq`` breaks ties in scheduling order,
so two events at the same instant always run in the same order. No asyncio, no
wall clock.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any


def derive_rng(master: random.Random) -> random.Random:
    """A subsystem's own stream, drawn from the run's master stream.

    Subsystems are created in a fixed order, so each gets the same stream on
    every replay, and one subsystem drawing more numbers cannot shift another's.
    """
    return random.Random(master.getrandbits(64))


class EventLoop:
    """A discrete-event scheduler over virtual time (seconds, as floats)."""

    __slots__ = ("_heap", "_seq", "now", "steps")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = 0
        self.now = 0.0
        self.steps = 0

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> None:
        if when < self.now:
            when = self.now
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, callback, args))

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> None:
        self.call_at(self.now + delay, callback, *args)

    def pending(self) -> int:
        return len(self._heap)

    def run_one(self) -> bool:
        """Run the earliest event; False when nothing is scheduled."""
        if not self._heap:
            return False
        when, _seq, callback, args = heapq.heappop(self._heap)
        self.now = when
        self.steps += 1
        callback(*args)
        return True

    def run_until(self, deadline: float, after_step: Callable[[], None] | None = None) -> None:
        """Run every event scheduled at or before ``deadline``; call ``after_step``
        after each one (the invariant checks)."""
        heap = self._heap
        while heap and heap[0][0] <= deadline:
            when, _seq, callback, args = heapq.heappop(heap)
            self.now = when
            self.steps += 1
            callback(*args)
            if after_step is not None:
                after_step()
        if self.now < deadline:
            self.now = deadline
