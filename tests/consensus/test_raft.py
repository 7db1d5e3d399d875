"""Unit tests of the sans-IO Raft node, driven by a tiny synchronous network.

The deterministic simulator (tests/sim) is the real proof; these tests pin down
individual behaviours with readable scenarios.
"""

from __future__ import annotations

import random

import pytest

from paddock.consensus.raft import Config, RaftNode
from paddock.consensus.types import Entry, EntryKind, HardState, Message, NotLeader, Role


class Cluster:
    """All nodes in one process; messages delivered in FIFO order, nothing lost
    unless a node is cut off."""

    def __init__(self, n: int = 3, *, external: bool = False, seed: int = 1) -> None:
        self.ids = tuple(range(1, n + 1))
        self.external = external
        self.seed = seed
        self.nodes: dict[int, RaftNode] = {}
        self.disk: dict[int, tuple[HardState, list[Entry], object]] = {}
        self.applied: dict[int, list[Entry]] = {i: [] for i in self.ids}
        self.reads: dict[int, list] = {i: [] for i in self.ids}
        self.dropped: dict[int, list[int]] = {i: [] for i in self.ids}
        self.cut: set[int] = set()
        self.queue: list[Message] = []
        for i in self.ids:
            self.nodes[i] = self._new(i)
            self.disk[i] = (HardState(), [], None)

    def _new(self, i: int, **kw) -> RaftNode:
        cfg = Config(id=i, peers=self.ids, external_election=self.external)
        return RaftNode(cfg, random.Random(self.seed * 100 + i), **kw)

    def process(self, i: int) -> None:
        node = self.nodes[i]
        while node.has_ready():
            rd = node.ready()
            hs, ents, snap = self.disk[i]
            if rd.snapshot is not None:
                snap = rd.snapshot
                ents = []
            if rd.entries:
                first = rd.entries[0].index
                ents = [e for e in ents if e.index < first] + rd.entries
            if rd.hard_state is not None:
                hs = rd.hard_state
            self.disk[i] = (hs, ents, snap)
            if i not in self.cut:
                self.queue.extend(m for m in rd.messages if m.dst not in self.cut)
            self.applied[i].extend(rd.committed)
            self.reads[i].extend(rd.read_states)
            self.dropped[i].extend(rd.dropped_reads)
            node.advance(rd)

    def settle(self, limit: int = 10_000) -> None:
        for _ in range(limit):
            for i in self.ids:
                self.process(i)
            if not self.queue:
                return
            batch, self.queue = self.queue, []
            for m in batch:
                if m.dst not in self.cut and m.src not in self.cut:
                    self.nodes[m.dst].step(m)
        raise AssertionError("cluster did not settle")

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            for i in self.ids:
                self.nodes[i].tick()
            self.settle()

    def leader(self) -> RaftNode | None:
        leaders = [n for i, n in self.nodes.items() if n.role == Role.LEADER and i not in self.cut]
        assert len({n.term for n in leaders}) == len(leaders)
        return max(leaders, key=lambda n: n.term) if leaders else None

    def elect(self, max_ticks: int = 100) -> RaftNode:
        for _ in range(max_ticks):
            ld = self.leader()
            if ld is not None:
                return ld
            self.tick()
        raise AssertionError("no leader elected")

    def restart(self, i: int) -> None:
        hs, ents, snap = self.disk[i]
        self.nodes[i] = self._new(i, hard_state=hs, entries=list(ents), snapshot=snap)
        self.applied[i] = []


def data(entries: list[Entry]) -> list[bytes]:
    return [e.data for e in entries if e.kind == EntryKind.NORMAL]


def test_three_nodes_elect_one_leader_and_replicate() -> None:
    c = Cluster(3)
    leader = c.elect()
    assert sum(n.role == Role.LEADER for n in c.nodes.values()) == 1
    for k in range(5):
        leader.propose(f"v{k}".encode())
    c.settle()
    c.tick(2)
    for i in c.ids:
        assert data(c.applied[i]) == [f"v{k}".encode() for k in range(5)]


def test_follower_forwards_proposal_and_unknown_leader_refuses() -> None:
    c = Cluster(3)
    leader = c.elect()
    follower = next(n for n in c.nodes.values() if n is not leader)
    assert follower.propose(b"fwd") is None
    c.settle()
    c.tick(2)
    assert b"fwd" in data(c.applied[leader.id])
    lonely = Cluster(3)
    with pytest.raises(NotLeader):
        lonely.nodes[1].propose(b"x")


def test_minority_cannot_commit_and_majority_moves_on() -> None:
    c = Cluster(3)
    old = c.elect()
    old.propose(b"before")
    c.settle()
    c.tick(2)
    # Cut the leader off: its new proposal never commits.
    c.cut = {old.id}
    old.propose(b"lost")
    c.process(old.id)
    for _ in range(60):
        c.tick()
    assert b"lost" not in data(c.applied[old.id])
    new = c.leader()
    assert new is not None and new.id != old.id and new.term > old.term
    new.propose(b"after")
    c.settle()
    # The old leader stepped down (check-quorum) and, healed, adopts the new log.
    assert old.role != Role.LEADER
    c.cut = set()
    c.tick(5)
    for i in c.ids:
        assert data(c.applied[i]) == [b"before", b"after"]


def test_read_index_needs_quorum_confirmation() -> None:
    c = Cluster(3)
    leader = c.elect()
    c.tick(2)
    leader.read_index(7)
    c.settle()
    assert [r.request_id for r in c.reads[leader.id]] == [7]
    # Isolated, the leader cannot confirm a read; stepping down drops it.
    c.cut = {leader.id}
    leader.read_index(8)
    c.process(leader.id)
    for _ in range(30):
        leader.tick()
        c.process(leader.id)
    assert 8 in c.dropped[leader.id]
    assert all(r.request_id != 8 for r in c.reads[leader.id])


def test_restart_keeps_log_and_catches_up_from_snapshot() -> None:
    c = Cluster(3)
    leader = c.elect()
    lag = next(i for i in c.ids if i != leader.id)
    c.cut = {lag}
    for k in range(20):
        leader.propose(f"{k}".encode())
    c.settle()
    c.tick(2)
    # Compact everyone else's log so the lagging node needs a snapshot.
    for i in c.ids:
        if i != lag:
            n = c.nodes[i]
            n.compact(n.applied, b"snapshot-state")
    c.cut = set()
    c.restart(lag)
    c.tick(5)
    assert c.nodes[lag].log.snapshot.data == b"snapshot-state"
    assert c.nodes[lag].commit == leader.commit


def test_external_election_recovers_in_flight_entries_from_a_promiser() -> None:
    c = Cluster(3, external=True)
    # Nobody campaigns on its own.
    c.tick(50)
    assert c.leader() is None
    c.nodes[1].campaign()
    c.settle()
    leader = c.leader()
    assert leader is not None and leader.id == 1
    leader.propose(b"a")
    c.settle()
    c.tick(2)
    # Node 3 misses the next entries; node 1 replicates "b" to node 2 only, then dies.
    c.cut = {3}
    leader.propose(b"b")
    c.settle()
    c.cut = {1}
    # The authority names node 3, whose log lacks "b": it must recover it from node 2.
    c.nodes[3].campaign()
    c.settle()
    new = c.leader()
    assert new is not None and new.id == 3
    new.propose(b"c")
    c.settle()
    c.tick(2)
    assert data(c.applied[3]) == [b"a", b"b", b"c"]
    assert data(c.applied[2]) == [b"a", b"b", b"c"]


def test_deposed_leader_cannot_commit_after_external_takeover() -> None:
    c = Cluster(3, external=True)
    c.nodes[1].campaign()
    c.settle()
    old = c.nodes[1]
    c.cut = {1}
    c.nodes[2].campaign()
    c.settle()
    assert c.nodes[2].role == Role.LEADER
    with pytest.raises(NotLeader):
        c.nodes[3].read_index(1)
    old.propose(b"stale")
    c.process(1)
    c.cut = set()
    c.settle()
    c.tick(3)
    assert old.role == Role.FOLLOWER
    assert all(b"stale" not in data(c.applied[i]) for i in c.ids)


def test_single_node_commits_alone() -> None:
    c = Cluster(1)
    leader = c.elect()
    leader.propose(b"solo")
    c.settle()
    assert data(c.applied[1]) == [b"solo"]
    leader.read_index(3)
    c.settle()
    assert [r.request_id for r in c.reads[1]] == [3]
