"""Cluster-wide safety invariants of Raft, checked as the simulation runs.

Why: a bug is cheapest to diagnose at the step where it happens, not when a
client notices. These checks see everything (every node's log, every disk) and
fail with the name of the broken property:

* election safety: at most one leader per term;
* leader completeness: a new leader holds every entry committed in an earlier term;
* log matching / state machine safety: an index is applied with the same entry,
  and leads to the same state, on every node;
* a committed entry was durable on a majority when it first became visible.
"""

from __future__ import annotations

from paddock.consensus.raft import RaftNode
from paddock.consensus.types import Entry


class Violation(Exception):
    """An invariant failed: ``invariant`` names it, ``detail`` explains."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


class ClusterInvariants:
    __slots__ = ("commit_term_bound", "committed", "committed_max", "leaders", "quorum", "state_at")

    def __init__(self, quorum: int) -> None:
        self.quorum = quorum
        #: index -> (term, kind, data) of every entry applied anywhere.
        self.committed: dict[int, tuple[int, int, bytes]] = {}
        self.committed_max = 0
        #: index -> a term no earlier than the one the entry was committed in.
        self.commit_term_bound: dict[int, int] = {}
        #: index -> state machine digest after applying it.
        self.state_at: dict[int, tuple[object, ...]] = {}
        #: term -> leader id.
        self.leaders: dict[int, int] = {}

    def first_apply(self, node_id: int, e: Entry, holders: list[int], max_term: int) -> None:
        """``e`` becomes visible for the first time; ``holders`` have it durably and
        ``max_term`` is the highest term any node has reached."""
        if len(holders) < self.quorum:
            raise Violation(
                "minority commit",
                f"entry {e.index} (term {e.term}) applied by node {node_id} but durable "
                f"only on {holders} (quorum {self.quorum})",
            )
        self.committed[e.index] = (e.term, int(e.kind), e.data)
        # It was committed in some term no later than the highest term any node
        # has reached by now (leader completeness is owed to later terms only).
        self.commit_term_bound[e.index] = max_term
        if e.index > self.committed_max:
            self.committed_max = e.index

    def reapply(self, node_id: int, e: Entry) -> None:
        got = self.committed[e.index]
        if got != (e.term, int(e.kind), e.data):
            raise Violation(
                "committed entry changed",
                f"node {node_id} applies index {e.index} as (term {e.term}, {e.data!r}); "
                f"committed was (term {got[0]}, {got[2]!r})",
            )

    def state(self, node_id: int, index: int, digest: tuple[object, ...]) -> None:
        got = self.state_at.get(index)
        if got is None:
            self.state_at[index] = digest
        elif got != digest:
            raise Violation(
                "state machines diverge",
                f"node {node_id} at index {index}: {digest} != {got}",
            )

    def leader(self, node_id: int, node: RaftNode) -> bool:
        """``node`` is leader now; True when that is news for its term."""
        t = node.term
        other = self.leaders.get(t)
        if other == node_id:
            return False
        if other is not None:
            raise Violation(
                "election safety", f"nodes {other} and {node_id} are both leader of term {t}"
            )
        self.leaders[t] = node_id
        self._leader_completeness(node_id, node)
        return True

    def _leader_completeness(self, node_id: int, node: RaftNode) -> None:
        """A new leader's log holds every entry committed in an earlier term. (A
        leader of an older term can still be elected late, by vote replies that
        were in flight, and lack newer entries: that is allowed.)"""
        log = node.log
        bound = self.commit_term_bound
        for index in range(log.snapshot.index + 1, self.committed_max + 1):
            got = self.committed.get(index)
            if got is None or bound[index] >= node.term:
                continue
            term = log.term(index)
            if term != got[0]:
                raise Violation(
                    "leader completeness",
                    f"node {node_id} leads term {node.term} but has "
                    f"{'no entry' if term is None else f'term {term}'} at committed index "
                    f"{index} (an entry of term {got[0]})",
                )
