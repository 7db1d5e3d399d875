"""Value types of the consensus core: entries, messages, persistent state, Ready.

Everything here is plain data. The node (``raft.py``) consumes ``Message`` and
produces ``Ready``; the shells (storage, transport, simulator) move these values
to disk and across the network. Nothing in this module performs I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class EntryKind(IntEnum):
    NORMAL = 0
    #: Appended by a new leader at the start of its term (Raft §8: a leader only
    #: counts replicas for entries of its own term, so it commits a no-op first).
    NOOP = 1


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    data: bytes = b""
    kind: EntryKind = EntryKind.NORMAL


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it is sent."""

    term: int = 0
    vote: int = 0  # 0 = no vote in this term; node ids are >= 1
    commit: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """State machine image covering every entry up to and including ``index``."""

    index: int = 0
    term: int = 0
    members: tuple[int, ...] = ()
    data: bytes = b""


class MsgType(IntEnum):
    # Leader election (internal mode: Raft with pre-vote).
    PRE_VOTE = 1
    PRE_VOTE_RESP = 2
    VOTE = 3
    VOTE_RESP = 4
    # Log replication.
    APPEND = 5
    APPEND_RESP = 6
    HEARTBEAT = 7
    HEARTBEAT_RESP = 8
    SNAPSHOT = 9
    # External election: the named node collects promises plus log tails.
    ELECT = 10
    ELECT_RESP = 11
    # A follower forwards a client proposal to the leader.
    PROPOSE = 12
    # Leadership transfer: tells the target to campaign now.
    TIMEOUT_NOW = 13


@dataclass(slots=True)
class Message:
    """One message between nodes. Unused fields keep their defaults.

    Field use by type:
      VOTE/PRE_VOTE:      term, index (last log index), log_term (last log term)
      *_RESP:             term, reject
      APPEND:             term, index/log_term (of the entry before ``entries``),
                          entries, commit
      APPEND_RESP:        term, index (last index matched, or rejected index),
                          reject, hint (follower's last index on reject)
      HEARTBEAT:          term, commit, context (read-index round id)
      HEARTBEAT_RESP:     term, context
      SNAPSHOT:           term, snapshot
      ELECT:              term, commit (candidate's commit index)
      ELECT_RESP:         term, reject, entries (voter's log after the candidate's
                          commit), index/log_term (voter's last index/term),
                          snapshot (when the voter has compacted past that commit)
      PROPOSE:            entries (data only; term/index are ignored)
    """

    type: MsgType
    src: int
    dst: int
    term: int = 0
    index: int = 0
    log_term: int = 0
    commit: int = 0
    reject: bool = False
    hint: int = 0
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    context: int = 0


class Role(IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth reporting; not persisted."""

    leader: int = 0  # 0 = unknown
    role: Role = Role.FOLLOWER


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read-index answer: once ``index`` is applied, reads for ``request_id`` are
    linearizable (the leader confirmed its leadership after the request arrived)."""

    index: int
    request_id: int


@dataclass(slots=True)
class Ready:
    """One batch of work for the shell, handled in this order:

    1. persist ``snapshot`` (if any), then ``entries`` (which replace any stored
       entries from ``entries[0].index`` onward), then ``hard_state`` (if any),
       with one fsync for all of it when ``must_sync`` is true;
    2. send ``messages`` (only after step 1 is durable; a leader may send its
       APPEND/HEARTBEAT/SNAPSHOT messages of an already-durable term before its
       own write, Raft thesis §10.2.1, because the node counts the leader towards
       a commit quorum only after ``advance`` reports its entries durable);
    3. apply ``snapshot`` then ``committed`` to the state machine, deliver
       ``read_states`` and settle ``dropped`` proposals;
    4. call ``node.advance(ready)``.
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    messages: list[Message] = field(default_factory=list)
    committed: list[Entry] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    #: Read-index request ids (given to ``read_index``) this node abandoned
    #: because it stopped being leader: the caller must retry elsewhere.
    dropped_reads: list[int] = field(default_factory=list)

    @property
    def must_sync(self) -> bool:
        return bool(self.entries) or self.hard_state is not None or self.snapshot is not None

    def is_empty(self) -> bool:
        return not (
            self.soft_state
            or self.hard_state
            or self.entries
            or self.snapshot
            or self.messages
            or self.committed
            or self.read_states
            or self.dropped_reads
        )


class NotLeader(Exception):
    """Raised by ``propose``/``read_index`` on a node that is not the leader.

    ``leader`` is the id of the leader this node knows of (0 = unknown).
    """

    def __init__(self, leader: int = 0) -> None:
        super().__init__(f"not leader (leader is {leader or 'unknown'})")
        self.leader = leader
