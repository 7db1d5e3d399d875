"""One simulated machine of the consensus simulation.

Why a separate record: a machine outlives its RaftNode. Crashes replace the
node (and bump ``inc`` so the old incarnation's pending events are ignored);
the disk, what it holds durably, and the bookkeeping the invariants need stay.
"""

from __future__ import annotations

from paddock.consensus import wal
from paddock.consensus.raft import RaftNode
from paddock.sim.disk import SimDisk
from paddock.sim.kv import KVStateMachine


class Host:
    """One simulated machine: a RaftNode (when up), its disk and state machine."""

    __slots__ = (
        "bounce_armed",
        "compact_every",
        "crash_armed",
        "disk",
        "durable",
        "id",
        "inc",
        "last_commit",
        "node",
        "paused_until",
        "read_points",
        "restarts",
        "sm",
        "synced_commit",
        "tick",
        "write_done_at",
        "writing",
    )

    def __init__(self, node_id: int) -> None:
        self.id = node_id
        self.node: RaftNode | None = None
        self.inc = 0  # incarnation: events of a crashed incarnation are ignored
        self.disk = SimDisk()
        self.durable = wal.LogState()  # what the disk holds for sure
        self.sm = KVStateMachine()
        self.writing = False
        self.crash_armed = False  # crash in the middle of the next disk write
        #: crash right after the next write is durable and its messages are out,
        #: then restart at once (a supervisor restarting the process)
        self.bounce_armed = False
        self.write_done_at = 0.0
        self.last_commit = 0
        self.synced_commit = 0
        self.read_points: list[tuple[int, int]] = []
        self.restarts = 0
        self.compact_every = 50
        self.tick = 0.01  # this machine's tick interval (clocks drift)
        #: A process pause (GC, VM freeze): nothing runs on the host until then.
        self.paused_until = 0.0

    def has_durably(self, index: int, term: int) -> bool:
        d = self.durable
        snap = d.snapshot
        base = snap.index if snap is not None else 0
        if index <= base:
            return True  # covered by a durable snapshot (its contents are checked on apply)
        pos = index - base - 1
        return pos < len(d.entries) and d.entries[pos].term == term
