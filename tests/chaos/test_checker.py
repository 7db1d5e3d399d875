"""The keeper-history checker finds what it must: lost writes, stale and
unknown reads, sessions going back, lost or reordered sequential creates."""

from __future__ import annotations

from paddock.chaos.checker import check
from paddock.chaos.nemesis import plan

K = "/chaos/r/g0-k0"


class H:
    """Builds a history; each call is one operation [invoke, completion]."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.t = 0

    def op(self, p, f, value, typ="ok", out=None, key=K, session=1, error=None, t_end=None):
        self.t += 10
        inv = {"p": p, "f": f, "key": key, "client": p, "session": session, "w": 1}
        self.events.append({**inv, "type": "invoke", "value": value, "t": self.t})
        self.t += 10
        done = {**inv, "type": typ, "value": out if typ == "ok" else value, "t": t_end or self.t}
        if error:
            done["error"] = error
        self.events.append(done)


def final(reg=None, seq=None):
    return {"registers": reg or {K: [0, "init"]}, "seq": seq or {}, "t_start": 10**9}


def kinds(res):
    return sorted({a.kind for a in res.anomalies})


def test_clean_history_passes():
    h = H()
    h.op(0, "write", "a", out=1)
    h.op(1, "read", None, out=[1, "a"])
    h.op(1, "cas", [1, "b"], out=2)
    h.op(0, "cas", [1, "c"], typ="fail", error="bad-version")
    h.op(0, "sync-read", None, out=[2, "b"])
    h.op(2, "create", "x", out=0, key="/chaos/seq")
    h.op(2, "create", "y", out=1, key="/chaos/seq")
    res = check(h.events, final({K: [2, "b"]}, {"n-0000000000": "x", "n-0000000001": "y"}))
    assert res.ok, res.anomalies
    assert res.creates_acknowledged == 2


def test_lost_acknowledged_write_is_not_linearizable():
    h = H()
    h.op(0, "write", "a", out=1)
    h.op(0, "write", "b", out=2)
    res = check(h.events, final({K: [1, "a"]}))
    assert "not-linearizable" in kinds(res)


def test_two_writes_with_one_version_are_caught():
    h = H()
    h.op(0, "write", "a", out=1)
    h.op(1, "write", "b", out=1)
    assert "not-linearizable" in kinds(check(h.events, final({K: [1, "b"]})))


def test_bad_version_answer_when_the_version_matched_is_caught():
    h = H()
    h.op(0, "write", "a", out=1)
    h.op(1, "cas", [1, "b"], typ="fail", error="bad-version")
    assert "not-linearizable" in kinds(check(h.events, final({K: [1, "a"]})))


def test_info_write_may_or_may_not_apply():
    h = H()
    h.op(0, "write", "a", typ="info")
    assert check(h.events, final({K: [1, "a"]})).ok
    assert check(h.events, final({K: [0, "init"]})).ok


def test_stale_sync_read_and_session_going_back():
    h = H()
    h.op(0, "write", "a", out=1)
    h.op(1, "sync-read", None, out=[0, "init"])
    assert "stale-sync-read" in kinds(check(h.events, final({K: [1, "a"]})))
    h = H()
    h.op(0, "write", "a", out=1)
    h.op(1, "read", None, out=[1, "a"])
    h.op(1, "read", None, out=[0, "init"])
    assert "session-went-back" in kinds(check(h.events, final({K: [1, "a"]})))


def test_read_of_unknown_or_failed_or_future_value():
    h = H()
    h.op(1, "read", None, out=[1, "zzz"])
    assert "bad-read" in kinds(check(h.events, final()))
    h = H()
    h.op(0, "write", "a", typ="fail", error="NoNodeError")
    h.op(1, "read", None, out=[1, "a"])
    assert "bad-read" in kinds(check(h.events, final()))


def test_sequential_creates_lost_duplicated_reordered_phantom():
    S = "/chaos/seq"
    h = H()
    h.op(0, "create", "x", out=5, key=S)
    h.op(1, "create", "y", out=3, key=S)  # began after x was acknowledged
    res = check(h.events, final(seq={"n-0000000003": "y", "n-0000000009": "ghost"}))
    assert {"lost-create", "sequence-order", "phantom-create"} <= set(kinds(res))
    h = H()
    h.op(0, "create", "x", out=5, key=S)
    h.op(1, "create", "y", out=5, key=S)
    assert "duplicate-sequence" in kinds(check(h.events, final(seq={"n-0000000005": "x"})))


def test_no_final_read_is_an_anomaly():
    h = H()
    h.op(0, "write", "a", out=1)
    assert "no-final-read" in kinds(check(h.events, None))


def test_fault_plan_is_seeded_and_bounded():
    a = plan(7, 120, ("partition", "kill", "pause", "slow"), 5)
    assert a == plan(7, 120, ("partition", "kill", "pause", "slow"), 5)
    assert a != plan(8, 120, ("partition", "kill", "pause", "slow"), 5)
    assert all(0 < f.start < f.end <= 119 for f in a)
    assert {f.kind for f in a} == {"partition", "kill", "pause", "slow"}
