"""``ConsensusServer``: the asyncio shell that runs one ``RaftNode`` for real.

It owns the clock (a ticker task), the disk (``DiskStorage``), the network
(``PeerTransport``) and the application's state machine, and drives the node's
Ready/Advance cycle:

    persist (one fsync, in a worker thread) -> send -> apply -> settle -> advance

(applying, snapshots and settling proposals with their results are the
:class:`~paddock.consensus.applier.Applier`'s part).

Group commit falls out of that shape: while one Ready is being fsynced the
event loop keeps stepping peer messages and accepting proposals into the
node's log, so the next Ready carries everything that arrived meanwhile and
one fsync covers the whole batch.

With ``overlap_persist`` (default on) two steps overlap the fsync, as in
etcd's server: a leader's appends/heartbeats go out before its own write
(Raft thesis §10.2.1: the core counts the leader towards a quorum only once
``advance`` reports the write durable), and committed entries, already durable
on a quorum, are applied while the write runs. Everything a follower or voter
sends still waits for its fsync. This takes up to two fsync durations off the
commit latency (the leader's and the follower's writes run concurrently; applying
no longer waits for the next batch's write).

Proposal outcomes. The leader appends a proposal at (index, term) and waits for
that index to be applied:

* applied with the same term: the entry committed; the caller gets the state
  machine's ``apply`` result;
* an entry with a different term commits at that index: ours was overwritten
  and is certainly NOT committed -> ``NotLeader``;
* this node stops being leader first: the entry may still be committed by the
  next leader, or not -> ``OutcomeUnknown`` (a ``NotLeader``); the caller must
  read to find out (or make the command idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paddock.consensus.applier import Applier, StateMachine
from paddock.consensus.proposals import OutcomeUnknown, ServerStopped, Waiters
from paddock.consensus.raft import Config, RaftNode
from paddock.consensus.storage import DiskStorage
from paddock.consensus.transport import DEFAULT_MAX_FRAME, PeerTransport
from paddock.consensus.types import Message, MsgType, NotLeader, Ready, Role

__all__ = [
    "ConsensusServer",
    "NotLeader",
    "OutcomeUnknown",
    "ServerStats",
    "ServerStopped",
    "StateMachine",
    "parse_peers",
    "wait_for",
]

log = logging.getLogger(__name__)

#: What a leader may send before its own fsync completes (see
#: ``ConsensusServer._may_send_before_persist``).
_EARLY_TYPES = frozenset({MsgType.APPEND, MsgType.HEARTBEAT, MsgType.SNAPSHOT})

DEFAULT_TICK_INTERVAL = 0.05  # 50 ms; x election_ticks (10..20) = 0.5-1 s election timeout


@dataclass
class ServerStats:
    fsyncs: int = 0
    fsync_seconds: float = 0.0
    readies: int = 0
    entries_persisted: int = 0
    entries_applied: int = 0
    snapshots_taken: int = 0
    snapshots_restored: int = 0
    #: Time inside ``DiskStorage.save_ready`` (encode + write + fsync), measured
    #: in the worker thread; ``fsync_seconds`` adds the hand-off to/from it.
    write_seconds: float = 0.0
    #: Readies whose messages (leader appends) went out before their fsync.
    early_sends: int = 0


class ConsensusServer:
    """One consensus node: storage + transport + ticker around a ``RaftNode``."""

    def __init__(
        self,
        node_id: int,
        peers: dict[int, tuple[str, int]],
        data_dir: str | Path,
        state_machine: StateMachine,
        *,
        tick_interval: float = DEFAULT_TICK_INTERVAL,
        election_ticks: int = 10,
        heartbeat_ticks: int = 1,
        external_election: bool = False,
        snapshot_every: int = 50_000,
        cluster_id: str = "paddock",
        seed: int | None = None,
        max_append_entries: int = 1024,
        overlap_persist: bool = True,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        if node_id not in peers:
            raise ValueError(f"node {node_id} is not among peers {sorted(peers)}")
        self.id = node_id
        self.peers = dict(peers)
        self.data_dir = Path(data_dir)
        self.sm = state_machine
        self.tick_interval = tick_interval
        self.snapshot_every = snapshot_every
        self.config = Config(
            id=node_id,
            peers=tuple(sorted(peers)),
            election_ticks=election_ticks,
            heartbeat_ticks=heartbeat_ticks,
            external_election=external_election,
            max_append_entries=max_append_entries,
        )
        self.cluster_id = cluster_id
        self.overlap_persist = overlap_persist
        #: Largest peer message (a snapshot travels in one): raise it for big state.
        self.max_frame = max_frame
        # (term, vote) known durable; gates sending a leader's appends early.
        self._durable_term_vote = (0, 0)
        self._rng = random.Random(node_id if seed is None else seed)
        self.stats = ServerStats()
        self.node: RaftNode | None = None
        self.storage: DiskStorage | None = None
        self.transport: PeerTransport | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self._stopped = False
        #: Why the node stopped working (a storage error), or None. Once set the
        #: server refuses proposals; its owner should stop it and exit non-zero.
        self.failed: str | None = None
        self.failed_event = asyncio.Event()
        #: Called (on the loop) after a Ready that changed this node's role or known
        #: leader, so an owner can react without polling ``node.role``.
        self.on_role_change: Callable[[], None] | None = None
        self._waiters = Waiters()
        self._applier = Applier(node_id, state_machine, self._waiters, self.stats)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open storage, recover the state machine, start networking and ticking."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        storage = await asyncio.to_thread(DiskStorage.open, self.data_dir)
        self.storage = storage
        try:
            await self._start_on(storage)
        except BaseException:
            # Release the directory lock so a retry (or another process) can open it.
            self.storage = None
            if self.transport is not None:
                await self.transport.close()
            await asyncio.to_thread(storage.close)
            raise

    async def _start_on(self, storage: DiskStorage) -> None:
        hard_state, snapshot, entries = storage.initial_state()
        self._durable_term_vote = (hard_state.term, hard_state.vote)
        if snapshot is not None and snapshot.index > 0:
            self._applier.load(snapshot)
        self.node = RaftNode(
            self.config,
            self._rng,
            hard_state=hard_state,
            snapshot=snapshot,
            entries=entries,
            applied=self.applied,
        )
        self.transport = PeerTransport(
            self.id,
            self.peers[self.id],
            self.peers,
            self._on_message,
            cluster_id=self.cluster_id,
            max_frame=self.max_frame,
            rng=random.Random(self._rng.random()),
        )
        await self.transport.start()
        self._running = True
        self._tasks = [
            asyncio.create_task(self._ready_loop(), name=f"raft-ready-{self.id}"),
            asyncio.create_task(self._ticker(), name=f"raft-tick-{self.id}"),
        ]
        self._wake.set()
        log.info(
            "node %d started: term %d, commit %d, applied %d, last index %d",
            self.id,
            self.node.term,
            self.node.commit,
            self.applied,
            self.node.last_index,
        )

    async def stop(self) -> None:
        """Stop ticking and networking, finish the Ready in progress, close storage.

        Pending proposals fail with ``OutcomeUnknown`` (they may still commit
        elsewhere), pending reads with ``NotLeader``.
        """
        if self._stopped:
            return
        self._stopped = True
        self._running = False
        self._wake.set()
        ready_task = self._tasks[0] if self._tasks else None
        for t in self._tasks[1:]:
            t.cancel()
        if ready_task is not None:
            # Let an in-flight fsync finish: the storage must not close under it.
            try:
                await asyncio.wait_for(asyncio.shield(ready_task), 10.0)
            except (TimeoutError, Exception):
                ready_task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.transport is not None:
            await self.transport.close()
        self._fail_pending(OutcomeUnknown(0), NotLeader(0))
        self._waiters.fail_applied(ServerStopped("server stopped"))
        if self.storage is not None:
            await asyncio.to_thread(self.storage.close)

    async def __aenter__(self) -> ConsensusServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ client API
    @property
    def applied(self) -> int:
        """The last log index the state machine has applied."""
        return self._applier.applied

    @property
    def applied_term(self) -> int:
        """The term of the entry (or snapshot) at ``applied``."""
        return self._applier.applied_term

    @property
    def is_leader(self) -> bool:
        return self.node is not None and self.node.role == Role.LEADER

    @property
    def leader(self) -> int:
        return self.node.leader if self.node is not None else 0

    def submit_many(self, datas: Sequence[bytes]) -> asyncio.Future[list[Any]]:
        """Append ``datas`` now (leader only, else ``NotLeader``) and return a future
        of per-item outcomes: the ``apply`` result, or a ``NotLeader`` /
        ``OutcomeUnknown`` instance for an item that failed, or the exception
        ``apply`` raised (returned, not raised: other items may have succeeded)."""
        node = self._require_node()
        if node.role != Role.LEADER:
            raise NotLeader(node.leader)
        if not datas:
            fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
            fut.set_result([])
            return fut
        first, term = node.propose_many(list(datas))
        fut = self._waiters.add_batch(first, term, len(datas), node.leader)
        self._wake.set()
        return fut

    def forward(self, datas: Sequence[bytes]) -> None:
        """Fire-and-forget: append ``datas`` here if leader, else send them to the
        known leader (``NotLeader`` if none). No outcome is tracked; an
        application that needs one tags its commands and watches ``apply``."""
        node = self._require_node()
        if node.role == Role.LEADER:
            if datas:
                node.propose_many(list(datas))
        else:
            for data in datas:
                node.propose(data)  # forwards to the leader, or raises NotLeader
        self._wake.set()

    def wake(self) -> None:
        """Make the ready loop look at the node (after calling it directly)."""
        self._wake.set()

    async def propose_many(self, datas: Sequence[bytes]) -> list[Any]:
        """Replicate a batch; see ``submit_many`` for the per-item outcomes."""
        return await self.submit_many(datas)

    async def propose(self, data: bytes) -> Any:
        """Replicate ``data``; return the state machine's result for it.

        Raises ``NotLeader(leader)`` if this node is not the leader or the entry
        was overwritten, ``OutcomeUnknown`` if leadership was lost meanwhile, and
        whatever the state machine's ``apply`` raised for this (committed) entry.
        """
        (result,) = await self.submit_many([data])
        if isinstance(result, Exception):
            raise result
        return result

    async def read_index(self) -> int:
        """Linearizable read barrier: returns once this node's state machine
        reflects every write committed before the call (leader only)."""
        node = self._require_node()
        if node.role != Role.LEADER:
            raise NotLeader(node.leader)
        rid, fut = self._waiters.new_read()
        try:
            node.read_index(rid)
        except NotLeader:
            self._waiters.forget_read(rid)
            raise
        self._wake.set()
        index = await fut
        await self.wait_applied(index)
        return index

    async def wait_applied(self, index: int) -> None:
        """Wait until the state machine has applied ``index``."""
        if self.applied >= index:
            return
        if self._stopped:
            raise ServerStopped("server stopped")
        await self._waiters.wait_applied(index)

    @property
    def peer_address(self) -> tuple[str, int]:
        """Where this node listens for peers (the real port if configured as 0)."""
        if self.transport is not None:
            return self.transport.listen_addr
        return self.peers[self.id]

    def set_peer_address(self, peer: int, addr: tuple[str, int]) -> None:
        """Point the link to ``peer`` at ``addr`` (e.g. after it restarted on a new
        port); the link reconnects on its next attempt."""
        self.peers[peer] = addr
        if self.transport is not None and peer != self.id:
            self.transport.set_peer_address(peer, addr)

    def campaign(self) -> None:
        """Start an election now (internal mode) or take over because the outside
        authority named this node (external mode)."""
        self._require_node().campaign()
        self._wake.set()

    def status(self) -> dict[str, Any]:
        node = self.node
        if node is None:
            raise ServerStopped("server not started")
        st: dict[str, Any] = dict(node.status())
        st["failed"] = self.failed
        st["stopped"] = self._stopped
        st["applied"] = self.applied
        st["fsyncs"] = self.stats.fsyncs
        st["entries_persisted"] = self.stats.entries_persisted
        st["entries_applied"] = self.stats.entries_applied
        st["snapshots_taken"] = self.stats.snapshots_taken
        st["snapshots_restored"] = self.stats.snapshots_restored
        st["early_sends"] = self.stats.early_sends
        st["fsync_seconds"] = round(self.stats.fsync_seconds, 6)
        st["write_seconds"] = round(self.stats.write_seconds, 6)
        st["readies"] = self.stats.readies
        if self.transport is not None:
            st["peers"] = {
                pid: {
                    "connected": s.connected,
                    "queued": s.queued_msgs,
                    "sent": s.sent_msgs,
                    "dropped": s.dropped,
                }
                for pid, s in self.transport.stats().items()
            }
        return st

    # ------------------------------------------------------------------ internals
    def _require_node(self) -> RaftNode:
        if self.node is None or self._stopped or self.failed:
            raise ServerStopped(
                f"server is not running{f' ({self.failed})' if self.failed else ''}"
            )
        return self.node

    def _on_message(self, msg: Message) -> None:
        if not self._running or self.node is None:
            return
        self.node.step(msg)
        self._wake.set()

    async def _ticker(self) -> None:
        assert self.node is not None
        node = self.node
        interval = self.tick_interval
        while self._running:
            await asyncio.sleep(interval)
            try:
                node.tick()
            except Exception as exc:
                # A core bug. Without ticks a leader never heartbeats and a
                # follower never campaigns: stop visibly rather than linger.
                self._fatal("ticking the node", exc)
                return
            self._wake.set()

    async def _ready_loop(self) -> None:
        assert self.node is not None and self.storage is not None
        node = self.node
        wake = self._wake
        while self._running:
            await wake.wait()
            wake.clear()
            try:
                while self._running and node.has_ready():
                    await self._handle_ready(node, node.ready())
                if self._running and self._applier.snapshot_due(self.snapshot_every):
                    await self._applier.take_snapshot(node, self.storage, self.config.peers)
            except Exception as exc:
                # Storage failures are fatal for this node: continuing could
                # acknowledge data that is not durable. And this loop must not
                # just end: the node would keep receiving but never persist,
                # send or apply again, and nobody would know.
                self._fatal("handling Ready", exc)
                return

    def _fatal(self, what: str, exc: Exception) -> None:
        log.error("node %d: fatal error %s; stopping", self.id, what, exc_info=exc)
        self._running = False
        self.failed = f"{type(exc).__name__}: {exc}"
        self.failed_event.set()
        self._fail_pending(OutcomeUnknown(0), NotLeader(0))

    async def _handle_ready(self, node: RaftNode, rd: Ready) -> None:
        assert self.storage is not None and self.transport is not None
        stats = self.stats
        stats.readies += 1
        early = self._may_send_before_persist(node, rd)
        if early:
            self.transport.send_many(rd.messages)
            stats.early_sends += 1
        # Committed entries are durable on a quorum already, so (as etcd's server
        # does) they can be applied while this Ready's own write is in flight.
        apply_now = self.overlap_persist and rd.snapshot is None
        if rd.must_sync:
            t0 = time.perf_counter()
            # run_in_executor starts the write at once (to_thread would wait
            # for the next loop iteration), so the apply below overlaps it.
            persisted = asyncio.get_running_loop().run_in_executor(None, self._save_ready, rd)
            if apply_now and rd.committed:
                self._applier.apply(rd.committed, node.leader)
            try:
                await persisted
            finally:
                stats.fsync_seconds += time.perf_counter() - t0
            stats.fsyncs += 1
            stats.entries_persisted += len(rd.entries)
        elif apply_now and rd.committed:
            self._applier.apply(rd.committed, node.leader)
        if rd.hard_state is not None:
            self._durable_term_vote = (rd.hard_state.term, rd.hard_state.vote)
        if rd.messages and not early:
            self.transport.send_many(rd.messages)
        if rd.snapshot is not None and rd.snapshot.index > self.applied:
            self._applier.install(rd.snapshot, node.leader)
        if rd.committed and not apply_now:
            self._applier.apply(rd.committed, node.leader)
        for rs in rd.read_states:
            self._waiters.answer_read(rs.request_id, rs.index)
        for rid in rd.dropped_reads:
            self._waiters.drop_read(rid, NotLeader(node.leader))
        if rd.soft_state is not None and rd.soft_state.role != Role.LEADER:
            self._fail_pending(
                OutcomeUnknown(rd.soft_state.leader), NotLeader(rd.soft_state.leader)
            )
        self._waiters.wake_applied(self.applied)
        node.advance(rd)
        if rd.soft_state is not None and self.on_role_change is not None:
            # Scheduled, not called: the owner's errors must not look like storage ones.
            asyncio.get_running_loop().call_soon(self.on_role_change)

    def _save_ready(self, rd: Ready) -> None:
        """Worker-thread side of a Ready's persist; times the storage call alone
        (``write_seconds``) apart from the thread hand-off (``fsync_seconds``)."""
        assert self.storage is not None
        t0 = time.perf_counter()
        self.storage.save_ready(rd)
        self.stats.write_seconds += time.perf_counter() - t0

    def _may_send_before_persist(self, node: RaftNode, rd: Ready) -> bool:
        """Raft thesis §10.2.1: a leader may replicate entries while it writes
        them to its own disk, because it counts itself towards a commit quorum
        only after the write (``RaftLog.persisted``, set by ``advance``). This
        halves the serial fsyncs on the commit path (leader's then follower's
        become concurrent). Only done when every message is a leader-to-follower
        replication message of the term already durable here: nothing a voter
        or follower says may leave before its state is on disk."""
        if not (self.overlap_persist and rd.messages and node.role == Role.LEADER):
            return False
        term, vote = self._durable_term_vote
        hs = rd.hard_state
        if hs is not None and (hs.term, hs.vote) != (term, vote):
            return False
        early_types = _EARLY_TYPES
        return all(m.term == term and m.type in early_types for m in rd.messages)

    def _fail_pending(self, unknown: OutcomeUnknown, not_leader: NotLeader) -> None:
        self._waiters.fail_batches(unknown)
        self._waiters.fail_reads(not_leader)


def parse_peers(spec: str) -> dict[int, tuple[str, int]]:
    """``"1=127.0.0.1:7001,2=127.0.0.1:7002"`` -> ``{1: ("127.0.0.1", 7001), ...}``."""
    peers: dict[int, tuple[str, int]] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            ident, addr = part.split("=", 1)
            host, port = addr.rsplit(":", 1)
            nid = int(ident)
            peers[nid] = (host, int(port))
        except ValueError as exc:
            raise ValueError(f"bad peer {part!r}: want ID=HOST:PORT") from exc
        if nid < 1:
            raise ValueError(f"bad peer {part!r}: ids start at 1")
    if not peers:
        raise ValueError("no peers given")
    return peers


async def wait_for(cond: Callable[[], bool], timeout: float, interval: float = 0.01) -> None:
    """Poll ``cond`` until true (bounded); for tests, demos and tools."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached in time")
        await asyncio.sleep(interval)
