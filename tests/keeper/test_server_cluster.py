"""keeper as a 3-server ensemble: replication, failover, session moves, durability."""

from __future__ import annotations

import time

import pytest
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry
from keeper_harness import Cluster, four_letter, wait_until

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
