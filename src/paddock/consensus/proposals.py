"""Bookkeeping of what callers of ``ConsensusServer`` are waiting for.

Three kinds of waiter, all settled from the server's ready loop:

* proposal batches: appended on the leader at ``[first, first + n)`` in
  ``term``; each item gets the state machine's result when the entry at its
  index is applied, and a ``NotLeader`` if a different entry (another term)
  was applied there instead. If leadership is lost first the rest of the batch
  gets ``OutcomeUnknown``. One future per batch, not per entry: the hot path
  settles thousands of entries per second.
* read-index requests, keyed by request id, answered by the core's ReadStates;
* "applied >= index" waiters.

Batches are kept in a deque ordered by first index, which holds because a
leader appends in index order within a term; when it does not (the log was
cut back since), the older batches are failed first (see ``add_batch``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

from paddock.consensus.types import Entry, NotLeader


class OutcomeUnknown(NotLeader):
    """Leadership was lost while the proposal was in flight: it may or may not
    commit under the next leader. Retrying blindly can apply it twice."""

    def __init__(self, leader: int = 0) -> None:
        super().__init__(leader)
        self.args = (f"outcome unknown: leadership lost (leader is {leader or 'unknown'})",)


class ServerStopped(Exception):
    """The server is stopping or stopped."""


@dataclass(slots=True)
class _Batch:
    """Proposals appended together at [first, first + len(results)) in ``term``."""

    first: int
    term: int
    results: list[Any]
    future: asyncio.Future[list[Any]]
    remaining: int = 0

    @property
    def last(self) -> int:
        return self.first + len(self.results) - 1


class Waiters:
    """Pending proposals, read-index requests and applied-index waiters."""

    def __init__(self) -> None:
        self._batches: deque[_Batch] = deque()
        self._reads: dict[int, asyncio.Future[int]] = {}
        self._next_read = 0
        self._applied: list[tuple[int, asyncio.Future[None]]] = []

    # -- proposals -----------------------------------------------------------------

    def add_batch(self, first: int, term: int, n: int, leader: int) -> asyncio.Future[list[Any]]:
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if self._batches and self._batches[-1].last >= first:
            # Our log was cut back since those were appended (leadership was lost
            # and regained between two Readies): their fate is no longer ours.
            self.fail_batches(OutcomeUnknown(leader))
        self._batches.append(_Batch(first, term, [None] * n, fut, n))
        return fut

    def settle_applied(self, entries: list[Entry], results: list[Any], leader: int) -> None:
        """``entries`` were applied in order with these ``results``."""
        batches = self._batches
        if not batches:
            return
        for e, result in zip(entries, results, strict=True):
            index = e.index
            while batches:
                b = batches[0]
                if index < b.first:
                    break
                if index <= b.last:
                    b.results[index - b.first] = result if e.term == b.term else NotLeader(leader)
                    b.remaining -= 1
                    if index < b.last:
                        break
                batches.popleft()
                if not b.future.done():
                    b.future.set_result(b.results)
            if not batches:
                return

    def settle_below(self, index: int, leader: int) -> None:
        """A snapshot jumped the state machine past ``index``: outcomes of
        proposals at or below it cannot be observed here any more."""
        while self._batches and self._batches[0].first <= index:
            b = self._batches.popleft()
            for i in range(len(b.results)):
                if b.results[i] is None:
                    b.results[i] = OutcomeUnknown(leader)
            if not b.future.done():
                b.future.set_result(b.results)

    def fail_batches(self, unknown: OutcomeUnknown) -> None:
        while self._batches:
            b = self._batches.popleft()
            done = len(b.results) - b.remaining
            for i in range(done, len(b.results)):
                b.results[i] = unknown
            if not b.future.done():
                b.future.set_result(b.results)

    # -- reads ---------------------------------------------------------------------

    def new_read(self) -> tuple[int, asyncio.Future[int]]:
        self._next_read += 1
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reads[self._next_read] = fut
        return self._next_read, fut

    def forget_read(self, rid: int) -> None:
        self._reads.pop(rid, None)

    def answer_read(self, rid: int, index: int) -> None:
        fut = self._reads.pop(rid, None)
        if fut is not None and not fut.done():
            fut.set_result(index)

    def drop_read(self, rid: int, exc: Exception) -> None:
        fut = self._reads.pop(rid, None)
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    def fail_reads(self, exc: Exception) -> None:
        reads, self._reads = self._reads, {}
        for fut in reads.values():
            if not fut.done():
                fut.set_exception(exc)

    # -- applied index ---------------------------------------------------------------

    def wait_applied(self, index: int) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._applied.append((index, fut))
        return fut

    def wake_applied(self, applied: int) -> None:
        if not self._applied:
            return
        keep: list[tuple[int, asyncio.Future[None]]] = []
        for index, fut in self._applied:
            if index <= applied:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((index, fut))
        self._applied = keep

    def fail_applied(self, exc: Exception) -> None:
        waiters, self._applied = self._applied, []
        for _, fut in waiters:
            if not fut.done():
                fut.set_exception(exc)
