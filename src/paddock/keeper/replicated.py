"""Glue between the data tree and the consensus log.

:class:`KeeperStateMachine` is the ``ConsensusServer`` state machine: each
NORMAL log entry is an *envelope* (origin server id, request sequence number,
proposer's wall-clock time) around either an encoded keeper transaction or a
session "touch" list. Applying a transaction runs ``DataTree.apply`` with
zxid = term << 32 | (index & 0xffffffff) of the entry, then tells the
listener (the keeper server), which answers its own clients' requests — the
origin tag says whether the request arrived at this server — and delivers
watch events to its sessions.

:class:`Proposer` is how a server gets its writes into the log: on the leader
they are appended in batches (one ``submit_many`` per event-loop turn, one
fsync for all of them); on a follower they are forwarded to the leader inside
Raft. Either way the answer comes from the apply path, in log order, so a
session's writes are answered in the order they were sent.

Why the origin tag instead of the proposal future: forwarded proposals have
no future (the leader appends them), and answering from the apply path is the
same code on leader and follower.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from paddock.consensus.types import Entry, NotLeader, Role
from paddock.keeper.datatree import DataTree, TxnResult
from paddock.keeper.session import SessionInfo, SessionTracker
from paddock.keeper.txn import CloseSession, CreateSession, Txn, TxnDecodeError, decode_txn

if TYPE_CHECKING:
    from paddock.consensus.server import ConsensusServer

log = logging.getLogger(__name__)

#: kind u8, origin server u32, request seq u64, time_ms i64
ENVELOPE = struct.Struct(">BIQq")
KIND_TXN = 0
KIND_TOUCH = 1
_SID = struct.Struct(">q")
_COUNT = struct.Struct(">I")


def encode_envelope(kind: int, origin: int, seq: int, time_ms: int, payload: bytes) -> bytes:
    return ENVELOPE.pack(kind, origin, seq, time_ms) + payload


def encode_touch(origin: int, time_ms: int, session_ids: list[int]) -> bytes:
    body = _COUNT.pack(len(session_ids)) + b"".join(_SID.pack(s) for s in session_ids)
    return encode_envelope(KIND_TOUCH, origin, 0, time_ms, body)


def decode_touch(payload: bytes) -> list[int]:
    (n,) = _COUNT.unpack_from(payload, 0)
    if 4 + 8 * n != len(payload):
        raise ValueError("malformed touch entry")
    return [_SID.unpack_from(payload, 4 + 8 * i)[0] for i in range(n)]


def zxid_of(entry: Entry) -> int:
    return (entry.term << 32) | (entry.index & 0xFFFFFFFF)


class ApplyListener(Protocol):
    def on_applied(self, origin: int, seq: int, txn: Txn, result: TxnResult) -> None: ...

    def on_restored(self) -> None: ...


class KeeperStateMachine:
    """The replicated state: data tree + session table (mirrored for liveness)."""

    def __init__(self, clock_ms: Callable[[], int]) -> None:
        self.tree = DataTree()
        self.sessions = SessionTracker()
        self.listener: ApplyListener | None = None
        self._clock_ms = clock_ms
        self.applied_txns = 0
        #: log index of the entry being (or last) applied
        self.last_index = 0

    @property
    def last_zxid(self) -> int:
        return self.tree.last_zxid

    def apply(self, entry: Entry) -> Any:
        data = entry.data
        self.last_index = entry.index
        if len(data) < ENVELOPE.size:
            log.error("entry %d: too short for an envelope; skipped", entry.index)
            return None
        kind, origin, seq, time_ms = ENVELOPE.unpack_from(data, 0)
        payload = data[ENVELOPE.size :]
        if kind == KIND_TOUCH:
            try:
                sids = decode_touch(payload)
            except (ValueError, struct.error):
                log.error("entry %d: malformed touch list; skipped", entry.index)
                return None
            now = self._clock_ms()
            for sid in sids:
                self.sessions.touch(sid, now, local=False)
            return None
        if kind != KIND_TXN:
            log.error("entry %d: unknown envelope kind %d; skipped", entry.index, kind)
            return None
        try:
            txn = decode_txn(payload)
        except TxnDecodeError as exc:
            log.error("entry %d: undecodable transaction (%s); skipped", entry.index, exc)
            return None
        zxid = zxid_of(entry)
        result = self.tree.apply(txn, zxid, time_ms)
        self.applied_txns += 1
        op = txn.op
        if isinstance(op, CreateSession):
            if result.err == 0:
                self.sessions.add(
                    SessionInfo(op.session_id, op.timeout_ms, op.password), self._clock_ms()
                )
        elif isinstance(op, CloseSession):
            self.sessions.remove(op.session_id)
        if self.listener is not None:
            self.listener.on_applied(origin, seq, txn, result)
        return None

    def snapshot(self) -> bytes:
        return self.tree.serialize()

    def restore(self, data: bytes) -> None:
        self.tree = DataTree.deserialize(data)
        now = self._clock_ms()
        self.sessions = SessionTracker()
        for sid, session in self.tree.sessions.items():
            self.sessions.add(SessionInfo(sid, session.timeout_ms, session.password), now)
        if self.listener is not None:
            self.listener.on_restored()


@dataclass(slots=True)
class Pending:
    """A proposal of this server waiting for its entry to be applied."""

    seq: int
    data: bytes
    submitted: float  # monotonic seconds
    term: int
    on_done: Callable[[TxnResult | None], None]
    sent: bool = False
    created: float = 0.0


class Proposer:
    """Gets this server's transactions into the log and matches them to answers.

    ``submit(txn_bytes, on_done)`` queues a transaction; ``on_done(result)`` is
    called from the apply path when its entry is applied here, or with
    ``None`` when its fate became unknown (leader lost, forward timed out):
    the caller then drops the client connection, which is ZooKeeper's
    ConnectionLoss, leaving the client to check.
    """

    def __init__(self, server_id: int, cons: ConsensusServer, *, forward_timeout: float) -> None:
        self.id = server_id
        self.cons = cons
        self.forward_timeout = forward_timeout
        # Sequence numbers must not repeat across restarts: entries proposed before
        # a restart may still be applied after it, and must not match new requests.
        self._seq = time.time_ns() // 1000
        self._pending: dict[int, Pending] = {}
        self._outbox: deque[Pending] = deque()
        self._flush_scheduled = False
        self.proposed = 0
        #: submit-to-apply latency of this server's proposals (seconds)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.latency_max = 0.0
        self.latency_min = 0.0

    def __len__(self) -> int:
        return len(self._pending)

    def submit(self, payload: bytes, on_done: Callable[[TxnResult | None], None]) -> int:
        self._seq += 1
        seq = self._seq
        data = encode_envelope(KIND_TXN, self.id, seq, int(time.time() * 1000), payload)
        now = time.monotonic()
        p = Pending(seq, data, now, 0, on_done, created=now)
        self._pending[seq] = p
        self._outbox.append(p)
        self._schedule()
        return seq

    def submit_touch(self, session_ids: list[int]) -> None:
        """Fire-and-forget liveness report to the leader (lost ones don't matter)."""
        data = encode_touch(self.id, int(time.time() * 1000), session_ids)
        node = self.cons.node
        if node is None:
            return
        try:
            if node.role == Role.LEADER:
                self.cons.submit_many([data])
            else:
                node.propose(data)
                self._wake()
        except Exception:  # NotLeader, or the node stopped: a lost touch is harmless
            pass

    def _schedule(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def _wake(self) -> None:
        # RaftNode.propose on a follower queues the entry for the leader; the
        # ready loop must then run to send it.
        self.cons.wake()

    def flush(self) -> None:
        """Send everything queued: one batch on the leader, forwards on a follower.
        Without a known leader the queue waits (``tick`` retries)."""
        self._flush_scheduled = False
        if not self._outbox:
            return
        node = self.cons.node
        if node is None:
            return
        batch = list(self._outbox)
        if node.role == Role.LEADER:
            self._outbox.clear()
            try:
                fut = self.cons.submit_many([p.data for p in batch])
            except NotLeader:
                self._outbox.extendleft(reversed(batch))
                return
            except Exception:
                log.exception("cannot propose; failing %d requests", len(batch))
                for p in batch:
                    self._fail(p)
                return
            term = node.term
            for p in batch:
                p.term = term
                p.sent = True
            self.proposed += len(batch)
            fut.add_done_callback(functools.partial(self._settle, batch=batch))
        elif node.role == Role.FOLLOWER and node.leader:
            self._outbox.clear()
            term = node.term
            for p in batch:
                try:
                    node.propose(p.data)
                except NotLeader:
                    self._outbox.append(p)
                    continue
                p.term = term
                p.sent = True
                p.submitted = time.monotonic()
                self.proposed += 1
            self._wake()

    def _settle(self, fut: asyncio.Future[list[Any]], *, batch: list[Pending]) -> None:
        """Leader batches: a NotLeader/OutcomeUnknown item will never be applied
        here with our tag in this term; fail it."""
        if fut.cancelled():
            results: list[Any] = [NotLeader(0)] * len(batch)
        elif fut.exception() is not None:
            results = [fut.exception()] * len(batch)
        else:
            results = fut.result()
        for p, r in zip(batch, results, strict=False):
            if isinstance(r, BaseException) and p.seq in self._pending:
                # An OutcomeUnknown entry may still commit under the next leader and
                # be applied here; whoever comes first settles it.
                self._fail(p)

    def _fail(self, p: Pending) -> None:
        if self._pending.pop(p.seq, None) is not None:
            try:
                p.on_done(None)
            except Exception:
                log.exception("failing request %d", p.seq)

    def applied(self, origin: int, seq: int, result: TxnResult) -> None:
        if origin != self.id:
            return
        p = self._pending.pop(seq, None)
        if p is not None:
            lat = time.monotonic() - p.created
            self.latency_sum += lat
            self.latency_count += 1
            if lat > self.latency_max:
                self.latency_max = lat
            if lat < self.latency_min or self.latency_count == 1:
                self.latency_min = lat
            p.on_done(result)

    def tick(self) -> None:
        """Retry queued work; fail forwards that will not come back."""
        if self._outbox:
            self.flush()
        if not self._pending:
            return
        node = self.cons.node
        term = node.term if node is not None else 0
        now = time.monotonic()
        stale = [
            p
            for p in self._pending.values()
            if p.sent
            and (
                now - p.submitted > self.forward_timeout * 4
                or (p.term < term and now - p.submitted > self.forward_timeout)
            )
        ]
        for p in stale:
            log.info("request %d: no outcome after leader change/timeout; dropping client", p.seq)
            self._fail(p)

    def fail_all(self) -> None:
        for p in list(self._pending.values()):
            self._fail(p)
        self._outbox.clear()
