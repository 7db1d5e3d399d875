"""The keeper server: ZooKeeper's client port on top of the replicated data tree.

Shape (chosen for throughput in CPython): one ``asyncio.Protocol`` per client
connection, no task per request. Bytes go through the sans-IO
``ServerConnection``; reads are answered synchronously from the local tree;
writes become transactions handed to the :class:`Proposer`, which batches them
into the log once per event-loop turn; replies and watch events are buffered
per connection and written once per loop turn.

FIFO per session: a connection keeps a queue of reply slots only while it has
writes in flight; a read that arrives behind a pending write is queued and
*executed* when it reaches the head, so it sees the session's own writes.

Watch events are produced on the apply path, before the reply of the write
that caused them, so a client always sees an event before data that reflects
the change.

Quorum: a server that is neither leader nor a follower of a known leader
refuses new sessions; if that lasts longer than a grace period, it closes its
client connections (as a ZooKeeper follower that lost its leader does), and
clients move to a server that has a quorum.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from paddock.consensus.server import ConsensusServer
from paddock.consensus.types import Role
from paddock.keeper import fourletter
from paddock.keeper.acl import Id
from paddock.keeper.client_connection import ClientConnection, _now_ms
from paddock.keeper.codec import encode_response, encode_watch_event
from paddock.keeper.codes import OpCode
from paddock.keeper.config import KeeperConfig
from paddock.keeper.connection import Request
from paddock.keeper.datatree import TxnResult
from paddock.keeper.errors import KeeperError
from paddock.keeper.records import ConnectRequest
from paddock.keeper.replicated import KeeperStateMachine, Proposer
from paddock.keeper.request_handlers import to_op, write_reply
from paddock.keeper.session import (
    SessionIdAllocator,
    negotiate_timeout,
    new_secret,
    session_password,
)
from paddock.keeper.txn import CloseSession, CreateSession, DeleteContainer, Noop, Txn, encode_txn
from paddock.keeper.watches import WatchManager

log = logging.getLogger(__name__)


class KeeperServer:
    """One keeper server: client port + consensus node + replicated data tree."""

    def __init__(self, cfg: KeeperConfig, *, rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.id = cfg.my_id
        self.sm = KeeperStateMachine(_now_ms)
        self.sm.listener = self
        self.watches = WatchManager()
        self.rng = rng or random.Random()
        self._secret = new_secret(self.rng)
        self._ids = SessionIdAllocator(self.id, int(time.time() * 1000))
        self.connections: set[ClientConnection] = set()
        self.by_session: dict[int, ClientConnection] = {}
        self._per_ip: dict[str, int] = {}
        self._read_waiters: deque[tuple[int, Callable[[], None]]] = deque()
        peers = cfg.peers() if not cfg.standalone else {self.id: ("127.0.0.1", 0)}
        if not cfg.standalone and self.id not in peers:
            raise ValueError(f"server id {self.id} not in peers {sorted(peers)}")
        self.cons = ConsensusServer(
            self.id,
            peers,
            cfg.data_dir,
            self.sm,
            tick_interval=cfg.raft_tick,
            election_ticks=10,
            heartbeat_ticks=1,
            snapshot_every=cfg.snapshot_every,
        )
        election_s = cfg.raft_tick * 10
        self.proposer = Proposer(self.id, self.cons, forward_timeout=max(0.5, 3 * election_s))
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._was_leader = False
        self._unserving_since: float | None = None
        self._quorum_grace = max(1.0, cfg.tick_ms / 1000)
        self._ro_conns: set[ClientConnection] = set()
        self._last_touch_flush = 0.0
        self._last_container_check = 0.0
        self.client_port = cfg.client_port
        self.stopped = asyncio.Event()
        #: Set when the consensus node can no longer work (storage failure).
        self.fatal = asyncio.Event()

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.cons.start()
        self._install_config_node()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ClientConnection(self),
            self.cfg.client_host,
            self.cfg.client_port,
            reuse_address=True,
            backlog=1024,
        )
        sock = self._server.sockets[0]
        self.client_port = sock.getsockname()[1]
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="keeper-housekeeping"))
        log.info(
            "keeper %d serving clients on %s:%d (%s)",
            self.id,
            self.cfg.client_host,
            self.client_port,
            "standalone" if self.cfg.standalone else f"{len(self.cfg.servers)} servers",
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for c in list(self.connections):
            c.close()
        self.proposer.fail_all()
        await self.cons.stop()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        self.stopped.set()

    # ------------------------------------------------------------ state
    @property
    def role(self) -> Role:
        node = self.cons.node
        return node.role if node is not None else Role.FOLLOWER

    @property
    def serving(self) -> bool:
        node = self.cons.node
        if node is None:
            return False
        return node.role == Role.LEADER or (node.role == Role.FOLLOWER and node.leader != 0)

    @property
    def read_only(self) -> bool:
        """Read-only mode: without a quorum for longer than the grace period, the
        server accepts sessions from clients that allow read-only (canBeReadOnly),
        answers their reads from its last state and refuses writes (NotReadOnly),
        as ZooKeeper's ReadOnlyZooKeeperServer."""
        since = self._unserving_since
        return (
            since is not None
            and not self.serving
            and time.monotonic() - since > self._quorum_grace
            and not self.fatal.is_set()
        )

    @property
    def mode(self) -> str:
        if not self.serving:
            return "read-only" if self.read_only else "candidate"
        if self.cfg.standalone:
            return "standalone"
        return "leader" if self.role == Role.LEADER else "follower"

    # ------------------------------------------------------------ connections
    def admit(self, conn: ClientConnection) -> bool:
        limit = self.cfg.max_client_cnxns
        n = self._per_ip.get(conn.address, 0)
        if limit and n >= limit:
            return False
        self._per_ip[conn.address] = n + 1
        return True

    def forget(self, conn: ClientConnection) -> None:
        self._ro_conns.discard(conn)
        if conn in self.connections:
            self.connections.discard(conn)
            n = self._per_ip.get(conn.address, 1) - 1
            if n <= 0:
                self._per_ip.pop(conn.address, None)
            else:
                self._per_ip[conn.address] = n
        sid = conn.session_id
        if sid and self.by_session.get(sid) is conn:
            del self.by_session[sid]
            self.watches.remove_session(sid)

    def handle_connect(self, conn: ClientConnection, req: ConnectRequest) -> None:
        if not self.serving:
            if req.read_only and self.read_only:
                self._attach_read_only(conn, req)
                return
            log.info("refusing session from %s: not serving (no quorum)", conn.address)
            conn.session_refused(expired=False)
            return
        if req.last_zxid_seen > self.sm.last_zxid:
            log.info(
                "refusing session from %s: client has seen zxid 0x%x, ours is 0x%x",
                conn.address,
                req.last_zxid_seen,
                self.sm.last_zxid,
            )
            conn.session_refused(expired=False)
            return
        timeout = negotiate_timeout(req.time_out, self.cfg.min_timeout, self.cfg.max_timeout)
        if req.session_id == 0:
            sid = self._ids.next_id()
            passwd = session_password(sid, self._secret)
            txn = Txn(sid, (), CreateSession(sid, timeout, passwd), 0)

            def created(result: TxnResult | None) -> None:
                if conn.closed:
                    return
                if result is None or result.err:
                    conn.session_refused(expired=False)
                    return
                self._attach(conn, sid, timeout, passwd)

            self.proposer.submit(encode_txn(txn), created)
            return
        self._resume(conn, req, barrier=True)

    def _resume(self, conn: ClientConnection, req: ConnectRequest, barrier: bool) -> None:
        sid = req.session_id
        info = self.sm.sessions.get(sid)
        if info is None and barrier:
            # Maybe the session was created so recently that we have not applied it:
            # a no-op through the log makes us apply everything committed before.
            def after(result: TxnResult | None) -> None:
                if conn.closed:
                    return
                if result is None:
                    conn.session_refused(expired=False)
                else:
                    self._resume(conn, req, barrier=False)

            self.proposer.submit(encode_txn(Txn(0, (), Noop(), 0)), after)
            return
        if info is None or info.password != req.passwd or self.sm.sessions.is_closing(sid):
            log.info("session 0x%x from %s is expired or unknown", sid, conn.address)
            conn.session_refused(expired=True)
            return
        self._attach(conn, sid, info.timeout_ms, info.password)

    def _attach_read_only(self, conn: ClientConnection, req: ConnectRequest) -> None:
        timeout = negotiate_timeout(req.time_out, self.cfg.min_timeout, self.cfg.max_timeout)
        info = self.sm.sessions.get(req.session_id) if req.session_id else None
        if info is not None and info.password == req.passwd:
            sid, passwd = info.session_id, info.password
        else:
            # A local session: not replicated, it ends with this connection.
            sid = self._ids.next_id()
            passwd = session_password(sid, self._secret)
        conn.read_only = True
        self._ro_conns.add(conn)
        log.info("read-only session 0x%x for %s", sid & 0xFFFFFFFFFFFFFFFF, conn.address)
        self._attach(conn, sid, timeout, passwd, read_only=True)

    def _attach(
        self,
        conn: ClientConnection,
        sid: int,
        timeout: int,
        passwd: bytes,
        read_only: bool = False,
    ) -> None:
        old = self.by_session.get(sid)
        if old is not None and old is not conn:
            self.watches.remove_session(sid)
            old.session_id = 0
            old.close()
        self.by_session[sid] = conn
        self.sm.sessions.touch(sid, _now_ms())
        conn.session_ready(sid, timeout, passwd, read_only)

    # ------------------------------------------------------------ writes
    def submit_write(self, conn: ClientConnection, req: Request) -> None:
        try:
            op = to_op(req.opcode, req.record, conn.session_id, self.cfg.extended_types_enabled)
        except KeeperError as e:
            conn.reply(encode_response(req.xid, self.sm.last_zxid, e.code))
            return
        node = self.cons.node
        term = node.term if node is not None else 0
        if conn.inflight_writes and conn.inflight_term < term:
            # Earlier writes of this session went to a leader that is gone; their
            # fate is unknown, so this one cannot be ordered after them: drop the
            # connection (ConnectionLoss), as ZooKeeper does when its leader goes.
            log.info("session 0x%x: leader changed under pending writes", conn.session_id)
            conn.close()
            return
        if not conn.inflight_writes:
            conn.inflight_term = term
        conn.inflight_writes += 1
        txn = Txn(conn.session_id, tuple(conn.auth), op, req.xid)
        slot = conn.begin_ordered()
        closing = req.opcode == OpCode.CLOSE_SESSION

        def done(result: TxnResult | None) -> None:
            conn.inflight_writes -= 1
            if conn.closed:
                return
            if result is None:
                conn.close()  # outcome unknown: the client sees ConnectionLoss
                return
            conn.complete(slot, write_reply(req, result, self.sm.last_zxid))
            if closing:
                conn.close_after_replies()

        self.proposer.submit(encode_txn(txn), done)

    # ------------------------------------------------------------ apply path
    def on_applied(self, origin: int, seq: int, txn: Txn, result: TxnResult) -> None:
        if result.triggers:
            self._deliver(result)
        op = txn.op
        closed: ClientConnection | None = None
        if isinstance(op, CloseSession):
            self.watches.remove_session(op.session_id)
            closed = self.by_session.pop(op.session_id, None)
        # Our own closeSession is answered here; its ``done`` closes afterwards.
        self.proposer.applied(origin, seq, result)
        if closed is not None:
            closed.close()
        if self._read_waiters:
            self._release_reads(self.sm.last_index)

    # ------------------------------------------------------------ read barrier
    def read_barrier(self) -> int:
        """The log index a read arriving now should wait for (0: none).

        A follower hears of a commit at about the moment the leader answers the
        writer, but applies it only after its own Ready is persisted. A read that
        arrives in between waits until that commit is applied here, so a client
        told by another client about a write sees it even on a follower."""
        node = self.cons.node
        if node is None or node.role == Role.LEADER:
            return 0
        commit = node.commit
        return commit if commit > self.cons.applied else 0

    def wait_applied(self, index: int, run: Callable[[], None]) -> None:
        self._read_waiters.append((index, run))

    def _release_reads(self, applied: int) -> None:
        waiters = self._read_waiters
        while waiters and waiters[0][0] <= applied:
            _, run = waiters.popleft()
            try:
                run()
            except Exception:
                log.exception("deferred read failed")

    def _deliver(self, result: TxnResult) -> None:
        by_session = self.by_session

        def auth_of(sid: int) -> list[Id]:
            c = by_session.get(sid)
            return c.auth if c is not None else []

        for d in self.watches.trigger(result.triggers, result.zxid, auth_of):
            conn = by_session.get(d.session_id)
            if conn is not None:
                conn.write(encode_watch_event(d.event_type, d.state, d.path, d.zxid))

    def on_restored(self) -> None:
        log.info("state restored from a snapshot (zxid 0x%x)", self.sm.last_zxid)
        self._install_config_node()

    def _install_config_node(self) -> None:
        """``/zookeeper/config`` holds the ensemble, as ZooKeeper's dynamic config
        (``server.N=host:peer:election:role[;client]`` lines, then ``version=``);
        empty for a standalone server, as in ZooKeeper."""
        if self.cfg.standalone:
            return
        lines = []
        for sid, spec in sorted(self.cfg.servers.items()):
            line = f"server.{sid}={spec.host}:{spec.peer_port}:{spec.election_port}:{spec.role}"
            if spec.client_port:
                line += f";{spec.client_host or '0.0.0.0'}:{spec.client_port}"
            elif sid == self.id:
                line += f";{self.cfg.client_host}:{self.client_port or self.cfg.client_port}"
            lines.append(line)
        lines.append("version=100000000")
        self.sm.tree.set_config_local("\n".join(lines).encode())

    # ------------------------------------------------------------ housekeeping
    async def _housekeeping(self) -> None:
        interval = min(0.05, self.cfg.tick_ms / 4000)
        while True:
            await asyncio.sleep(interval)
            try:
                self._housekeep()
            except Exception:
                log.exception("housekeeping failed")

    def _housekeep(self) -> None:
        now = time.monotonic()
        now_ms = _now_ms()
        failed = getattr(self.cons, "failed", None)
        if failed and not self.fatal.is_set():
            log.error("consensus node failed (%s); shutting down", failed)
            self.fatal.set()
            return
        self.proposer.tick()
        if self._read_waiters:
            self._release_reads(self.cons.applied)
        leader = self.role == Role.LEADER
        sessions = self.sm.sessions
        if leader and not self._was_leader:
            sessions.refresh_all(now_ms)
            log.info("keeper %d is the leader", self.id)
        self._was_leader = leader
        if leader:
            sessions.take_touched()
            for sid in sessions.expired(now_ms):
                log.info("session 0x%x expired; closing it", sid & 0xFFFFFFFFFFFFFFFF)
                self.proposer.submit(encode_txn(Txn(sid, (), CloseSession(sid), 0)), _ignore)
            if now - self._last_container_check > 1.0:
                self._last_container_check = now
                for path in self.sm.tree.deletion_candidates(int(time.time() * 1000)):
                    self.proposer.submit(encode_txn(Txn(0, (), DeleteContainer(path), 0)), _ignore)
        elif now - self._last_touch_flush > self.cfg.tick_ms / 2000:
            self._last_touch_flush = now
            touched = sessions.take_touched()
            if touched and self.serving:
                self.proposer.submit_touch(touched)
        if self.serving:
            self._unserving_since = None
        elif self._unserving_since is None:
            self._unserving_since = now
        elif now - self._unserving_since > self._quorum_grace:
            rw = [c for c in self.by_session.values() if not c.read_only]
            if rw:
                log.warning("no quorum for a while: closing %d client sessions", len(rw))
                for conn in rw:
                    conn.close()
        if self.serving and self._ro_conns:
            # Back in a quorum: read-only clients reconnect for a read-write session.
            log.info("quorum regained: closing %d read-only sessions", len(self._ro_conns))
            for conn in list(self._ro_conns):
                conn.close()

    # ------------------------------------------------------------ reporting
    def four_letter(self, word: str) -> str:
        return fourletter.answer(word, self.report(), self.cfg.four_letter_words)

    def report(self) -> fourletter.ServerReport:
        tree = self.sm.tree
        status: dict[str, Any] = {}
        try:
            status = self.cons.status()
        except Exception:
            status = {}
        conns = [
            fourletter.ConnectionReport(
                c.address,
                c.port,
                c.session_id,
                c.timeout_ms,
                c.received,
                c.sent,
                len(c.queue),
                tree.last_zxid,
            )
            for c in self.connections
        ]
        ephemerals = {sid: sorted(p) for sid, p in tree.ephemerals.items()}
        progress = status.get("progress", {}) if isinstance(status, dict) else {}
        # Outbound consensus links: a leader with fewer connected links than
        # running peers cannot reach a follower (the chaos run's keeper 4).
        links = status.get("peers", {}) if isinstance(status, dict) else {}
        return fourletter.ServerReport(
            server_id=self.id,
            mode=self.mode,
            serving=self.serving,
            zxid=tree.last_zxid,
            node_count=tree.node_count(),
            ephemeral_count=tree.ephemeral_count(),
            watch_count=self.watches.watch_count(),
            watched_paths=len(self.watches.watched_paths()),
            watching_sessions=len(self.watches.sessions_watching()),
            approximate_data_size=tree.approximate_data_size(),
            received=sum(c.received for c in self.connections),
            sent=sum(c.sent for c in self.connections),
            outstanding=len(self.proposer),
            latency_min_ms=self.proposer.latency_min * 1000,
            latency_avg_ms=self.proposer.latency_sum * 1000 / max(1, self.proposer.latency_count),
            latency_max_ms=self.proposer.latency_max * 1000,
            connections=conns,
            session_count=len(self.sm.sessions),
            ephemerals=ephemerals,
            config_lines=self._config_lines(),
            followers=len(progress),
            synced_followers=len(progress),
            data_dir=str(self.cfg.data_dir),
            extra={
                "paddock_raft_term": status.get("term", 0),
                "paddock_raft_commit": status.get("commit", 0),
                "paddock_fsyncs": status.get("fsyncs", 0),
                "paddock_fsync_seconds": round(self.cons.stats.fsync_seconds, 3),
                "paddock_entries_persisted": status.get("entries_persisted", 0),
                "paddock_entries_applied": status.get("entries_applied", 0),
                "paddock_readies": self.cons.stats.readies,
                "paddock_proposed": self.proposer.proposed,
                "paddock_peers_connected": sum(1 for p in links.values() if p["connected"]),
                "paddock_peer_messages_dropped": sum(p["dropped"] for p in links.values()),
            },
        )

    def _config_lines(self) -> list[str]:
        cfg = self.cfg
        lines = [
            f"clientPort={self.client_port}",
            f"clientPortAddress={cfg.client_host}",
            f"dataDir={cfg.data_dir}",
            f"dataDirSize=0",  # noqa: F541
            f"dataLogDir={cfg.data_log_dir or cfg.data_dir}",
            f"tickTime={cfg.tick_ms}",
            f"maxClientCnxns={cfg.max_client_cnxns}",
            f"minSessionTimeout={cfg.min_timeout}",
            f"maxSessionTimeout={cfg.max_timeout}",
            f"serverId={self.id}",
        ]
        for sid, s in sorted(cfg.servers.items()):
            client = f";{s.client_host or '0.0.0.0'}:{s.client_port}" if s.client_port else ""
            lines.append(f"server.{sid}={s.host}:{s.peer_port}:{s.election_port}:{s.role}{client}")
        return lines


def _ignore(result: TxnResult | None) -> None:
    return None


async def serve(cfg: KeeperConfig, stop: asyncio.Event) -> int:
    """Run a keeper server until ``stop`` is set; returns the exit status (1 if
    the consensus node failed, e.g. on a storage error)."""
    os.makedirs(cfg.data_dir, exist_ok=True)
    server = KeeperServer(cfg)
    await server.start()
    metrics = None
    try:
        if cfg.metrics_port:
            from paddock.keeper.metrics_http import start_metrics_server

            metrics = await start_metrics_server(cfg.metrics_host, cfg.metrics_port, server.report)
        stopping = asyncio.ensure_future(stop.wait())
        failing = asyncio.ensure_future(server.fatal.wait())
        await asyncio.wait({stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
        for f in (stopping, failing):
            f.cancel()
    finally:
        if metrics is not None:
            metrics.close()
        await server.stop()
    return 1 if server.fatal.is_set() else 0
