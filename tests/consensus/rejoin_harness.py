"""A scripted, deterministic five-node harness for follower-rejoin scenarios.

Why not the simulator (``paddock.sim``): its faults are drawn at random over a
whole run; these tests script one follower's bad luck exactly (crash while
behind, messages to it dropped around the crash, a slow re-apply after the
restart, the leader's in-flight window full, a lost snapshot) and then ask
one question: is it a caught-up follower a bounded number of ticks after the
network heals?

Model (the production shell's contract, see ``paddock.consensus.types.Ready``):

* a Ready is persisted to the node's "disk" at once, then its messages are
  sent, its committed entries applied and ``advance`` called;
* the network is FIFO with a bandwidth limit: each tick delivers at most
  ``rounds_per_tick`` rounds of messages (a message sent in round k arrives in
  round k+1), so catching up a long log takes ticks, as it does for real;
* ``block(i, ticks)``: node i's event loop is busy (re-applying its log after
  a restart): it neither ticks nor reads; messages to it wait (TCP buffers)
  and arrive in one burst when it unblocks;
* ``crash(i)``: the node and every message to or from it in flight vanish;
  ``restart(i)`` rebuilds it from its disk with the state machine at the
  snapshot (as ``ConsensusServer`` does), so it re-applies everything after;
* nodes compact (snapshot) every ``compact_every`` applied entries;
* ``drop`` is a predicate over messages (a partition, a lost snapshot...).

Every applied entry is checked against one global committed log.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from paddock.consensus.raft import Config, RaftNode
from paddock.consensus.types import Entry, HardState, Message, MsgType, Role, Snapshot

Disk = tuple[HardState, list[Entry], Snapshot | None]


class RejoinCluster:
    def __init__(
        self,
        n: int = 5,
        *,
        seed: int = 1,
        rounds_per_tick: int = 3,
        compact_every: int = 0,
        max_append_entries: int = 64,
        max_inflight_appends: int = 4,
        election_ticks: int = 10,
    ) -> None:
        self.ids = tuple(range(1, n + 1))
        self.seed = seed
        self.rng = random.Random(seed)
        self.rounds_per_tick = rounds_per_tick
        self.compact_every = compact_every
        self.cfg_kw = {
            "max_append_entries": max_append_entries,
            "max_inflight_appends": max_inflight_appends,
            "election_ticks": election_ticks,
        }
        self.nodes: dict[int, RaftNode | None] = {}
        self.disk: dict[int, Disk] = {i: (HardState(), [], None) for i in self.ids}
        self.applied: dict[int, int] = dict.fromkeys(self.ids, 0)
        self.committed: dict[int, tuple[int, bytes]] = {}  # index -> (term, data)
        self.in_flight: list[Message] = []
        self.held: dict[int, list[Message]] = {i: [] for i in self.ids}
        self.blocked: dict[int, int] = dict.fromkeys(self.ids, 0)  # ticks left
        self.drop: Callable[[Message], bool] = lambda m: False
        self.loss = 0.0  # random loss probability, from the seeded rng
        self.dropped: list[Message] = []
        self.now = 0
        self._incarnation = 0
        for i in self.ids:
            self.nodes[i] = self._new(i)

    # -- nodes -------------------------------------------------------------------

    def _new(self, i: int, **kw: object) -> RaftNode:
        self._incarnation += 1
        cfg = Config(id=i, peers=self.ids, **self.cfg_kw)  # type: ignore[arg-type]
        return RaftNode(cfg, random.Random(self.seed * 1000 + self._incarnation), **kw)  # type: ignore[arg-type]

    def node(self, i: int) -> RaftNode:
        n = self.nodes[i]
        assert n is not None, f"node {i} is down"
        return n

    def crash(self, i: int) -> None:
        self.nodes[i] = None
        self.held[i] = []
        self.blocked[i] = 0
        self.in_flight = [m for m in self.in_flight if i not in (m.src, m.dst)]

    def restart(self, i: int, *, reapply_ticks: int = 0) -> None:
        """Bring node i back from its disk; it is busy re-applying for
        ``reapply_ticks`` ticks (the shell applies the whole tail in one go)."""
        assert self.nodes[i] is None
        hs, ents, snap = self.disk[i]
        applied = snap.index if snap is not None else 0
        self.applied[i] = applied
        self.nodes[i] = self._new(
            i, hard_state=hs, entries=list(ents), snapshot=snap, applied=applied
        )
        if reapply_ticks:
            self.block(i, reapply_ticks)

    def block(self, i: int, ticks: int) -> None:
        self.blocked[i] = max(self.blocked[i], ticks)

    # -- the shell ---------------------------------------------------------------

    def process(self, i: int) -> None:
        node = self.nodes[i]
        if node is None or self.blocked[i]:
            return
        while node.has_ready():
            rd = node.ready()
            hs, ents, snap = self.disk[i]
            if rd.snapshot is not None:
                snap, ents = rd.snapshot, []
            if rd.entries:
                first = rd.entries[0].index
                ents = [e for e in ents if e.index < first] + rd.entries
            if rd.hard_state is not None:
                hs = rd.hard_state
            self.disk[i] = (hs, ents, snap)
            self.in_flight.extend(rd.messages)
            if rd.snapshot is not None:
                self.applied[i] = max(self.applied[i], rd.snapshot.index)
            for e in rd.committed:
                self._apply(i, e)
            node.advance(rd)
            self._maybe_compact(i, node)

    def _apply(self, i: int, e: Entry) -> None:
        if e.index <= self.applied[i]:
            return
        assert e.index == self.applied[i] + 1, f"node {i} applies {e.index} after {self.applied[i]}"
        seen = self.committed.setdefault(e.index, (e.term, e.data))
        assert seen == (e.term, e.data), f"node {i}: entry {e.index} differs from the committed one"
        self.applied[i] = e.index

    def _maybe_compact(self, i: int, node: RaftNode) -> None:
        if not self.compact_every:
            return
        if self.applied[i] - node.log.snapshot.index < self.compact_every:
            return
        node.compact(self.applied[i], b"state@%d" % self.applied[i])
        hs, ents, _snap = self.disk[i]
        snap = node.log.snapshot
        self.disk[i] = (hs, [e for e in ents if e.index > snap.index], snap)

    def _deliver_round(self) -> None:
        batch, self.in_flight = self.in_flight, []
        for m in batch:
            if self.nodes[m.dst] is None:
                continue
            if self.drop(m) or (self.loss and self.rng.random() < self.loss):
                self.dropped.append(m)
                continue
            if self.blocked[m.dst]:
                self.held[m.dst].append(m)
                continue
            self.node(m.dst).step(m)

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.now += 1
            for i in self.ids:
                node = self.nodes[i]
                if node is None:
                    continue
                if self.blocked[i]:
                    self.blocked[i] -= 1
                    if self.blocked[i]:
                        continue
                    # Unblocked: the buffered burst arrives, then the loop goes on.
                    burst, self.held[i] = self.held[i], []
                    for m in burst:
                        node.step(m)
                node.tick()
            for _ in range(self.rounds_per_tick):
                for i in self.ids:
                    self.process(i)
                self._deliver_round()
            for i in self.ids:
                self.process(i)

    # -- load and questions -----------------------------------------------------

    def leader(self) -> RaftNode | None:
        leaders = [n for n in self.nodes.values() if n is not None and n.role == Role.LEADER]
        return max(leaders, key=lambda n: n.term) if leaders else None

    def elect(self, max_ticks: int = 200) -> RaftNode:
        for _ in range(max_ticks):
            ld = self.leader()
            if ld is not None and ld.commit == ld.last_index:
                return ld
            self.tick()
        raise AssertionError("no leader elected")

    def propose(self, count: int) -> None:
        ld = self.leader()
        if ld is not None:
            ld.propose_many([b"w%d.%d" % (self.now, k) for k in range(count)])

    def caught_up(self, i: int) -> bool:
        """Node i is a follower of the current leader, in its term, holding and
        having applied everything the leader has committed, and the leader
        knows it (its progress for i matches its last index)."""
        ld = self.leader()
        node = self.nodes[i]
        if ld is None or node is None or self.blocked[i]:
            return False
        pr = ld.progress.get(i)
        return (
            node.role == Role.FOLLOWER
            and node.leader == ld.id
            and node.term == ld.term
            and pr is not None
            and pr.match == ld.last_index
            and node.commit == ld.commit
            and self.applied[i] == ld.commit
        )

    def ticks_until(self, cond: Callable[[], bool], bound: int, load: int = 0) -> int:
        """Tick (proposing ``load`` entries per tick) until ``cond``; the number
        of ticks it took, or AssertionError past ``bound``."""
        for t in range(bound + 1):
            if cond():
                return t
            if load:
                self.propose(load)
            self.tick()
        raise AssertionError(f"not reached within {bound} ticks: {self.describe()}")

    def describe(self) -> str:
        ld = self.leader()
        parts = []
        for i in self.ids:
            n = self.nodes[i]
            if n is None:
                parts.append(f"{i}:down")
                continue
            pr = ld.progress.get(i) if ld is not None else None
            extra = ""
            if pr is not None:
                extra = (
                    f" pr(match {pr.match} next {pr.next} probing {pr.probing}"
                    f" paused {pr.paused} inflight {len(pr.inflight)})"
                )
            parts.append(
                f"{i}:{n.role.name} t{n.term} leader {n.leader} c{n.commit} a{self.applied[i]}"
                f" last {n.last_index}{' blocked' if self.blocked[i] else ''}{extra}"
            )
        return "; ".join(parts)


def is_type(*types: MsgType) -> Callable[[Message], bool]:
    return lambda m: m.type in types
