"""Four-letter word formatting and the whitelist."""

from __future__ import annotations

from paddock.keeper.config import ALL_4LW
from paddock.keeper.fourletter import ConnectionReport, ServerReport, answer


def _report(**kw) -> ServerReport:
    base = dict(
        server_id=1,
        mode="leader",
        serving=True,
        zxid=0x100000005,
        node_count=7,
        ephemeral_count=1,
        watch_count=2,
        watched_paths=2,
        watching_sessions=1,
        approximate_data_size=99,
        received=10,
        sent=11,
        outstanding=0,
        latency_min_ms=0,
        latency_avg_ms=0,
        latency_max_ms=0,
        connections=[ConnectionReport("127.0.0.1", 5555, 0x42, 4000, 3, 4, 0, 5)],
        session_count=1,
        ephemerals={0x42: ["/e"]},
        config_lines=["clientPort=2181", "server.1=127.0.0.1:1:2:participant"],
        followers=2,
        synced_followers=2,
    )
    base.update(kw)
    return ServerReport(**base)


def test_ruok_and_whitelist():
    assert answer("ruok", _report(), ALL_4LW) == "imok"
    assert "not in the whitelist" in answer("ruok", _report(), frozenset({"srvr"}))


def test_srvr_stat_mode_lines():
    text = answer("srvr", _report(), ALL_4LW)
    assert "Mode: leader\n" in text and "Zxid: 0x100000005" in text and "Node count: 7" in text
    assert "Clients:" in answer("stat", _report(mode="follower"), ALL_4LW)
    assert "not currently serving" in answer("srvr", _report(serving=False), ALL_4LW)


def test_mntr_is_tab_separated():
    lines = answer("mntr", _report(), ALL_4LW).splitlines()
    pairs = dict(line.split("\t", 1) for line in lines)
    assert pairs["zk_server_state"] == "leader"
    assert pairs["zk_znode_count"] == "7"
    assert pairs["zk_followers"] == "2"


def test_other_words():
    r = _report()
    assert answer("isro", r, ALL_4LW) == "rw"
    assert "zookeeper.version=3.8" in answer("envi", r, ALL_4LW)
    assert "server.1=" in answer("conf", r, ALL_4LW)
    assert "sid=0x42" in answer("cons", r, ALL_4LW)
    assert "Total watches:2" in answer("wchs", r, ALL_4LW)
    assert "\t/e" in answer("dump", r, ALL_4LW)
