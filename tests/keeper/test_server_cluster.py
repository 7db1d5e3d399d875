"""keeper as a 3-server ensemble: replication, failover, session moves, durability."""

from __future__ import annotations

import socket
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.protocol.states import KeeperState
from kazoo.retry import KazooRetry
from keeper_harness import Cluster, four_letter, wait_until

from paddock.keeper.codes import SET_WATCHES_XID, EventType
from paddock.keeper.connection import NEED_DATA, ClientConnection
from paddock.keeper.records import ConnectRequest, GetDataRequest, SetWatches
from paddock.testing import KeeperEnsemble

pytestmark = pytest.mark.timeout(90)


def _client(hosts: str, timeout: float = 5.0) -> KazooClient:
    client = KazooClient(
        hosts=hosts,
        timeout=timeout,
        connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.2),
        command_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.2, deadline=20),
    )
    client.start(timeout=15)
    return client


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("ens"), size=3)
    c.start()
    yield c
    c.stop()


def test_writes_replicate_and_every_server_reads(cluster):
    clients = [_client(m.address) for m in cluster.members]
    try:
        clients[0].create("/r", b"v0")
        for i, c in enumerate(clients):
            c.set("/r", f"v{i + 1}".encode())
        for c in clients:
            c.sync("/r")  # sync, then read: the latest committed value
            assert c.get("/r")[0] == b"v3"
        modes = sorted(
            four_letter(m.port, "srvr").split("Mode: ")[1].split()[0] for m in cluster.members
        )
        assert modes == ["follower", "follower", "leader"]
        config = clients[0].get("/zookeeper/config")[0].decode()
        assert "server.1=" in config and "server.3=" in config and "version=" in config
    finally:
        for c in clients:
            c.stop()
            c.close()


def test_fifo_order_per_session_on_a_follower(cluster):
    follower = next(m for m in cluster.members if not m.is_leader)
    c = _client(follower.address)
    try:
        c.create("/fifo", b"0")
        results = [c.set_async("/fifo", str(i).encode()) for i in range(1, 51)]
        read = c.get_async("/fifo")  # queued behind the writes of the same session
        versions = [r.get(10).version for r in results]
        assert versions == list(range(1, 51))
        assert read.get(10)[0] == b"50"
    finally:
        c.stop()
        c.close()


def test_watch_fires_from_another_servers_write(cluster):
    a = _client(cluster.members[0].address)
    b = _client(cluster.members[2].address)
    try:
        a.create("/wx", b"0")
        b.sync("/wx")
        events = []
        b.get("/wx", watch=events.append)
        a.set("/wx", b"1")
        wait_until(lambda: events, 5, what="watch event")
        assert b.get("/wx")[0] == b"1"
    finally:
        for c in (a, b):
            c.stop()
            c.close()


def test_session_survives_its_servers_death(tmp_path):
    with Cluster(tmp_path, size=3) as c:
        first = c.members[0]
        client = _client(first.address + "," + c.members[1].address + "," + c.members[2].address)
        try:
            client.create("/mine", b"x", ephemeral=True)
            sid = client.client_id[0]
            connected_to = client._connection._socket.getpeername()[1]
            victim = next(m for m in c.members if m.port == connected_to)
            victim.stop()
            # The client reconnects elsewhere and keeps its session and ephemeral.
            wait_until(
                lambda: (
                    client.connected
                    and client._connection._socket is not None
                    and client._connection._socket.getpeername()[1] != connected_to
                ),
                15,
                what="reconnect",
            )
            assert client.client_id[0] == sid
            # A write caught by the leader change is ConnectionLoss (outcome unknown),
            # as with ZooKeeper; kazoo's retry helper resubmits it.
            client.retry(client.set, "/mine", b"y")
            assert client.get("/mine")[0] == b"y"
            assert client.exists("/mine").ephemeralOwner == sid
            # The stopped server comes back and catches up.
            victim.start()
            wait_until(lambda: victim.serving, 15)
            other = _client(victim.address)
            other.sync("/mine")
            assert other.get("/mine")[0] == b"y"
            other.stop()
            other.close()
        finally:
            client.stop()
            client.close()


def test_minority_refuses_sessions_and_whole_restart_keeps_data(tmp_path):
    c = Cluster(tmp_path, size=3)
    with c:
        client = _client(c.hosts)
        client.create("/keep", b"safe")
        client.stop()
        client.close()
        c.members[0].stop()
        c.members[1].stop()
        lone = c.members[2]
        wait_until(lambda: not lone.serving, 10, what="lone server stops serving")
        assert "not currently serving" in four_letter(lone.port, "srvr")
        lone_client = KazooClient(hosts=lone.address, timeout=2)
        with pytest.raises(Exception):  # noqa: B017 - kazoo raises its timeout type
            lone_client.start(timeout=2)
        lone_client.stop()
        lone_client.close()
        # Clients that allow read-only mode get a read-only session there.
        wait_until(lambda: lone.server.read_only, 10, what="read-only mode")
        assert "Mode: read-only" in four_letter(lone.port, "srvr")
        assert four_letter(lone.port, "isro") == "ro"
        ro = KazooClient(hosts=lone.address, timeout=4, read_only=True)
        ro.start(timeout=10)
        assert ro.client_state == KeeperState.CONNECTED_RO
        assert ro.get("/keep")[0] == b"safe"
        with pytest.raises(NotReadOnlyCallError):
            ro.set("/keep", b"nope")
        ro.stop()
        ro.close()
    with c:  # the whole ensemble restarts from its disks
        client = _client(c.hosts)
        assert client.get("/keep")[0] == b"safe"
        client.stop()
        client.close()


def test_leader_kill_9_writes_continue(tmp_path):
    ensemble = KeeperEnsemble(size=3, tick_ms=200, base_dir=tmp_path)
    with ensemble.start():
        client = _client(ensemble.hosts)
        try:
            client.create("/k", b"0")
            leader = ensemble.wait_leader()
            ensemble.kill(leader)
            t0 = time.monotonic()
            client.retry(client.set, "/k", b"after")  # until a new leader commits it
            elapsed = time.monotonic() - t0
            assert client.get("/k")[0] == b"after"
            assert elapsed < 5.0, f"writes resumed only after {elapsed:.2f}s"
            new_leader = ensemble.wait_leader()
            assert new_leader != leader
        finally:
            client.stop()
            client.close()


def _raw(port: int, **kw) -> tuple[socket.socket, ClientConnection, object]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = ClientConnection()
    sock.sendall(conn.encode_connect_request(ConnectRequest(time_out=4000, **kw)))
    return sock, conn, _next(sock, conn)


def _next(sock, conn):
    while True:
        ev = conn.next_event()
        if ev is not NEED_DATA:
            return ev
        conn.receive_data(sock.recv(65536))


def test_set_watches_restores_watches_on_another_server(cluster):
    a, b = cluster.members[0], cluster.members[1]
    writer = _client(cluster.hosts)
    writer.create("/sw", b"0")
    writer.create("/sw2", b"0")
    sock, conn, session = _raw(a.port)
    sock.sendall(conn.encode_request(1, GetDataRequest("/sw", True)))
    first = _next(sock, conn)
    assert first.err == 0
    seen_zxid = first.zxid
    sock.close()  # the client moves to server b with its session and watch list
    writer.retry(writer.set, "/sw2", b"changed while away")
    wait_until(lambda: b.server.sm.last_zxid >= seen_zxid, 5)
    sock, conn, resumed = _raw(
        b.port,
        session_id=session.session_id,
        passwd=session.passwd,
        last_zxid_seen=seen_zxid,
    )
    assert resumed.session_id == session.session_id and resumed.time_out > 0
    sock.sendall(
        conn.encode_request(SET_WATCHES_XID, SetWatches(seen_zxid, ["/sw", "/sw2"], [], []))
    )
    missed = _next(sock, conn)  # /sw2 changed after seen_zxid: fires at once
    assert (missed.event.type, missed.event.path) == (EventType.NODE_DATA_CHANGED, "/sw2")
    assert _next(sock, conn).xid == SET_WATCHES_XID
    writer.set("/sw", b"1")
    fired = _next(sock, conn)
    assert (fired.event.type, fired.event.path) == (EventType.NODE_DATA_CHANGED, "/sw")
    sock.close()
    writer.stop()
    writer.close()


def test_snapshots_catch_up_and_restart(tmp_path):
    c = Cluster(tmp_path, size=3, snapshot_every=20)
    with c:
        client = _client(c.hosts)
        client.create("/snap", b"")
        eph = client.create("/snap/eph", ephemeral=True)
        sid = client.client_id[0]
        laggard = next(m for m in c.members if not m.is_leader)
        laggard.stop()
        for i in range(120):  # several snapshots while it is away
            client.retry(client.create, f"/snap/n{i}", str(i).encode())
        laggard.start()
        wait_until(lambda: laggard.serving, 15)
        other = _client(laggard.address)
        other.sync("/snap")
        assert len(other.get_children("/snap")) == 121
        assert other.exists(eph).ephemeralOwner == sid
        # The session table came with the snapshot: the session resumes there.
        assert laggard.server.sm.sessions.get(sid) is not None
        assert laggard.server.cons.stats.snapshots_restored > 0  # caught up by snapshot
        other.stop()
        other.close()
        assert max(m.server.cons.stats.snapshots_taken for m in c.members if m.running) > 0
        client.stop()
        client.close()
    with c:  # restart of the whole ensemble from snapshots + log tails
        client = _client(c.hosts)
        assert client.get("/snap/n119")[0] == b"119"
        assert client.exists("/snap/eph") is None  # closed with its session
        client.stop()
        client.close()
