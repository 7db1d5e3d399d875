"""SIGTERM of the leading marathon is an orderly stop: it stops serving, leaves the
master, closes its ZooKeeper session and exits 0, so a standby leads at once instead of
after the session timeout (uvicorn used to re-raise the signal and end the process
before any of that ran)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from scheduler_cluster import Cluster, leader_of, wait_until

from paddock.testing import zk_ensemble, zookeeper_unavailable_reason

pytestmark = pytest.mark.timeout(150)

SESSION_TIMEOUT = 30.0  # long, so a takeover before it proves the session was closed


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest):
    reason = zookeeper_unavailable_reason()
    if reason is not None:
        pytest.skip(f"zookeeper: {reason}")
    ens = zk_ensemble("zookeeper", 1, tick_ms=2000)  # sessions up to 40 s
    c = Cluster(ens.hosts, tmp_path)
    failed_before = request.session.testsfailed
    try:
        yield c
    finally:
        if request.session.testsfailed > failed_before:
            print(c.logs(80))
        c.stop()
        ens.stop()


def test_sigterm_hands_leadership_over_without_waiting_for_the_session(cluster: Cluster):
    cluster.start_master()
    extra = ("--zk-session-timeout", str(SESSION_TIMEOUT))
    marathons = [cluster.start_marathon(*extra), cluster.start_marathon(*extra)]
    leader = wait_until(lambda: leader_of(marathons), 60, "a marathon leader")
    standby = next(m for m in marathons if m is not leader)
    assert leader.proc is not None

    leader.proc.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    assert leader.proc.wait(timeout=30) == 0
    wait_until(lambda: leader_of([standby]), 60, "the standby to lead")
    took = time.monotonic() - stopped
    assert took < SESSION_TIMEOUT / 2, f"standby led {took:.1f}s after SIGTERM"
    assert "stopping (signal)" in leader.log_tail(200)
