"""The marathon leader latch against real ZooKeeper: lowest znode leads, standbys know
the leader's address, abdication hands over, a suspended session stops the leader at
once and a restored one resumes it, a lost session is reported."""

from __future__ import annotations

import threading
import time

import pytest
from kazoo.client import KazooClient

from paddock.marathon.scheduler.leader import LeaderLatch
from paddock.testing import zk_ensemble, zookeeper_unavailable_reason


def wait_for(cond, timeout=15.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise TimeoutError(what)


class Watched:
    def __init__(self, hosts: str, path: str, ident: str, timeout: float = 10.0):
        self.client = KazooClient(hosts=hosts, timeout=timeout)
        self.client.start(timeout=20)
        self.changes = threading.Event()
        self.latch = LeaderLatch(self.client, path, ident, self.changes.set)

    def close(self):
        self.client.stop()
        self.client.close()


@pytest.fixture
def zk():
    reason = zookeeper_unavailable_reason()
    if reason is not None:
        pytest.skip(f"zookeeper: {reason}")
    ens = zk_ensemble("zookeeper", 1, tick_ms=500)
    yield ens
    ens.stop()


def test_lowest_leads_standby_knows_leader_abdication_hands_over(zk):
    a = Watched(zk.hosts, "/m/leader", "127.0.0.1:8080")
    b = Watched(zk.hosts, "/m/leader", "127.0.0.1:8081")
    try:
        a.latch.start()
        wait_for(lambda: a.latch.leading, what="a leads")
        b.latch.start()
        wait_for(lambda: b.latch.leader_address == "127.0.0.1:8080", what="b knows a")
        assert not b.latch.leading
        a.latch.abdicate()
        assert not a.latch.leading
        wait_for(lambda: b.latch.leading, what="b leads")
        assert b.latch.leader_address == "127.0.0.1:8081"
        # a left the election for good: it does not lead again
        time.sleep(0.3)
        assert not a.latch.leading
    finally:
        a.close()
        b.close()


def test_suspended_stops_at_once_and_lost_session_hands_over(zk):
    a = Watched(zk.hosts, "/s/leader", "a:1", timeout=8.0)
    b = Watched(zk.hosts, "/s/leader", "b:1", timeout=8.0)
    try:
        a.latch.start()
        b.latch.start()
        wait_for(lambda: a.latch.leading and b.latch.leader_address == "a:1", what="a leads")
        # The server goes away: a is SUSPENDED and stops leading without any delay.
        zk.stop_member(0)
        wait_for(lambda: not a.latch.connected, 10, "a suspended")
        assert not a.latch.leading
        zk.start_member(0)
        # Back within the session timeout, a leads again with the same session; if the
        # restart took too long (a loaded machine), a's session is lost and b must lead.
        wait_for(lambda: a.latch.leading or a.latch.lost, 40, "a leads again or lost")
        if a.latch.lost:
            wait_for(lambda: b.latch.leading, 30, "b leads after a's session was lost")
            assert not a.latch.leading
            return
        assert not b.latch.leading
        # a's session ends (the process dies): b takes over.
        a.close()
        wait_for(lambda: b.latch.leading, 20, "b leads")
        assert a.latch.lost or not a.latch.leading
    finally:
        a.close()
        b.close()
