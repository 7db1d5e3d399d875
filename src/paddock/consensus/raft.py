"""The consensus core: a sans-IO Raft node.

Why Raft: it is the best specified leader-based log (a complete paper, a TLA+
spec, etcd-io/raft as a reference implementation of the Step/Ready/Advance
shape), it gives exactly the guarantees keeper and the master registry need,
and its election restriction makes the external-election variant below easy to
argue. See docs/architecture.md.

Public API (the shells and the simulator code against it)::

    node = RaftNode(Config(id=1, peers=(1, 2, 3)), rng=random.Random(seed),
                    hard_state=..., snapshot=..., entries=[...], applied=...)
    node.tick()                      # one abstract clock tick
    node.step(msg)                   # a message from a peer
    node.propose(data) -> (index, term) | None
                                     # leader: appended at (index, term)
                                     # follower knowing a leader: forwarded, None
                                     # otherwise raises NotLeader
    node.read_index(request_id)      # linearizable read barrier -> ReadState in Ready
    node.campaign()                  # internal mode: start an election now;
                                     # external mode: the outside authority named us
    node.compact(index, data)        # app snapshot covering <= index; trims the log
    node.has_ready() / node.ready() / node.advance(ready)

Two ways to pick the leader:

* internal (default): Raft elections with randomized timeouts, pre-vote and
  check-quorum, as etcd-io/raft.
* external (``Config.external_election``): nodes never campaign on their own.
  When an outside authority (a ZooKeeper leader znode, as Mesos masters use)
  names a node, ``campaign()`` starts a recovery round in a new term: every
  voter that promises the term also sends its log after the candidate's commit
  index; with a majority of promises the candidate adopts the most up-to-date
  log among them (the same log a normal Raft election would have required it
  to hold) and leads. So a node with a stale log can be named and still
  recover the old leader's in-flight entries. A deposed leader cannot commit
  after a newer term has a majority of promises, and check-quorum makes it
  step down and drop pending reads.

Nothing here does I/O, reads a clock or uses global randomness.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from paddock.consensus.log import RaftLog
from paddock.consensus.types import (
    Entry,
    EntryKind,
    HardState,
    Message,
    MsgType,
    NotLeader,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SoftState,
)

#: Test-only fault switches, for proving the simulator catches broken variants.
KNOWN_BUGS = ("commit_without_quorum", "vote_twice")


@dataclass(frozen=True, slots=True)
class Config:
    id: int
    peers: tuple[int, ...]
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    external_election: bool = False
    pre_vote: bool = True
    check_quorum: bool = True
    max_append_entries: int = 1024
    max_inflight_appends: int = 64
    #: Test-only switch (see KNOWN_BUGS). Never set in production.
    bug: str = ""

    def __post_init__(self) -> None:
        if self.id not in self.peers:
            raise ValueError(f"node {self.id} is not among peers {self.peers}")
        if self.id <= 0:
            raise ValueError("node ids must be >= 1")
        if self.heartbeat_ticks <= 0 or self.election_ticks <= self.heartbeat_ticks:
            raise ValueError("need 0 < heartbeat_ticks < election_ticks")
        if self.bug and self.bug not in KNOWN_BUGS:
            raise ValueError(f"unknown bug switch {self.bug!r}")


class Progress:
    """The leader's view of one follower."""

    __slots__ = (
        "active",
        "inflight",
        "match",
        "next",
        "paused",
        "probing",
        "read_ack",
        "sent_commit",
    )

    def __init__(self, next_index: int) -> None:
        self.match = 0
        self.next = next_index
        self.probing = True  # probe: one append at a time until a match is known
        self.paused = False  # probe sent, waiting for an answer (or a heartbeat)
        self.inflight: deque[int] = deque()  # last index of each unanswered append
        self.active = False  # heard from since the last check-quorum round
        self.read_ack = 0  # highest read-index round this follower acknowledged
        self.sent_commit = 0  # highest commit index sent in an append


class RaftNode:
    def __init__(
        self,
        config: Config,
        rng: random.Random,
        *,
        hard_state: HardState | None = None,
        snapshot: Snapshot | None = None,
        entries: list[Entry] | None = None,
        applied: int = 0,
    ) -> None:
        self.cfg = config
        self.id = config.id
        self.peers = tuple(sorted(config.peers))
        self.others = tuple(p for p in self.peers if p != self.id)
        self.quorum = len(self.peers) // 2 + 1
        self.rng = rng
        hs = hard_state or HardState()
        self.log = RaftLog(snapshot, list(entries or []))
        self.term = hs.term
        self.vote = hs.vote
        self.commit = max(hs.commit, self.log.snapshot.index)
        if self.commit > self.log.last_index:
            raise ValueError(
                f"commit index {self.commit} is beyond the last log index {self.log.last_index}"
            )
        # Entries up to `applied` are reflected in the application's state.
        self.applied = max(applied, self.log.snapshot.index)
        self._applying_to = self.applied
        self.role = Role.FOLLOWER
        self.leader = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self._random_timeout()
        self.votes: dict[int, bool] = {}
        self.elect_logs: dict[int, Message] = {}
        self.progress: dict[int, Progress] = {}
        self.msgs: list[Message] = []
        self.forward: list[Entry] = []
        self.need_bcast = False
        self.pending_snapshot: Snapshot | None = None
        # Read index: (round, request_id, index); rounds are heartbeat contexts.
        self.read_round = 0
        self.pending_reads: deque[tuple[int, int, int]] = deque()
        self.waiting_reads: list[int] = []  # until the leader commits in its term
        self.read_states: list[ReadState] = []
        self.dropped_reads: list[int] = []
        self._prev_hs = HardState(self.term, self.vote, self.commit)
        self._prev_ss = SoftState(self.leader, self.role)

    # -- inputs ------------------------------------------------------------------

    def tick(self) -> None:
        self.election_elapsed += 1
        if self.role == Role.LEADER:
            self.heartbeat_elapsed += 1
            if self.cfg.check_quorum and self.election_elapsed >= self.cfg.election_ticks:
                self.election_elapsed = 0
                if not self._quorum_active():
                    self._become_follower(self.term, 0)
                    return
            if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks:
                self.heartbeat_elapsed = 0
                self._bcast_heartbeat()
            return
        if self.election_elapsed >= self.randomized_timeout:
            self.election_elapsed = 0
            if self.cfg.external_election:
                if self.role == Role.CANDIDATE:
                    # No majority of promises in time; the authority may name us again.
                    self._become_follower(self.term, 0)
                return
            if self.cfg.pre_vote:
                self._campaign_pre_vote()
            else:
                self._campaign_vote()

    def campaign(self) -> None:
        """Start an election now (internal mode) or take over as the node named by
        the outside authority (external mode)."""
        if self.role == Role.LEADER:
            return
        if self.cfg.external_election:
            self._campaign_external()
        else:
            self._campaign_vote()

    def propose(self, data: bytes) -> tuple[int, int] | None:
        """Append ``data`` (leader) or forward it to the known leader (follower)."""
        if self.role == Role.LEADER:
            index = self.log.last_index + 1
            self.log.append([Entry(self.term, index, data)])
            self.need_bcast = True
            return index, self.term
        if self.leader and self.role == Role.FOLLOWER:
            self.forward.append(Entry(0, 0, data))
            return None
        raise NotLeader(self.leader)

    def propose_many(self, datas: list[bytes]) -> tuple[int, int]:
        """Leader only: append a batch; returns (first index, term)."""
        if self.role != Role.LEADER:
            raise NotLeader(self.leader)
        first = self.log.last_index + 1
        term = self.term
        self.log.append([Entry(term, first + i, d) for i, d in enumerate(datas)])
        self.need_bcast = True
        return first, term

    def read_index(self, request_id: int) -> None:
        """Ask for a linearizable read point; answered by a ``ReadState`` in a later
        Ready (or listed in ``Ready.dropped_reads`` if leadership is lost first)."""
        if self.role != Role.LEADER:
            raise NotLeader(self.leader)
        if self.log.term(self.commit) != self.term:
            # Raft §6.4: the leader must have committed an entry of its own term
            # before its commit index is known to be up to date.
            self.waiting_reads.append(request_id)
            return
        self._start_read(request_id)

    def compact(self, index: int, data: bytes) -> None:
        """The application made a snapshot of its state at ``index`` (<= applied)."""
        if index > self.applied:
            raise ValueError(f"cannot compact to {index}: only {self.applied} applied")
        if index <= self.log.snapshot.index:
            return
        term = self.log.term(index)
        assert term is not None
        self.log.compact(Snapshot(index, term, self.peers, data))

    def step(self, m: Message) -> None:
        if m.dst != self.id or m.src not in self.peers or m.src == self.id:
            return
        t = m.type
        if m.term > self.term:
            if t in (MsgType.PRE_VOTE, MsgType.VOTE) and self._in_lease():
                return  # a leader is alive; don't let a disruptive node depose it
            if t == MsgType.PRE_VOTE:
                pass  # never change term for a pre-vote
            elif t == MsgType.PRE_VOTE_RESP and not m.reject:
                pass  # granted pre-votes carry our own future term
            elif t in (MsgType.APPEND, MsgType.HEARTBEAT, MsgType.SNAPSHOT):
                self._become_follower(m.term, m.src)
            else:
                self._become_follower(m.term, 0)
        elif m.term < self.term and t != MsgType.PROPOSE:
            if t in (MsgType.APPEND, MsgType.HEARTBEAT) and (
                self.cfg.check_quorum or self.cfg.pre_vote or self.cfg.external_election
            ):
                # A stale leader: tell it about our term so it steps down. (In
                # external mode nobody else would: nodes never campaign on their
                # own and the authority keeps trusting a node that says it leads.)
                self._send(Message(MsgType.APPEND_RESP, self.id, m.src, self.term))
            elif t == MsgType.PRE_VOTE:
                self._send(Message(MsgType.PRE_VOTE_RESP, self.id, m.src, self.term, reject=True))
            return

        if t in (MsgType.VOTE, MsgType.PRE_VOTE):
            self._handle_vote_request(m)
        elif t == MsgType.ELECT:
            self._handle_elect(m)
        elif t == MsgType.PROPOSE:
            if self.role == Role.LEADER:
                self.propose_many([e.data for e in m.entries])
            elif self.leader and self.leader != m.src:
                self.forward.extend(m.entries)
        elif self.role == Role.LEADER:
            self._step_leader(m)
        elif self.role == Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    # -- Ready / Advance ---------------------------------------------------------

    def has_ready(self) -> bool:
        return bool(
            self.msgs
            or self.need_bcast
            or self.forward
            or self.log.unstable_from <= self.log.last_index
            or self.pending_snapshot is not None
            or self.commit > self._applying_to
            or self.read_states
            or self.dropped_reads
            or HardState(self.term, self.vote, self.commit) != self._prev_hs
            or SoftState(self.leader, self.role) != self._prev_ss
        )

    def ready(self) -> Ready:
        self._flush()
        rd = Ready()
        ss = SoftState(self.leader, self.role)
        if ss != self._prev_ss:
            rd.soft_state = ss
            self._prev_ss = ss
        hs = HardState(self.term, self.vote, self.commit)
        if hs != self._prev_hs:
            rd.hard_state = hs
        if self.pending_snapshot is not None:
            rd.snapshot = self.pending_snapshot
        rd.entries = self.log.take_unstable()
        rd.messages, self.msgs = self.msgs, []
        if self.commit > self._applying_to:
            lo = max(self._applying_to + 1, self.log.first_index)
            rd.committed = self.log.slice(lo, self.commit + 1)
            self._applying_to = self.commit
        rd.read_states, self.read_states = self.read_states, []
        rd.dropped_reads, self.dropped_reads = self.dropped_reads, []
        return rd

    def advance(self, rd: Ready) -> None:
        if rd.hard_state is not None:
            self._prev_hs = rd.hard_state
        if rd.snapshot is not None:
            if self.pending_snapshot is rd.snapshot:
                self.pending_snapshot = None
            self.applied = max(self.applied, rd.snapshot.index)
        if rd.committed:
            self.applied = max(self.applied, rd.committed[-1].index)
        if rd.entries:
            last = rd.entries[-1]
            self.log.stable_to(last.index, last.term)
            if self.role == Role.LEADER:
                self._maybe_commit()

    # -- status ------------------------------------------------------------------

    @property
    def last_index(self) -> int:
        return self.log.last_index

    def status(self) -> dict[str, object]:
        return {
            "id": self.id,
            "role": self.role.name.lower(),
            "term": self.term,
            "leader": self.leader,
            "commit": self.commit,
            "applied": self.applied,
            "last_index": self.log.last_index,
            "snapshot_index": self.log.snapshot.index,
            "progress": {
                p: {"match": pr.match, "next": pr.next} for p, pr in self.progress.items()
            },
        }

    # -- role changes -------------------------------------------------------------

    def _random_timeout(self) -> int:
        e = self.cfg.election_ticks
        return e + self.rng.randrange(e)

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = 0
        self.leader = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self._random_timeout()
        self.votes = {}
        self.elect_logs = {}
        self.progress = {}
        self._drop_reads()

    def _drop_reads(self) -> None:
        self.dropped_reads.extend(r for _, r, _ in self.pending_reads)
        self.dropped_reads.extend(self.waiting_reads)
        self.pending_reads.clear()
        self.waiting_reads.clear()

    def _become_follower(self, term: int, leader: int) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.leader = leader

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.role = Role.LEADER
        self.leader = self.id
        nxt = self.log.last_index + 1
        for p in self.others:
            self.progress[p] = Progress(nxt)
        # Raft §8: commit a no-op of our own term so earlier entries commit too.
        self.log.append([Entry(self.term, nxt, b"", EntryKind.NOOP)])
        self.need_bcast = True
        if len(self.peers) == 1:
            self._maybe_commit()

    def _campaign_pre_vote(self) -> None:
        self._reset(self.term)
        self.role = Role.PRE_CANDIDATE
        self.votes[self.id] = True
        if self._tally() is True:
            self._campaign_vote()
            return
        for p in self.others:
            self._send(
                Message(
                    MsgType.PRE_VOTE,
                    self.id,
                    p,
                    self.term + 1,
                    index=self.log.last_index,
                    log_term=self.log.last_term,
                )
            )

    def _campaign_vote(self) -> None:
        self._reset(self.term + 1)
        self.role = Role.CANDIDATE
        self.vote = self.id
        self.votes[self.id] = True
        if self._tally() is True:
            self._become_leader()
            return
        for p in self.others:
            self._send(
                Message(
                    MsgType.VOTE,
                    self.id,
                    p,
                    self.term,
                    index=self.log.last_index,
                    log_term=self.log.last_term,
                )
            )

    def _campaign_external(self) -> None:
        self._reset(self.term + 1)
        self.role = Role.CANDIDATE
        self.vote = self.id
        self.votes[self.id] = True
        if len(self.peers) == 1:
            self._become_leader()
            return
        for p in self.others:
            self._send(Message(MsgType.ELECT, self.id, p, self.term, commit=self.commit))

    def _tally(self) -> bool | None:
        granted = sum(1 for v in self.votes.values() if v)
        if granted >= self.quorum:
            return True
        if len(self.votes) - granted >= self.quorum:
            return False
        return None

    def _in_lease(self) -> bool:
        return (
            self.cfg.check_quorum
            and not self.cfg.external_election
            and self.leader != 0
            and self.election_elapsed < self.cfg.election_ticks
        )

    def _quorum_active(self) -> bool:
        active = 1 + sum(1 for pr in self.progress.values() if pr.active)
        for pr in self.progress.values():
            pr.active = False
        return active >= self.quorum

    # -- message handlers ---------------------------------------------------------

    def _handle_vote_request(self, m: Message) -> None:
        pre = m.type == MsgType.PRE_VOTE
        resp_type = MsgType.PRE_VOTE_RESP if pre else MsgType.VOTE_RESP
        if pre:
            can_vote = m.term > self.term or self.vote in (0, m.src)
        else:
            can_vote = self.vote in (0, m.src) or self.cfg.bug == "vote_twice"
        if self.cfg.external_election:
            can_vote = False  # only ELECT rounds choose leaders in external mode
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self._send(Message(resp_type, self.id, m.src, m.term))
            if not pre:
                self.vote = m.src
                self.election_elapsed = 0
        else:
            self._send(Message(resp_type, self.id, m.src, self.term, reject=True))

    def _handle_elect(self, m: Message) -> None:
        voted_other = self.vote not in (0, m.src) and self.cfg.bug != "vote_twice"
        if self.role == Role.LEADER or voted_other:
            self._send(Message(MsgType.ELECT_RESP, self.id, m.src, self.term, reject=True))
            return
        self.vote = m.src
        self.election_elapsed = 0
        resp = Message(
            MsgType.ELECT_RESP,
            self.id,
            m.src,
            self.term,
            index=self.log.last_index,
            log_term=self.log.last_term,
        )
        if m.commit < self.log.snapshot.index:
            resp.snapshot = self.log.snapshot
            resp.entries = list(self.log.entries)
        elif m.commit < self.log.last_index:
            resp.entries = self.log.slice(m.commit + 1, self.log.last_index + 1)
        self._send(resp)

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        if t in (MsgType.APPEND, MsgType.HEARTBEAT, MsgType.SNAPSHOT):
            # Same term (higher terms were handled in step): a leader exists.
            self._become_follower(self.term, m.src)
            self._step_follower(m)
        elif t in (MsgType.PRE_VOTE_RESP, MsgType.VOTE_RESP):
            pre = t == MsgType.PRE_VOTE_RESP
            if pre != (self.role == Role.PRE_CANDIDATE):
                return
            self.votes.setdefault(m.src, not m.reject)
            result = self._tally()
            if result is True:
                if pre:
                    self._campaign_vote()
                else:
                    self._become_leader()
            elif result is False:
                self._become_follower(self.term, 0)
        elif t == MsgType.ELECT_RESP and self.cfg.external_election:
            if m.src in self.votes:
                return
            self.votes[m.src] = not m.reject
            if not m.reject:
                self.elect_logs[m.src] = m
            result = self._tally()
            if result is True:
                self._adopt_best_log()
                self._become_leader()
            elif result is False:
                self._become_follower(self.term, 0)

    def _adopt_best_log(self) -> None:
        """External election: take the most up-to-date log among the promisers."""
        best: Message | None = None
        best_key = (self.log.last_term, self.log.last_index)
        for src in sorted(self.elect_logs):
            m = self.elect_logs[src]
            if (m.log_term, m.index) > best_key:
                best, best_key = m, (m.log_term, m.index)
        if best is None:
            return
        if best.snapshot is not None and best.snapshot.index > self.log.snapshot.index:
            self.log.restore(best.snapshot)
            self.pending_snapshot = best.snapshot
            self.commit = max(self.commit, best.snapshot.index)
            self._applying_to = max(self._applying_to, best.snapshot.index)
        # The promiser sent its log after our commit index; it replaces our own
        # uncommitted tail (which is on a losing branch or shorter).
        entries = [e for e in best.entries if e.index > self.commit]
        if entries:
            self.log.truncate_and_append(entries)

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == MsgType.APPEND:
            self.election_elapsed = 0
            self.leader = m.src
            self._handle_append(m)
        elif t == MsgType.HEARTBEAT:
            self.election_elapsed = 0
            self.leader = m.src
            if m.commit > self.commit:
                self.commit = min(m.commit, self.log.last_index)
            self._send(
                Message(MsgType.HEARTBEAT_RESP, self.id, m.src, self.term, context=m.context)
            )
        elif t == MsgType.SNAPSHOT:
            self.election_elapsed = 0
            self.leader = m.src
            self._handle_snapshot(m)

    def _handle_append(self, m: Message) -> None:
        if m.index < self.commit:
            self._send(Message(MsgType.APPEND_RESP, self.id, m.src, self.term, index=self.commit))
            return
        if self.log.match_term(m.index, m.log_term):
            last_new = m.index + len(m.entries)
            if m.entries:
                # Skip entries we already hold; overwrite from the first conflict.
                start = 0
                for e in m.entries:
                    if self.log.term(e.index) != e.term:
                        break
                    start += 1
                if start < len(m.entries):
                    new = m.entries[start:]
                    if new[0].index <= self.commit:
                        raise AssertionError("leader tried to overwrite a committed entry")
                    self.log.truncate_and_append(new)
            commit = min(m.commit, last_new)
            if commit > self.commit:
                self.commit = commit
            self._send(Message(MsgType.APPEND_RESP, self.id, m.src, self.term, index=last_new))
            return
        hint = self.log.find_conflict_by_term(m.index, m.log_term)
        self._send(
            Message(
                MsgType.APPEND_RESP,
                self.id,
                m.src,
                self.term,
                index=m.index,
                reject=True,
                hint=hint,
                log_term=self.log.term(hint) or 0,
            )
        )

    def _handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        assert snap is not None
        if snap.index <= self.commit:
            self._send(Message(MsgType.APPEND_RESP, self.id, m.src, self.term, index=self.commit))
            return
        if self.log.match_term(snap.index, snap.term):
            # We already hold the snapshot's last entry: just learn the commit.
            self.commit = snap.index
        else:
            self.log.restore(snap)
            self.pending_snapshot = snap
            self.commit = snap.index
            self._applying_to = max(self._applying_to, snap.index)
        self._send(Message(MsgType.APPEND_RESP, self.id, m.src, self.term, index=self.commit))

    def _step_leader(self, m: Message) -> None:
        pr = self.progress.get(m.src)
        if pr is None:
            return
        t = m.type
        if t == MsgType.APPEND_RESP:
            pr.active = True
            if m.reject:
                # As etcd-io/raft's Progress.MaybeDecrTo.
                if not pr.probing:
                    if m.index <= pr.match:
                        return  # stale rejection
                    pr.next = pr.match + 1
                else:
                    if pr.next - 1 != m.index:
                        return  # stale rejection
                    probe = m.hint
                    if m.log_term:
                        probe = self.log.find_conflict_by_term(m.hint, m.log_term)
                    pr.next = max(min(m.index, probe + 1), pr.match + 1)
                pr.probing = True
                pr.paused = False
                pr.inflight.clear()
                self._send_append(m.src)
                return
            if m.index > pr.match:
                pr.match = m.index
                pr.next = max(pr.next, m.index + 1)
                was_probing = pr.probing
                pr.probing = False
                pr.paused = False
                while pr.inflight and pr.inflight[0] <= m.index:
                    pr.inflight.popleft()
                if self._maybe_commit():
                    self.need_bcast = True
                elif was_probing or pr.next <= self.log.last_index:
                    self._send_append(m.src)
            elif pr.probing:
                pr.paused = False
                pr.next = max(pr.match + 1, min(pr.next, m.index + 1))
                self._send_append(m.src)
        elif t == MsgType.HEARTBEAT_RESP:
            pr.active = True
            pr.paused = False
            if len(pr.inflight) >= self.cfg.max_inflight_appends:
                pr.inflight.popleft()  # appends may have been lost; make room to probe
            if m.context > pr.read_ack:
                pr.read_ack = m.context
                self._release_reads()
            if pr.match < self.log.last_index:
                self._send_append(m.src)

    # -- leader machinery ---------------------------------------------------------

    def _maybe_commit(self) -> bool:
        if self.cfg.bug == "commit_without_quorum":
            mci = self.log.persisted
        else:
            matches = sorted([self.log.persisted] + [pr.match for pr in self.progress.values()])
            mci = matches[len(matches) - self.quorum]
        if mci > self.commit and self.log.term(mci) == self.term:
            self.commit = mci
            if self.waiting_reads:
                waiting, self.waiting_reads = self.waiting_reads, []
                for rid in waiting:
                    self._start_read(rid)
            return True
        return False

    def _start_read(self, request_id: int) -> None:
        if len(self.peers) == 1:
            self.read_states.append(ReadState(self.commit, request_id))
            return
        self.read_round += 1
        self.pending_reads.append((self.read_round, request_id, self.commit))
        self._bcast_heartbeat()

    def _release_reads(self) -> None:
        while self.pending_reads:
            rnd, rid, index = self.pending_reads[0]
            acks = 1 + sum(1 for pr in self.progress.values() if pr.read_ack >= rnd)
            if acks < self.quorum:
                return
            self.pending_reads.popleft()
            self.read_states.append(ReadState(index, rid))

    def _bcast_heartbeat(self) -> None:
        ctx = self.read_round
        for p, pr in self.progress.items():
            self._send(
                Message(
                    MsgType.HEARTBEAT,
                    self.id,
                    p,
                    self.term,
                    commit=min(pr.match, self.commit),
                    context=ctx,
                )
            )

    def _send_append(self, peer: int, send_if_empty: bool = True) -> bool:
        pr = self.progress[peer]
        if pr.paused or len(pr.inflight) >= self.cfg.max_inflight_appends:
            return False
        prev = pr.next - 1
        prev_term = self.log.term(prev)
        if prev_term is None or pr.next < self.log.first_index:
            snap = self.log.snapshot
            self._send(Message(MsgType.SNAPSHOT, self.id, peer, self.term, snapshot=snap))
            pr.next = snap.index + 1
            pr.probing = True
            pr.paused = True
            return True
        hi = min(self.log.last_index + 1, pr.next + self.cfg.max_append_entries)
        entries = self.log.slice(pr.next, hi)
        if not entries and not send_if_empty and not pr.probing and self.commit <= pr.sent_commit:
            return False
        pr.sent_commit = self.commit
        self._send(
            Message(
                MsgType.APPEND,
                self.id,
                peer,
                self.term,
                index=prev,
                log_term=prev_term,
                entries=entries,
                commit=self.commit,
            )
        )
        if pr.probing:
            pr.paused = True
        elif entries:
            pr.next = entries[-1].index + 1
            pr.inflight.append(entries[-1].index)
        return True

    def _flush(self) -> None:
        """Turn coalesced work into messages: one append per follower per Ready."""
        if self.forward:
            if self.leader and self.role == Role.FOLLOWER:
                self._send(
                    Message(MsgType.PROPOSE, self.id, self.leader, self.term, entries=self.forward)
                )
            self.forward = []
        if self.need_bcast and self.role == Role.LEADER:
            for p in self.others:
                # Keep sending while the window allows, so big backlogs drain quickly.
                while (
                    self._send_append(p, send_if_empty=False)
                    and self.progress[p].next <= self.log.last_index
                ):
                    if self.progress[p].probing:
                        break
        self.need_bcast = False

    def _send(self, m: Message) -> None:
        self.msgs.append(m)
