"""Simulated clients: processes issuing KV operations and recording a history.

Why: safety of the log is necessary but not what users see. Clients talk to
whichever node they believe leads, exactly as a real client library would, and
write down a Jepsen-style history (invoke, then ok/fail/info) that the
linearizability checker judges afterwards.

Outcome rules (each must be sound, or the checker would blame Raft for the
client's mistake):

* write/CAS: ``ok`` once the contacted node applies the entry carrying the
  request id (a CAS whose compare failed is ``fail``: it changed nothing);
  ``fail`` when ``propose`` raised NotLeader (nothing was appended) or when the
  node applies a different entry at the index the leader gave us; ``info`` on
  timeout or when the contacted node crashes.
* read: ``read_index`` -> ReadState -> answer once the node applied that index;
  ``fail`` on NotLeader or when the node drops the read; ``info`` otherwise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from paddock.consensus.types import NotLeader, Role
from paddock.sim.kv import Command, encode_command
from paddock.sim.linearizability import FAIL, INFO, INVOKE, OK, HistoryEvent

if TYPE_CHECKING:
    from paddock.sim.cluster import Cluster, Host


@dataclass(slots=True)
class PendingOp:
    f: str
    key: str
    value: object
    request_id: int
    host: int
    #: Leader proposals: where the leader appended it (0 = forwarded / unknown).
    index: int = 0
    term: int = 0


class Client:
    __slots__ = ("cid", "guess", "last_seen", "op", "process")

    def __init__(self, cid: int, guess: int) -> None:
        self.cid = cid
        self.process = cid
        self.guess = guess
        self.op: PendingOp | None = None
        self.last_seen: dict[str, int | None] = {}


class ClientPool:
    def __init__(
        self, cluster: Cluster, rng: random.Random, n_clients: int, keys: list[str]
    ) -> None:
        self.cluster = cluster
        self.rng = rng
        self.keys = keys
        self.n = n_clients
        ids = cluster.node_ids
        self.clients = [Client(i, rng.choice(ids)) for i in range(n_clients)]
        self.history: list[HistoryEvent] = []
        self.timeout = 0.4
        self.stopped = False
        # request id -> client, for operations waiting on a node
        self.writes: dict[int, Client] = {}
        self.reads: dict[int, Client] = {}
        self.by_index: dict[tuple[int, int], Client] = {}  # (host, index) -> client
        self.ok_writes_after = float("inf")
        self.fresh_write_ok = False
        self.completed = 0
        self.stale_reads = cluster.cfg.client_bug == "stale_reads"

    def start(self) -> None:
        for c in self.clients:
            self.cluster.loop.call_later(self.rng.random() * 0.02, self._invoke, c)

    # -- issuing ------------------------------------------------------------------

    def _schedule_next(self, c: Client) -> None:
        if not self.stopped:
            self.cluster.loop.call_later(0.001 + self.rng.random() * 0.02, self._invoke, c)

    def _invoke(self, c: Client) -> None:
        if self.stopped or c.op is not None:
            return
        cl = self.cluster
        rng = self.rng
        key = rng.choice(self.keys)
        r = rng.random()
        rid = cl.new_request_id()
        value: object
        if r < 0.4:
            f, value = "read", None
        elif r < 0.75:
            f, value = "write", rid
        else:
            f, value = "cas", (c.last_seen.get(key), rid)
        host = cl.hosts[c.guess]
        if host.paused_until > cl.loop.now:
            # The request reaches the node when it wakes up.
            cl.loop.call_at(host.paused_until, self._invoke, c)
            return
        op = PendingOp(f, key, value, rid, host.id)
        c.op = op
        self.history.append(HistoryEvent(c.process, INVOKE, f, value, key))
        cl.trace_event(host.id, f"client {c.cid} invoke {f} {key}={value} rid={rid}")
        node = host.node
        if node is None:
            self._complete(c, FAIL, value, "node down")
            c.guess = rng.choice(cl.node_ids)
            return
        try:
            if f == "read":
                if self.stale_reads:
                    if node.role != Role.LEADER:
                        raise NotLeader(node.leader)
                    self.reads[rid] = c
                    self._complete(c, OK, host.sm.kv.get(key), "local read (client bug)")
                    return
                node.read_index(rid)
                self.reads[rid] = c
            else:
                if f == "write":
                    cmd = Command(rid, "write", key, rid)
                else:
                    cmd = Command(rid, "cas", key, rid, c.last_seen.get(key))
                placed = node.propose(encode_command(cmd))
                self.writes[rid] = c
                if placed is not None:
                    op.index, op.term = placed
                    self.by_index[(host.id, op.index)] = c
        except NotLeader as e:
            self._complete(c, FAIL, value, "not leader")
            c.guess = e.leader if e.leader else rng.choice(cl.node_ids)
            return
        cl.loop.call_later(self.timeout, self._timeout, c, op)
        cl.pump(host)

    def _complete(self, c: Client, kind: str, value: object, why: str = "") -> None:
        op = c.op
        assert op is not None
        self.history.append(HistoryEvent(c.process, kind, op.f, value, op.key))
        self.completed += 1
        self.cluster.trace_event(op.host, f"client {c.cid} {kind} {op.f} {op.key}={value} {why}")
        self.writes.pop(op.request_id, None)
        self.reads.pop(op.request_id, None)
        if op.index:
            self.by_index.pop((op.host, op.index), None)
        c.op = None
        if kind == INFO:
            # Jepsen convention: a process whose operation is in doubt is replaced.
            c.process += self.n
        if kind == OK:
            if op.f == "read":
                c.last_seen[op.key] = value  # type: ignore[assignment]
            elif op.f == "write":
                c.last_seen[op.key] = op.request_id
                if self.cluster.loop.now >= self.ok_writes_after:
                    self.fresh_write_ok = True
            else:
                c.last_seen[op.key] = op.request_id
        self._schedule_next(c)

    def _timeout(self, c: Client, op: PendingOp) -> None:
        if c.op is op:
            self._complete(c, INFO, op.value, "timeout")
            c.guess = self.rng.choice(self.cluster.node_ids)

    # -- what nodes report -------------------------------------------------------------

    def applied(
        self, host: Host, index: int, term: int, cmd: Command | None, changed: bool
    ) -> None:
        """``host`` applied an entry (called for every applied entry)."""
        if cmd is not None:
            c = self.writes.get(cmd.request_id)
            if c is not None and c.op is not None and c.op.host == host.id:
                op = c.op
                if op.f == "write" or changed:
                    self._complete(c, OK, op.value)
                else:
                    self._complete(c, FAIL, op.value, "compare failed")
                return
        if self.by_index:
            c = self.by_index.get((host.id, index))
            if c is not None and c.op is not None and c.op.term != term:
                # Another entry was committed where the leader put ours: ours is gone.
                self._complete(c, FAIL, c.op.value, "overwritten")

    def read_point(self, host: Host, request_id: int, index: int) -> None:
        c = self.reads.get(request_id)
        if c is None or c.op is None or c.op.host != host.id:
            return
        if host.sm.applied >= index:
            self._complete(c, OK, host.sm.kv.get(c.op.key))
        else:
            host.read_points.append((index, request_id))

    def applied_up_to(self, host: Host) -> None:
        """Answer reads whose read index ``host`` has now applied."""
        still = []
        for index, rid in host.read_points:
            c = self.reads.get(rid)
            if c is None or c.op is None:
                continue
            if host.sm.applied >= index:
                self._complete(c, OK, host.sm.kv.get(c.op.key))
            else:
                still.append((index, rid))
        host.read_points = still

    def read_dropped(self, host: Host, request_id: int) -> None:
        c = self.reads.get(request_id)
        if c is not None and c.op is not None and c.op.host == host.id:
            self._complete(c, FAIL, None, "read dropped")

    def host_crashed(self, host: Host) -> None:
        for c in self.clients:
            if c.op is not None and c.op.host == host.id:
                self._complete(c, INFO, c.op.value, "node crashed")
