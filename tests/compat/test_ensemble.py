"""The harness itself: ensembles start, report their leader, survive kill/restart, stop."""

from __future__ import annotations

import signal

import pytest
from kazoo.client import KazooClient

from paddock.testing.ports import free_ports
from paddock.testing.zkwire import four_letter_word, probe_session


def test_free_ports_are_distinct_and_bindable():
    import socket

    ports = free_ports(20)
    assert len(set(ports)) == 20
    for port in ports[:3]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_standalone_serves_and_reports_mode(standalone):
    (host, port) = standalone.hosts.split(":")
    assert four_letter_word(host, int(port), "ruok") == "imok"
    assert standalone.mode(0) == "standalone"
    assert standalone.leader() == 0
    assert probe_session(host, int(port))


def test_cluster_has_one_leader_and_replicates(cluster):
    modes = cluster.modes()
    assert sorted(modes.values()) == ["follower", "follower", "leader"]
    assert cluster.leader() == next(i for i, m in modes.items() if m == "leader")
    writer = KazooClient(hosts=cluster.address(0), timeout=10)
    reader = KazooClient(hosts=cluster.address(2), timeout=10)
    writer.start(timeout=15)
    reader.start(timeout=15)
    try:
        path = writer.create("/ensemble-smoke-", b"v", sequence=True)
        reader.sync(path)
        assert reader.get(path)[0] == b"v"
        writer.delete(path)
    finally:
        writer.stop()
        reader.stop()


def test_kill_leader_restart_and_stop(kind, ensemble_factory):
    ensemble = ensemble_factory(kind, 3)
    old = ensemble.leader()
    assert old is not None
    ensemble.kill(old, signal.SIGKILL)
    assert not ensemble.members[old].running
    new = ensemble.wait_leader(timeout=30)
    assert new != old
    client = KazooClient(hosts=ensemble.hosts, timeout=10)
    client.start(timeout=20)
    try:
        client.create("/after-failover", b"x")
        ensemble.restart(old)
        assert ensemble.mode(old) == "follower"
        # The restarted member caught up with the write made while it was down.
        other = KazooClient(hosts=ensemble.address(old), timeout=10)
        other.start(timeout=20)
        try:
            other.sync("/after-failover")
            assert other.get("/after-failover")[0] == b"x"
        finally:
            other.stop()
    finally:
        client.stop()
    processes = [m.process for m in ensemble.members]
    ensemble.stop()
    assert all(p is not None and p.poll() is not None for p in processes)
    assert not ensemble.directory.exists()


def test_unknown_kind_is_refused():
    from paddock.testing import zk_ensemble

    with pytest.raises(ValueError, match="unknown ensemble kind"):
        zk_ensemble("etcd", 1)


def test_first_start_retries_on_a_port_taken_meanwhile(kind):
    import socket

    from .conftest import unavailable_reason

    reason = unavailable_reason(kind)
    if reason is not None:
        pytest.skip(f"{kind}: {reason}")
    from paddock.testing import KeeperEnsemble, ZooKeeperEnsemble

    ensemble = ZooKeeperEnsemble(1) if kind == "zookeeper" else KeeperEnsemble(1)
    squatter = socket.socket()
    try:
        squatter.bind(("127.0.0.1", ensemble.members[0].client_port))
        squatter.listen()
        taken = ensemble.members[0].client_port
        ensemble.start()
        assert ensemble.members[0].client_port != taken
        assert ensemble.mode(0) == "standalone"
    finally:
        squatter.close()
        ensemble.stop()
