"""The simulated cluster: hosts, network, disks, clients, faults, one event loop.

Why: this is the shell around the sans-IO ``RaftNode`` that the simulator
drives exactly as the production shell does (see ``consensus_sim`` for the
invariants and how a run is judged). Ticks every ``tick`` seconds, ``step`` on
delivery; a Ready's snapshot/entries/hard state go to the simulated disk, and
its messages are sent, committed entries applied and ``advance`` called only
when that write's fsync completes (virtual time later). One Ready is written
at a time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from paddock.consensus import wal
from paddock.consensus.raft import Config, RaftNode
from paddock.consensus.types import Entry, Message, Ready, Role
from paddock.sim.clients import ClientPool
from paddock.sim.host import Host
from paddock.sim.invariants import ClusterInvariants, Violation
from paddock.sim.kv import KVStateMachine
from paddock.sim.loop import EventLoop, derive_rng
from paddock.sim.nemesis import Authority, Nemesis
from paddock.sim.network import SimNetwork

#: Virtual seconds of faults per run: long enough for several elections, crashes
#: and compactions, short enough that ``--seeds 1000`` takes about a minute.
DEFAULT_DURATION = 2.5


@dataclass(frozen=True, slots=True)
class SimConfig:
    seed: int
    nodes: int = 3
    mode: str = "safety"  # safety | liveness
    election: str = "internal"  # internal | external
    bug: str = ""
    #: Virtual seconds with faults (the whole run in safety mode).
    duration: float = DEFAULT_DURATION
    #: Liveness: virtual seconds allowed after healing to elect, converge and commit.
    liveness_bound: float = 5.0
    tick: float = 0.01
    clients: int = 3
    keys: int = 3
    trace: bool = False
    #: Test-only client fault proving the history checker has teeth:
    #: "stale_reads" answers reads from the contacted node's state, no read index.
    client_bug: str = ""


def _msg_text(m: Message) -> str:
    s = f"{m.type.name} {m.src}->{m.dst} t{m.term}"
    if m.index or m.log_term:
        s += f" i{m.index}/t{m.log_term}"
    if m.entries:
        s += f" +{len(m.entries)}[{m.entries[0].index}..{m.entries[-1].index}]"
    if m.commit:
        s += f" c{m.commit}"
    if m.reject:
        s += f" REJECT hint{m.hint}"
    if m.snapshot is not None:
        s += f" snap@{m.snapshot.index}"
    if m.context:
        s += f" ctx{m.context}"
    return s


class Cluster:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        master = random.Random(cfg.seed)
        self.net_rng = derive_rng(master)
        self.disk_rng = derive_rng(master)
        self.raft_rng = derive_rng(master)
        self.nemesis_rng = derive_rng(master)
        self.client_rng = derive_rng(master)
        self.auth_rng = derive_rng(master)
        self.setup_rng = derive_rng(master)
        self.loop = EventLoop()
        self.node_ids = tuple(range(1, cfg.nodes + 1))
        self.quorum = cfg.nodes // 2 + 1
        self.external = cfg.election == "external"
        self.trace: list[str] | None = [] if cfg.trace else None
        self.knobs: dict[str, int | bool] = {}
        self.hosts: dict[int, Host] = {i: Host(i) for i in self.node_ids}
        self.net = SimNetwork(self.loop, self.net_rng, self.node_ids, self._deliver)
        self.inv = ClusterInvariants(self.quorum)
        self.request_seq = 0
        self.caught_corruptions = 0
        self.disk_faults = 0
        self.clients = ClientPool(
            self, self.client_rng, cfg.clients, [f"k{i}" for i in range(cfg.keys)]
        )
        self.nemesis = Nemesis(self, self.nemesis_rng)
        self.authority = Authority(self, self.auth_rng) if self.external else None
        self._tune_faults()

    def _tune_faults(self) -> None:
        r = self.setup_rng
        f = self.net.faults
        f.drop = r.choice([0.0, 0.01, 0.05, 0.1])
        f.duplicate = r.choice([0.0, 0.01, 0.05])
        f.slow = r.choice([0.0, 0.02, 0.1])
        self.disk_min = 0.0002 + r.random() * 0.001
        self.disk_max = self.disk_min + r.random() * 0.003
        self.disk_slow = r.choice([0.0, 0.02, 0.05])
        self.rot_chance = r.choice([0.1, 0.3])
        # Exercise the node's knobs too: flow control limits and election options.
        self.knobs = {
            "pre_vote": r.random() < 0.75,
            "check_quorum": r.random() < 0.75,
            "heartbeat_ticks": r.choice([1, 1, 2]),
            "max_append_entries": r.choice([1, 3, 1024]),
            "max_inflight_appends": r.choice([1, 2, 64]),
        }
        if r.random() < 0.3:
            # A fault storm: the nemesis acts every few milliseconds.
            self.nemesis.min_gap, self.nemesis.max_gap = 0.005, 0.05
        for h in self.hosts.values():
            h.compact_every = r.choice([10, 30, 80])
            h.tick = self.cfg.tick * (0.9 + 0.2 * r.random())

    # -- tracing ------------------------------------------------------------------

    def trace_event(self, node: int, text: str) -> None:
        if self.trace is not None:
            who = f"n{node}" if node else "--"
            self.trace.append(f"{self.loop.now * 1000:10.3f}ms {who:>3} {text}")

    def new_request_id(self) -> int:
        self.request_seq += 1
        return self.request_seq

    # -- node lifecycle -------------------------------------------------------------

    def _config(self, node_id: int) -> Config:
        return Config(
            id=node_id,
            peers=self.node_ids,
            external_election=self.external,
            bug=self.cfg.bug,
            pre_vote=bool(self.knobs["pre_vote"]),
            check_quorum=bool(self.knobs["check_quorum"]),
            heartbeat_ticks=int(self.knobs["heartbeat_ticks"]),
            max_append_entries=int(self.knobs["max_append_entries"]),
            max_inflight_appends=int(self.knobs["max_inflight_appends"]),
        )

    def boot(self) -> None:
        for i in self.node_ids:
            h = self.hosts[i]
            h.node = RaftNode(self._config(i), derive_rng(self.raft_rng))
            self.loop.call_later(self.setup_rng.random() * h.tick, self._tick, h, h.inc)

    def pause(self, node_id: int, duration: float) -> None:
        h = self.hosts[node_id]
        h.paused_until = max(h.paused_until, self.loop.now + duration)
        self.trace_event(node_id, f"PAUSE until {h.paused_until * 1000:.3f}ms")

    def crash(self, node_id: int) -> None:
        h = self.hosts[node_id]
        if h.node is None:
            return
        h.node = None
        h.inc += 1
        h.writing = False
        h.crash_armed = False
        h.bounce_armed = False
        h.read_points = []
        rep = h.disk.crash(self.disk_rng)
        if rep.damaged_tail or rep.kept_unsynced:
            self.disk_faults += 1
        self.trace_event(
            node_id,
            f"CRASH (lost {rep.lost_bytes}B unsynced, kept {rep.kept_unsynced}B"
            f"{', damaged tail' if rep.damaged_tail else ''})",
        )
        self.clients.host_crashed(h)

    def restart(self, node_id: int) -> None:
        h = self.hosts[node_id]
        if h.node is not None:
            return
        try:
            rec = h.disk.recover()
        except wal.CorruptLog as err:
            raise Violation(
                "spurious corruption", f"node {node_id}: clean image rejected: {err}"
            ) from None
        if self.disk_rng.random() < self.rot_chance:
            rot = h.disk.rot_synced_bit(self.disk_rng)
            if rot is not None:
                self.disk_faults += 1
                try:
                    h.disk.recover()
                except wal.CorruptLog:
                    self.caught_corruptions += 1
                    self.trace_event(node_id, f"bit rot at byte {rot.offset} caught; restored")
                else:
                    raise Violation(
                        "undetected corruption",
                        f"node {node_id}: bit flipped at byte {rot.offset} of synced log "
                        "was not reported by recovery",
                    )
                h.disk.undo_rot(rot)
                again = h.disk.recover()
                if again != rec:
                    raise Violation("restore from backup", f"node {node_id}: state differs")
        hs = rec.hard_state
        if hs.commit < h.synced_commit:
            raise Violation(
                "commit persisted",
                f"node {node_id} recovered commit {hs.commit} < synced {h.synced_commit}",
            )
        h.synced_commit = hs.commit
        h.durable = wal.LogState(hs, rec.snapshot, rec.entries)
        # Rebuild the state machine: snapshot, then committed entries.
        snap = rec.snapshot
        if snap is not None:
            sm = KVStateMachine.restore(snap.data, snap.index)
            self._check_state(h.id, snap.index, sm)
        else:
            sm = KVStateMachine()
        commit = max(hs.commit, snap.index if snap else 0)
        for e in rec.entries:
            if e.index <= sm.applied:
                continue
            if e.index > commit:
                break
            self._apply_entry(h, sm, e, notify=False)
        h.sm = sm
        if sm.applied != commit:
            raise Violation(
                "recovery",
                f"node {node_id}: replayed to {sm.applied}, committed {commit}",
            )
        node = RaftNode(
            self._config(node_id),
            derive_rng(self.raft_rng),
            hard_state=hs,
            snapshot=snap,
            entries=rec.entries,
            applied=sm.applied,
        )
        if node.commit < hs.commit:
            raise Violation("commit persisted", f"node {node_id}: {node.commit} < {hs.commit}")
        h.node = node
        h.last_commit = node.commit
        h.restarts += 1
        self.trace_event(
            node_id,
            f"RESTART term {hs.term} vote {hs.vote} commit {hs.commit} "
            f"snap {snap.index if snap else 0} last {node.last_index}",
        )
        self.loop.call_later(self.setup_rng.random() * h.tick, self._tick, h, h.inc)

    # -- driving nodes ------------------------------------------------------------

    def _tick(self, h: Host, inc: int) -> None:
        if h.inc != inc or h.node is None:
            return
        if h.paused_until > self.loop.now:
            self.loop.call_at(h.paused_until, self._tick, h, inc)
            return
        h.node.tick()
        self.pump(h)
        self.loop.call_later(h.tick, self._tick, h, inc)

    def _deliver(self, m: Message) -> None:
        h = self.hosts.get(m.dst)
        if h is None or h.node is None:
            return
        if h.paused_until > self.loop.now:
            self.loop.call_at(h.paused_until, self._deliver, m)
            return
        if self.trace is not None:
            self.trace_event(m.dst, "recv " + _msg_text(m))
        h.node.step(m)
        self.pump(h)

    def campaign(self, node_id: int) -> None:
        h = self.hosts[node_id]
        if h.node is None:
            return
        if h.paused_until > self.loop.now:
            self.loop.call_at(h.paused_until, self.campaign, node_id)
            return
        h.node.campaign()
        self.pump(h)

    def current_leader(self) -> int:
        best = 0
        best_term = -1
        for i in self.node_ids:
            n = self.hosts[i].node
            if n is not None and n.role == Role.LEADER and n.term > best_term:
                best, best_term = i, n.term
        return best

    def pump(self, h: Host) -> None:
        """Hand the node's pending Ready to the disk (or finish it at once)."""
        while not h.writing:
            node = h.node
            if node is None or not node.has_ready():
                return
            rd = node.ready()
            if rd.soft_state is not None and self.trace is not None:
                ss = rd.soft_state
                self.trace_event(h.id, f"role {ss.role.name} term {node.term} leader {ss.leader}")
            if rd.must_sync:
                h.writing = True
                n = h.disk.append(
                    snapshot=rd.snapshot, entries=rd.entries, hard_state=rd.hard_state
                )
                delay = self.disk_min + self.disk_rng.random() * (self.disk_max - self.disk_min)
                if self.disk_slow and self.disk_rng.random() < self.disk_slow:
                    delay += self.disk_rng.random() * 0.03
                if self.trace is not None:
                    hs = rd.hard_state
                    what = []
                    if rd.snapshot is not None:
                        what.append(f"snap@{rd.snapshot.index}")
                    if rd.entries:
                        what.append(f"entries {rd.entries[0].index}..{rd.entries[-1].index}")
                    if hs is not None:
                        what.append(f"hs(t{hs.term} v{hs.vote} c{hs.commit})")
                    self.trace_event(h.id, f"write {' '.join(what)} {n}B")
                h.write_done_at = self.loop.now + delay
                self.loop.call_later(delay, self._write_done, h, h.inc, rd)
                if h.crash_armed:
                    h.crash_armed = False
                    self.nemesis.crash_during_write(h.id)
                return
            self._finish(h, rd)

    def _write_done(self, h: Host, inc: int, rd: Ready) -> None:
        if h.inc != inc or h.node is None:
            return
        if h.paused_until > self.loop.now:
            self.loop.call_at(h.paused_until, self._write_done, h, inc, rd)
            return
        h.disk.sync()
        d = h.durable
        if rd.snapshot is not None:
            d.apply_snapshot(rd.snapshot, wal.SnapshotMode.DROP_ALL)
        for e in rd.entries:
            d.apply_entry(e)
        hs = rd.hard_state
        if hs is not None:
            if hs.commit < h.synced_commit:
                raise Violation(
                    "commit monotonic",
                    f"node {h.id} persisted commit {hs.commit} < {h.synced_commit}",
                )
            h.synced_commit = hs.commit
            d.hard_state = hs
        h.writing = False
        self.trace_event(h.id, "fsync done")
        self._finish(h, rd)
        if h.bounce_armed:
            self.nemesis.bounce(h.id)
            return
        self.pump(h)

    def _finish(self, h: Host, rd: Ready) -> None:
        node = h.node
        assert node is not None
        send = self.net.send
        for m in rd.messages:
            send(m)
        if rd.snapshot is not None:
            snap = rd.snapshot
            if snap.index < h.sm.applied:
                raise Violation(
                    "applied regressed",
                    f"node {h.id} installs snapshot {snap.index} below applied {h.sm.applied}",
                )
            h.sm = KVStateMachine.restore(snap.data, snap.index)
            self._check_state(h.id, snap.index, h.sm)
            self.trace_event(h.id, f"apply snapshot @{snap.index}")
        if rd.committed:
            sm = h.sm
            for e in rd.committed:
                self._apply_entry(h, sm, e, notify=True)
            if self.trace is not None:
                self.trace_event(h.id, f"apply {rd.committed[0].index}..{rd.committed[-1].index}")
        for rs in rd.read_states:
            self.clients.read_point(h, rs.request_id, rs.index)
        if h.read_points:
            self.clients.applied_up_to(h)
        for rid in rd.dropped_reads:
            self.clients.read_dropped(h, rid)
        node.advance(rd)
        if node.applied != h.sm.applied:
            raise Violation(
                "applied index",
                f"node {h.id}: node says applied {node.applied}, state machine {h.sm.applied}",
            )
        if h.sm.applied - node.log.snapshot.index >= h.compact_every and not h.writing:
            self._compact(h)

    def _compact(self, h: Host) -> None:
        node = h.node
        assert node is not None
        node.compact(h.sm.applied, h.sm.serialize())
        snap = node.log.snapshot
        d = h.durable
        d.apply_snapshot(snap, wal.SnapshotMode.KEEP_SUFFIX)
        h.disk.rewrite(d.snapshot, d.hard_state, d.entries)
        self.trace_event(h.id, f"compact @{snap.index} (log rewritten, {h.disk.size}B)")

    def _apply_entry(self, h: Host, sm: KVStateMachine, e: Entry, notify: bool) -> None:
        if e.index != sm.applied + 1:
            raise Violation(
                "apply order",
                f"node {h.id} applies index {e.index} after {sm.applied}",
            )
        inv = self.inv
        if e.index not in inv.committed:
            holders = [i for i in self.node_ids if self.hosts[i].has_durably(e.index, e.term)]
            max_term = max(
                (x.node.term if x.node is not None else x.durable.hard_state.term)
                for x in self.hosts.values()
            )
            inv.first_apply(h.id, e, holders, max_term)
        else:
            inv.reapply(h.id, e)
        result = sm.apply(e.index, e.data)
        self._check_state(h.id, e.index, sm)
        if notify:
            if result is None:
                self.clients.applied(h, e.index, e.term, None, False)
            else:
                self.clients.applied(h, e.index, e.term, result[0], result[1])

    def _check_state(self, node_id: int, index: int, sm: KVStateMachine) -> None:
        self.inv.state(node_id, index, sm.digest())

    def check_step(self) -> None:
        """After every event: commit indexes never decrease, one leader per term."""
        inv = self.inv
        for h in self.hosts.values():
            node = h.node
            if node is None:
                continue
            c = node.commit
            if c < h.last_commit:
                raise Violation(
                    "commit monotonic",
                    f"node {h.id} commit went from {h.last_commit} to {c}",
                )
            h.last_commit = c
            if node.role == Role.LEADER and inv.leader(h.id, node):
                self.trace_event(h.id, f"LEADER of term {node.term}")

    # -- liveness -------------------------------------------------------------------

    def heal_everything(self) -> None:
        self.nemesis.stop()
        self.net.heal()
        f = self.net.faults
        f.drop = f.duplicate = f.slow = 0.0
        self.disk_slow = 0.0
        self.rot_chance = 0.0
        if self.authority is not None:
            self.authority.faulty = False
        if self.setup_rng.random() < 0.3:
            # A last fault: a whole-cluster power cut, so liveness is also proven
            # from nothing but what the disks kept.
            self.trace_event(0, "power cut: every node crashes")
            for i in self.node_ids:
                self.crash(i)
            self.disk_faults += 1
        for i in self.node_ids:
            if self.hosts[i].node is None:
                self.restart(i)
        self.trace_event(0, "HEAL: faults stop, all nodes up")

    def converged(self) -> bool:
        leader = self.current_leader()
        if not leader:
            return False
        nodes = [self.hosts[i].node for i in self.node_ids]
        if any(n is None for n in nodes):
            return False
        lead = self.hosts[leader].node
        assert lead is not None
        for n in nodes:
            assert n is not None
            if n.term != lead.term or n.leader != leader:
                return False
            if n.commit != lead.commit or n.applied != lead.commit:
                return False
        return lead.commit == lead.last_index
