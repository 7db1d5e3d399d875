"""A keeper follower ``kill -9``'d under write load rejoins, every time.

Real processes (so the real uvloop event loop and transport), real sockets and
fsync. The chaos-run liveness finding (docs/reliability.md) was a follower that
never rejoined after such a kill because the leader's link to it had died
silently; the precise, deterministic reduction is
``tests/consensus/test_transport_link_death.py``. This test is the end-to-end
guard: a follower killed while the leader streams appends to it (so the link
is busy when the connection is reset) must be a follower again, in the same
term's quorum, within a bound, round after round, with one leader throughout.
"""

from __future__ import annotations

import time

import pytest
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

from paddock.testing import KeeperEnsemble
from paddock.testing.zkwire import four_letter_word

pytestmark = pytest.mark.timeout(180)

ROUNDS = 4
#: Seconds a restarted follower may take to serve again (generous: the CI
#: machine is shared; an idle machine takes ~1-2 s).
REJOIN_BOUND = 30.0


def _client(hosts: str) -> KazooClient:
    client = KazooClient(
        hosts=hosts,
        timeout=10.0,
        connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.2),
        command_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.2, deadline=30),
    )
    client.start(timeout=30)
    return client


def test_follower_killed_under_load_rejoins_every_time(tmp_path):
    ensemble = KeeperEnsemble(size=3, tick_ms=200, base_dir=tmp_path)
    with ensemble.start():
        leader = ensemble.wait_leader()
        # The client talks to the leader only, so killing a follower never
        # disturbs it and the load keeps flowing to the victim's link.
        client = _client(ensemble.address(leader))
        try:
            client.create("/load", b"")
            rejoin_times = []
            for rnd in range(ROUNDS):
                follower = next(i for i in range(3) if i != leader)
                if rnd % 2:
                    follower = next(i for i in range(3) if i not in (leader, follower))
                # Stream appends to the follower, and kill it in the middle.
                pending = [client.set_async("/load", b"x" * 512) for _ in range(400)]
                ensemble.kill(follower)
                for p in pending:
                    p.get(timeout=30)  # the other two keep the quorum
                ensemble.start_member(follower, wait=False)
                t0 = time.monotonic()
                while ensemble.mode(follower) != "follower":
                    if time.monotonic() - t0 > REJOIN_BOUND:
                        raise AssertionError(
                            f"round {rnd}: keeper {follower} not a follower after "
                            f"{REJOIN_BOUND}s: {ensemble.modes()}\n{ensemble.log_tail(leader)}"
                        )
                    time.sleep(0.05)  # polling an external process
                rejoin_times.append(time.monotonic() - t0)
                assert ensemble.leader() == leader, "killing a follower moved the leadership"
            # The leader's links to both followers are up (mntr shows them).
            mntr = four_letter_word("127.0.0.1", ensemble.members[leader].client_port, "mntr")
            assert "paddock_peers_connected\t2" in mntr, mntr
            # It serves the latest data, not just a leader's name.
            client.set("/load", b"final")
            ro = _client(ensemble.address(next(i for i in range(3) if i != leader)))
            try:
                ro.sync("/load")
                assert ro.get("/load")[0] == b"final"
            finally:
                ro.stop()
                ro.close()
        finally:
            client.stop()
            client.close()
