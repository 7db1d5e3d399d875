"""The state-machine side of a ``ConsensusServer``: committed entries in, results out.

Why a part of its own: the Ready cycle (persist, send, apply, advance) and the
state machine meet only here. What has been applied (``applied``,
``applied_term``), snapshots going into the state machine (at start, or sent
by the leader) and out of it (every ``snapshot_every`` applied entries, made
durable before the log is trimmed), and handing each entry's result to the
proposal waiting for it all move together, so they live together; the server
keeps the loop, the disk hand-off and the network.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from paddock.consensus.types import Entry, EntryKind, Snapshot

if TYPE_CHECKING:
    from paddock.consensus.proposals import Waiters
    from paddock.consensus.raft import RaftNode
    from paddock.consensus.server import ServerStats
    from paddock.consensus.storage import DiskStorage

# The server's logger: these lines were the server's and stay where operators look.
log = logging.getLogger("paddock.consensus.server")


class StateMachine(Protocol):
    """What the server replicates. Called only on the event loop, in log order."""

    def apply(self, entry: Entry) -> Any: ...

    def snapshot(self) -> bytes: ...

    def restore(self, data: bytes) -> None: ...


class Applier:
    """Applies committed entries to ``sm`` in log order, restores and takes its
    snapshots, and settles the proposals in ``waiters`` with the results."""

    def __init__(
        self, node_id: int, sm: StateMachine, waiters: Waiters, stats: ServerStats
    ) -> None:
        self.id = node_id
        self.sm = sm
        self._waiters = waiters
        self.stats = stats
        self.applied = 0
        self.applied_term = 0
        self.last_snapshot_index = 0

    def load(self, snapshot: Snapshot) -> None:
        """Start from ``snapshot`` (the state machine becomes its data)."""
        self.sm.restore(snapshot.data)
        self.applied = snapshot.index
        self.applied_term = snapshot.term
        self.last_snapshot_index = snapshot.index

    def install(self, snapshot: Snapshot, leader: int) -> None:
        """A snapshot from the leader replaces the state machine; proposals at or
        below it are settled (their outcome is inside the snapshot)."""
        self.load(snapshot)
        self.stats.snapshots_restored += 1
        self._waiters.settle_below(snapshot.index, leader)

    def apply(self, committed: list[Entry], leader: int) -> None:
        apply = self.sm.apply
        normal = EntryKind.NORMAL
        applied = self.applied
        done: list[Entry] = []
        results: list[Any] = []
        for e in committed:
            if e.index <= applied:
                continue  # already covered by a restored snapshot
            if e.kind == normal:
                try:
                    result = apply(e)
                except Exception as exc:
                    # Deterministic: every replica fails the same command the same
                    # way, so the log stays applicable; the proposer gets the error.
                    log.warning(
                        "node %d: state machine rejected entry %d: %r", self.id, e.index, exc
                    )
                    result = exc
            else:
                result = None
            done.append(e)
            results.append(result)
            applied = e.index
        if not done:
            return
        self.applied_term = done[-1].term
        self.stats.entries_applied += len(done)
        self.applied = applied
        self._waiters.settle_applied(done, results, leader)

    def snapshot_due(self, every: int) -> bool:
        """Whether ``every`` entries have been applied since the last snapshot."""
        return self.last_snapshot_index + every <= self.applied

    async def take_snapshot(
        self, node: RaftNode, storage: DiskStorage, peers: tuple[int, ...]
    ) -> None:
        """Snapshot the state machine at ``applied``, make it durable, then let the
        node trim its log (in that order: a crash in between loses nothing)."""
        index, term = self.applied, self.applied_term
        data = self.sm.snapshot()
        snap = Snapshot(index, term, peers, data)
        await asyncio.to_thread(storage.save_snapshot, snap)
        node.compact(index, data)
        self.last_snapshot_index = index
        self.stats.snapshots_taken += 1
        log.info("node %d: snapshot at index %d (%d bytes)", self.id, index, len(data))
