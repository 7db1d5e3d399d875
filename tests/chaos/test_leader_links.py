"""The after-heal link check: a leader's ``mntr`` must show a link up to every
other keeper, or the run reports ``leader-link-down`` with what it saw."""

from __future__ import annotations

from paddock.chaos.checker import leader_link_anomaly, leader_link_problem, parse_mntr


def mntr(state="leader", connected="4", dropped="0", extra=""):
    lines = [
        "zk_version\t3.8.4-paddock, built on 2026-11-26",
        "zk_server_id\t5",
        f"zk_server_state\t{state}",
        "zk_znode_count\t120",
    ]
    if state == "leader":
        lines += ["zk_followers\t4", "zk_synced_followers\t4"]
    if connected is not None:
        lines.append(f"paddock_peers_connected\t{connected}")
    lines.append(f"paddock_peer_messages_dropped\t{dropped}")
    return "\n".join(lines) + "\n" + extra


def test_parse_mntr_reads_tab_separated_pairs_and_skips_other_lines():
    fields = parse_mntr("zk_a\t1\nnot a pair\n\tno key\nzk_b\tx y\n")
    assert fields == {"zk_a": "1", "zk_b": "x y"}


def test_leader_with_every_link_up_passes():
    assert leader_link_problem(mntr(connected="4"), others=4) is None
    assert leader_link_anomaly(5, mntr(connected="4"), others=4, waited=60) is None


def test_one_dead_link_is_leader_link_down_with_the_figures():
    text = mntr(connected="3", dropped="18234")
    problem = leader_link_problem(text, others=4)
    assert problem is not None and "3 of 4" in problem and "18234" in problem
    a = leader_link_anomaly(5, text, others=4, waited=60)
    assert a is not None and a.kind == "leader-link-down"
    assert "leader 5" in a.detail and "60s" in a.detail and "3 of 4" in a.detail


def test_more_links_than_other_keepers_is_also_wrong():
    assert leader_link_problem(mntr(connected="5"), others=4) is not None


def test_a_keeper_that_no_longer_leads_is_not_taken_as_proof():
    problem = leader_link_problem(mntr(state="follower", connected="4"), others=4)
    assert problem is not None and "follower" in problem


def test_missing_or_malformed_figure_and_no_answer_are_problems():
    assert "no paddock_peers_connected" in (leader_link_problem(mntr(connected=None), 4) or "")
    assert "not a number" in (leader_link_problem(mntr(connected="lots"), 4) or "")
    assert leader_link_problem("", 4) == "no mntr answer"
    assert leader_link_problem("This ZooKeeper instance is not currently serving\n", 4)


def test_no_single_leader_to_ask_is_reported():
    a = leader_link_anomaly(None, "", others=2, waited=30)
    assert a is not None and a.kind == "leader-link-down" and "no single leader" in a.detail
