"""``MasterDaemon``: one master process — HTTP server, ZooKeeper election, registry replica.

Start-up order:

1. the HTTP server (so ``/version`` and ``/master/health`` answer at once);
2. the ZooKeeper session; a stable registry replica id (allocated once from a
   sequential node under ``<path>/log_replicas`` and kept in ``work_dir``);
3. registry peer discovery: the replica registers ``log_replicas/replica_<id>``
   and, on first start, waits until ``2 * quorum - 1`` replicas are registered,
   takes them as the peer set and persists it in ``work_dir`` (later starts reuse
   it) — a fixed membership, as Mesos's replicated log has;
4. the registry's ``ConsensusServer`` (external election mode);
5. the ``json.info_`` znode (contending for leadership).

A supervisor runs on every ZooKeeper event and registry role change (and every
50 ms as a backstop): when ZooKeeper names this master leader it makes the
registry elect it (``campaign()``) and writes an "elected" record of its term;
once that commits, the master acts. Losing the ZooKeeper session (SUSPENDED) or
the registry quorum stops all work at once; a leader whose session is LOST exits
(as Mesos does: another master has taken over or will). Between those events a
session lease bounds acting: the master acts only until 3/4 of the session
timeout after the last request ZooKeeper answered (renewed every 1/5), so a
paused or cut-off leader stops before ZooKeeper can expire its session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from paddock.consensus.server import ConsensusServer
from paddock.consensus.types import Role
from paddock.master.app import build_app
from paddock.master.config import MESOS_VERSION, MasterConfig
from paddock.master.core import Master
from paddock.master.election import ZkElection, ip_to_uint32
from paddock.master.registry import Registry, RegistryState, RegistryUnavailable

log = logging.getLogger(__name__)

SUPERVISE_INTERVAL = 0.05
CAMPAIGN_RETRY = 1.0
#: The session lease: a master acts until ``LEASE_FRACTION`` of the session timeout
#: after it sent the last request ZooKeeper answered (the server cannot expire the
#: session sooner than a full timeout after receiving it), renewed every
#: ``LEASE_RENEWALS``-th of the timeout.
LEASE_FRACTION = 0.75
LEASE_RENEWALS = 5


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling (the daemon owns SIGTERM/SIGINT)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class MasterDaemon:
    def __init__(self, config: MasterConfig) -> None:
        self.config = config
        self.master_id = str(uuid.uuid4())
        self.master_info: dict[str, Any] = {
            "id": self.master_id,
            "ip": ip_to_uint32(config.ip),
            "port": config.port,
            "pid": f"master@{config.ip}:{config.port}",
            "hostname": config.hostname,
            "version": MESOS_VERSION,
            "address": {"hostname": config.hostname, "ip": config.ip, "port": config.port},
        }
        self.registry_state = RegistryState()
        self.master = Master(config, self.master_info, None)
        self.master.lease_until = 0.0  # no session yet
        self.election: ZkElection | None = None
        self.server: ConsensusServer | None = None
        self.http: _HttpServer | None = None
        self.stopping = asyncio.Event()
        self.exit_code = 0
        self._zk_leader_info: dict[str, Any] | None = None
        self._was_zk_leader = False
        self._lost = False
        self._elected_term = 0
        self._electing: asyncio.Task[None] | None = None
        self._last_campaign = 0.0
        self._tasks: list[asyncio.Task[Any]] = []
        self._refreshing: asyncio.Task[tuple[dict[str, Any] | None, bool]] | None = None

    # ------------------------------------------------------------------ queries
    def is_zk_leader(self) -> bool:
        return self.election is not None and self.election.is_leader()

    def leader_info(self) -> dict[str, Any] | None:
        if self.election is None or self.election.state != "CONNECTED":
            return None
        return self._zk_leader_info

    async def fresh_leader(self) -> tuple[dict[str, Any] | None, bool] | None:
        """The leading master as ZooKeeper has it now (one read shared by concurrent
        callers): our watch would tell us soon, but a client that already knows is
        waiting. None if it cannot be read."""
        if self.election is None or self.election.my_node is None:
            return None
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self.election.read_leader())
        try:
            return await asyncio.shield(self._refreshing)
        except Exception:
            return None

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> int:
        cfg = self.config
        cfg.work_dir.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        await self._start_http()
        self.election = ZkElection(
            cfg.zk,
            self.master_info,
            session_timeout=cfg.zk_session_timeout,
            loop=loop,
            on_leader=self._on_leader,
            on_session=self._on_session,
        )
        try:
            if not await self.election.start(self.stopping):
                return self.exit_code
            replica_id = await self._replica_id()
            await self.election.register_replica(replica_id, cfg.ip, cfg.consensus_port)
            peers = await self._discover_peers(replica_id)
            if peers is None:
                return self.exit_code
            log.info("registry replica %d with peers %s", replica_id, peers)
            self.server = ConsensusServer(
                replica_id,
                peers,
                cfg.work_dir / "registry",
                self.registry_state,
                external_election=True,
                cluster_id=f"paddock-master:{cfg.zk.path}",
            )
            self.server.on_role_change = self._supervise  # take over the moment we lead
            await self.server.start()
            self.master.registry = Registry(self.server, self.registry_state, cfg.registry_timeout)
            self.master.start_loops()
            self._tasks.append(loop.create_task(self._lease_loop()))
            await self.election.contend()
            self._tasks.append(loop.create_task(self._supervise_loop()))
            stop_wait = loop.create_task(self.stopping.wait())
            failed_wait = loop.create_task(self.server.failed_event.wait())
            done, _ = await asyncio.wait(
                {stop_wait, failed_wait}, return_when=asyncio.FIRST_COMPLETED
            )
            for t in (stop_wait, failed_wait):
                t.cancel()
            if failed_wait in done:
                log.error("registry storage failed: %s", self.server.failed)
                self.exit_code = 1
        finally:
            await self.shutdown()
        return self.exit_code

    def request_stop(self, code: int = 0) -> None:
        if code:
            self.exit_code = code
        self.stopping.set()

    async def shutdown(self) -> None:
        self.master.leading = False
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.master.stop()
        if self.election is not None:
            await self.election.stop()  # deletes our znodes: the next leader starts now
        if self.server is not None:
            await self.server.stop()
        if self.http is not None:
            self.http.should_exit = True
            self.http.force_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._http_task, 5.0)

    async def _start_http(self) -> None:
        cfg = self.config
        config = uvicorn.Config(
            build_app(self),
            host=cfg.ip,
            port=cfg.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            # Schedulers (pymesos's driver) keep one connection for their calls and do
            # not retry when it was closed while idle; libprocess never closes it.
            timeout_keep_alive=24 * 3600,
        )
        # Bind here, so a busy port is a clear OSError rather than uvicorn's sys.exit.
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only
        # when the listening socket says TCP (otherwise ~40 ms delayed-ACK stalls).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((cfg.ip, cfg.port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen on {cfg.ip}:{cfg.port}: {exc.strerror}") from None
        self.http = _HttpServer(config)
        self._http_task = asyncio.get_running_loop().create_task(self.http.serve(sockets=[sock]))
        while not self.http.started:
            if self._http_task.done():
                self._http_task.result()
                raise RuntimeError(f"HTTP server on {cfg.ip}:{cfg.port} did not start")
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ replicas
    async def _replica_id(self) -> int:
        path = self.config.work_dir / "replica.json"
        if path.exists():
            return int(json.loads(path.read_text())["replica_id"])
        assert self.election is not None
        rid = await self.election.allocate_replica_id()
        _write_atomic(path, {"replica_id": rid})
        return rid

    async def _discover_peers(self, replica_id: int) -> dict[int, tuple[str, int]] | None:
        path = self.config.work_dir / "registry_peers.json"
        assert self.election is not None
        if path.exists():
            stored = json.loads(path.read_text())
            peers = {int(k): (v[0], int(v[1])) for k, v in stored.items()}
            await self.election.publish_membership(peers)  # a no-op once recorded
            return peers
        wanted = self.config.replicas_wanted
        logged = 0.0
        while not self.stopping.is_set():
            # A membership formed without us (we were killed before we saw it form)
            # is adopted from ZooKeeper, so a restart rejoins it.
            chosen = await self.election.membership()
            if chosen is None:
                replicas = await self.election.replicas()
                if replica_id in replicas and len(replicas) >= wanted:
                    chosen = await self.election.publish_membership(replicas)
            if chosen is not None and replica_id in chosen:
                _write_atomic(path, {str(k): list(v) for k, v in chosen.items()})
                return chosen
            if time.monotonic() - logged > 5:
                logged = time.monotonic()
                if chosen is not None:
                    log.error(
                        "registry replica %d is not a member of the registry %s: "
                        "not serving as a replica",
                        replica_id,
                        sorted(chosen),
                    )
                else:
                    log.info("waiting for %d registry replicas", wanted)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 0.2)
        return None

    # ------------------------------------------------------------------ ZooKeeper events
    def _on_leader(self, info: dict[str, Any] | None, is_me: bool) -> None:
        self._zk_leader_info = info
        if info is None:
            log.warning("no leading master in ZooKeeper")
        else:
            log.info("leading master is %s%s", info.get("pid"), " (this master)" if is_me else "")
        self._supervise()

    def _on_session(self, state: str) -> None:
        log.info("ZooKeeper session %s", state)
        if state == "LOST":
            if self._was_zk_leader:
                log.error("lost the ZooKeeper session while leading: exiting (as Mesos does)")
                self.master.stop_acting("ZooKeeper session lost")
                self.request_stop(1)
                return
            self._lost = True
        elif state == "CONNECTED" and self._lost and self.election is not None:
            self._lost = False
            asyncio.get_running_loop().create_task(self.election.recreate_after_loss())
        self._supervise()

    # ------------------------------------------------------------------ session lease
    async def _lease_loop(self) -> None:
        """Renew ``master.lease_until`` by ZooKeeper round trips.

        This assumes the server granted the session timeout we asked for (it grants
        less only when its maxSessionTimeout is lower, 20 ticks by default)."""
        timeout = self.config.zk_session_timeout
        period = timeout / LEASE_RENEWALS
        master = self.master
        assert self.election is not None
        while True:
            sent = time.monotonic()
            if await self.election.round_trip(timeout * LEASE_FRACTION):
                lapsed = not master.acting and master.leading
                master.lease_until = max(master.lease_until, sent + timeout * LEASE_FRACTION)
                if lapsed and master.acting:
                    log.info("ZooKeeper session confirmed again: acting")
                    master.kick_allocation()
            elif master.leading and not master.acting:
                log.warning("ZooKeeper session not confirmed for %.2f s: not acting", timeout)
            await asyncio.sleep(max(0.0, sent + period - time.monotonic()))

    # ------------------------------------------------------------------ supervisor
    async def _supervise_loop(self) -> None:
        while True:
            self._supervise()
            await asyncio.sleep(SUPERVISE_INTERVAL)

    def _supervise(self) -> None:
        server = self.server
        master = self.master
        if server is None or server.node is None or self.stopping.is_set():
            return
        if not self.is_zk_leader():
            if master.leading:
                master.stop_acting("ZooKeeper no longer names this master leader")
            return
        self._was_zk_leader = True
        node = server.node
        if node.role == Role.LEADER:
            if master.leading:
                return
            if self._elected_term == node.term:
                master.start_acting()
            elif self._electing is None or self._electing.done():
                self._electing = asyncio.get_running_loop().create_task(
                    self._write_elected(node.term)
                )
            return
        if master.leading:
            master.stop_acting("lost the registry quorum")
        now = time.monotonic()
        if node.role == Role.FOLLOWER and now - self._last_campaign >= CAMPAIGN_RETRY:
            self._last_campaign = now
            log.info("campaigning for the registry (term %d)", node.term)
            server.campaign()

    async def _write_elected(self, term: int) -> None:
        assert self.master.registry is not None
        try:
            await self.master.registry.write(
                {"op": "elected", "master": self.master_info, "time": time.time()}
            )
        except RegistryUnavailable as exc:
            log.warning("could not record the election: %s", exc)
            return
        if (
            self.server is not None
            and self.server.node is not None
            and self.server.node.term == term
        ):
            self._elected_term = term
            log.info("registry recovered in term %d", term)
        self._supervise()


def _write_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
