"""A master killed before it saw the registry's membership form rejoins it on restart.

The membership is fixed when the first ``2 * quorum - 1`` replicas are seen, and every
master records it in its work dir. One that was killed before that moment used to wait,
after a restart, for that many *live* replicas, which never came with another master
down: the cluster stayed without a quorum. The membership is now also recorded in
ZooKeeper (the data of ``log_replicas``, first writer wins) and adopted from there.
(Found by a full-suite run: ``test_minority_does_no_work_then_recovers`` killed the two
non-leaders right after the election, one before it had seen the membership.)
"""

from __future__ import annotations

import json
import signal

from kazoo.client import KazooClient

from .clients import elected, wait_until
from .conftest import start_or_skip

FAST = ("--allocation-interval", "0.1s", "--zk-session-timeout", "2s")
# m0's replica znode must outlive m0 until m1 and m2 have started and seen it; under
# load two master start-ups can take longer than a 2 s session (the test then formed
# the membership without m0 and failed), so m0's session is longer.
SLOW_EXPIRY = ("--allocation-interval", "0.1s", "--zk-session-timeout", "12s")


def test_a_master_killed_before_the_membership_formed_rejoins(masters):
    zk_single = start_or_skip("zookeeper", 1, tick_ms=1000)  # sessions of 2 s to 20 s
    masters.cleanups.append(zk_single.stop)
    zk = KazooClient(hosts=zk_single.hosts)
    zk.start()
    masters.cleanups.append(zk.stop)
    zk_url = f"zk://{zk_single.hosts}/rejoin"
    replicas = "/rejoin/log_replicas"

    def live_replicas() -> list[str]:
        if not zk.exists(replicas):
            return []
        return sorted(c for c in zk.get_children(replicas) if c.startswith("replica_"))

    # m0 registers its replica, then dies before anyone else is there.
    m0 = masters.start(zk_url, 2, "m0", *SLOW_EXPIRY)
    wait_until(lambda: live_replicas() == ["replica_1"], 60, "m0's replica")
    m0.kill(signal.SIGKILL)
    # m1 and m2 form the membership with m0's not yet expired replica znode.
    m1 = masters.start(zk_url, 2, "m1", *FAST)
    m2 = masters.start(zk_url, 2, "m2", *FAST)
    wait_until(lambda: elected([m1, m2]), 60, "a leader of m1 and m2")
    recorded = json.loads(zk.get(replicas)[0])["members"]
    assert len(recorded) == 3 and "1" in recorded  # m0 (replica 1) is a member
    # One of them dies too; once its session is gone only two replicas are live.
    m1.kill(signal.SIGKILL)
    wait_until(lambda: len(live_replicas()) == 1, 60, "m0's and m1's replica znodes to expire")
    # m0 comes back: it adopts the recorded membership, so m0 + m2 are a quorum again.
    m0.start()
    wait_until(lambda: elected([m0, m2]), 60, "a leader with m0 back")
    assert "not a member" not in m0.log_tail(200)
