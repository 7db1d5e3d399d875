"""The linearizability checker accepts what is linearizable and rejects what is not."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paddock.sim.linearizability import (
    HistoryEvent,
    RegisterModel,
    check_history,
    pair_operations,
)


def inv(p, f, v=None, k="x"):
    return HistoryEvent(p, "invoke", f, v, k)


def ok(p, f, v=None, k="x"):
    return HistoryEvent(p, "ok", f, v, k)


def fail(p, f, v=None, k="x"):
    return HistoryEvent(p, "fail", f, v, k)


def info(p, f, v=None, k="x"):
    return HistoryEvent(p, "info", f, v, k)


LINEARIZABLE = {
    "empty": [],
    "sequential": [inv(0, "write", 1), ok(0, "write", 1), inv(1, "read"), ok(1, "read", 1)],
    "read initial": [inv(0, "read"), ok(0, "read", None)],
    "concurrent read sees either": [
        inv(0, "write", 1),
        ok(0, "write", 1),
        inv(0, "write", 2),
        inv(1, "read"),
        ok(1, "read", 1),
        ok(0, "write", 2),
    ],
    "concurrent read sees new": [
        inv(0, "write", 1),
        ok(0, "write", 1),
        inv(0, "write", 2),
        inv(1, "read"),
        ok(1, "read", 2),
        ok(0, "write", 2),
    ],
    "info write takes effect late": [
        inv(0, "write", 1),
        info(0, "write", 1),
        inv(1, "read"),
        ok(1, "read", None),
        inv(1, "read"),
        ok(1, "read", 1),
    ],
    "info write never takes effect": [
        inv(0, "write", 1),
        info(0, "write", 1),
        inv(1, "read"),
        ok(1, "read", None),
    ],
    "failed write did nothing": [
        inv(0, "write", 1),
        ok(0, "write", 1),
        inv(0, "write", 2),
        fail(0, "write", 2),
        inv(1, "read"),
        ok(1, "read", 1),
    ],
    "cas chain": [
        inv(0, "write", 1),
        ok(0, "write", 1),
        inv(1, "cas", (1, 2)),
        ok(1, "cas", (1, 2)),
        inv(2, "cas", (2, 3)),
        ok(2, "cas", (2, 3)),
        inv(0, "read"),
        ok(0, "read", 3),
    ],
    "concurrent cas one wins other fails": [
        inv(0, "write", 1),
        ok(0, "write", 1),
        inv(1, "cas", (1, 2)),
        inv(2, "cas", (1, 3)),
        ok(2, "cas", (1, 3)),
        fail(1, "cas", (1, 2)),
        inv(0, "read"),
        ok(0, "read", 3),
    ],
    "independent keys": [
        inv(0, "write", 1, "a"),
        inv(1, "write", 2, "b"),
        ok(0, "write", 1, "a"),
        ok(1, "write", 2, "b"),
        inv(0, "read", None, "b"),
        ok(0, "read", 2, "b"),
        inv(1, "read", None, "a"),
        ok(1, "read", 1, "a"),
    ],
    "never-completed invocation counts as info": [
        inv(0, "write", 5),
        inv(1, "read"),
        ok(1, "read", 5),
    ],
}

NOT_LINEARIZABLE = {
    "stale read": [
        inv(0, "write", 1),
        ok(0, "write", 1),
        inv(0, "write", 2),
        ok(0, "write", 2),
        inv(1, "read"),
        ok(1, "read", 1),
    ],
    "read of a value never written": [inv(0, "read"), ok(0, "read", 7)],
    "lost write": [
        inv(0, "write", 1),
        ok(0, "write", 1),
        inv(1, "read"),
        ok(1, "read", None),
    ],
    "lost write among concurrent writes": [
        inv(0, "write", 1),
        inv(1, "write", 2),
        ok(0, "write", 1),
        ok(1, "write", 2),
        inv(2, "read"),
        ok(2, "read", 2),
        inv(2, "read"),
        ok(2, "read", 1),
    ],
    "cas succeeded on wrong value": [
        inv(0, "write", 1),
        ok(0, "write", 1),
        inv(1, "cas", (2, 3)),
        ok(1, "cas", (2, 3)),
    ],
    "two cas from same value both succeed": [
        inv(0, "write", 1),
        ok(0, "write", 1),
        inv(1, "cas", (1, 2)),
        inv(2, "cas", (1, 3)),
        ok(1, "cas", (1, 2)),
        ok(2, "cas", (1, 3)),
        inv(0, "read"),
        ok(0, "read", 3),
    ],
    "failed write seen": [
        inv(0, "write", 1),
        fail(0, "write", 1),
        inv(1, "read"),
        ok(1, "read", 1),
    ],
    "read goes back in time after info write observed": [
        inv(0, "write", 1),
        info(0, "write", 1),
        inv(1, "read"),
        ok(1, "read", 1),
        inv(1, "read"),
        ok(1, "read", None),
    ],
    "real-time order violated across keys is still per-key": [
        inv(0, "write", 1, "a"),
        ok(0, "write", 1, "a"),
        inv(1, "write", 1, "b"),
        ok(1, "write", 1, "b"),
        inv(2, "read", None, "b"),
        ok(2, "read", 1, "b"),
        inv(2, "read", None, "a"),
        ok(2, "read", None, "a"),
    ],
}


@pytest.mark.parametrize("name", sorted(LINEARIZABLE))
def test_accepts_linearizable(name):
    res = check_history(LINEARIZABLE[name])
    assert res.ok, res.describe()


@pytest.mark.parametrize("name", sorted(NOT_LINEARIZABLE))
def test_rejects_non_linearizable(name):
    res = check_history(NOT_LINEARIZABLE[name])
    assert not res.ok
    assert "NOT linearizable" in res.describe()


def test_rejection_names_the_key():
    hist = [
        inv(0, "write", 1, "a"),
        ok(0, "write", 1, "a"),
        inv(1, "read", None, "b"),
        ok(1, "read", 9, "b"),
    ]
    res = check_history(hist)
    assert not res.ok and res.key == "b"
    assert res.stuck is not None and res.stuck.f == "read"


def test_pairing_rejects_malformed_histories():
    with pytest.raises(ValueError):
        pair_operations([inv(0, "read"), inv(0, "read")])
    with pytest.raises(ValueError):
        pair_operations([ok(0, "read", 1)])


def test_without_partition_single_register_semantics():
    # Without P-compositionality all keys share one register: a (nonsense) check that
    # shows the partition is what makes per-key histories independent.
    hist = [inv(0, "write", 1, "a"), ok(0, "write", 1, "a"), inv(1, "read", None, "b")]
    hist.append(ok(1, "read", None, "b"))
    assert check_history(hist).ok
    assert not check_history(hist, partition=None).ok


@st.composite
def concurrent_histories(draw):
    """A history produced by really running operations against one register per key.

    Each operation takes effect at a single instant between its invocation and its
    completion; some clients crash (``info``) before or after the effect, and a
    crashed operation may take effect later or never. Such a history is
    linearizable by construction.
    """
    n_proc = draw(st.integers(1, 5))
    keys = ["a", "b"][: draw(st.integers(1, 2))]
    steps = draw(st.integers(0, 60))
    model = RegisterModel()
    state = {k: model.init() for k in keys}
    history = []
    # process -> [op dict, phase] where phase is "pending" or "done"
    running: dict[int, dict] = {}
    orphans: list[dict] = []  # crashed, not yet effective
    next_value = 1
    next_proc = n_proc
    idle = list(range(n_proc))
    for _ in range(steps):
        choice = draw(st.integers(0, 4))
        if choice == 0 and idle:
            p = idle.pop(draw(st.integers(0, len(idle) - 1)))
            k = draw(st.sampled_from(keys))
            f = draw(st.sampled_from(["read", "write", "cas"]))
            if f == "write":
                v = next_value
                next_value += 1
            elif f == "cas":
                v = (draw(st.sampled_from([None, *range(1, next_value + 1)])), next_value)
                next_value += 1
            else:
                v = None
            history.append(HistoryEvent(p, "invoke", f, v, k))
            running[p] = {"f": f, "k": k, "v": v, "effective": False, "out": None}
        elif choice == 1 and running:
            # an operation takes effect
            pending = [p for p in sorted(running) if not running[p]["effective"]]
            if pending:
                p = draw(st.sampled_from(pending))
                op = running[p]
                k = op["k"]
                if op["f"] == "read":
                    op["out"] = state[k]
                elif op["f"] == "write":
                    state[k] = op["v"]
                else:
                    old, new = op["v"]
                    op["out"] = state[k] == old
                    if op["out"]:
                        state[k] = new
                op["effective"] = True
        elif choice == 2 and running:
            done = [p for p in sorted(running) if running[p]["effective"]]
            if done:
                p = draw(st.sampled_from(done))
                op = running.pop(p)
                if op["f"] == "read":
                    history.append(HistoryEvent(p, "ok", "read", op["out"], op["k"]))
                elif op["f"] == "write":
                    history.append(HistoryEvent(p, "ok", "write", op["v"], op["k"]))
                else:
                    t = "ok" if op["out"] else "fail"
                    history.append(HistoryEvent(p, t, "cas", op["v"], op["k"]))
                idle.append(p)
        elif choice == 3 and running:
            p = draw(st.sampled_from(sorted(running)))
            op = running.pop(p)
            history.append(HistoryEvent(p, "info", op["f"], op["v"], op["k"]))
            if not op["effective"]:
                orphans.append(op)
            # a crashed process is replaced by a fresh one (Jepsen convention)
            idle.append(next_proc)
            next_proc += 1
        elif choice == 4 and orphans:
            op = orphans.pop(draw(st.integers(0, len(orphans) - 1)))
            if draw(st.booleans()) and op["f"] != "read":
                k = op["k"]
                if op["f"] == "write":
                    state[k] = op["v"]
                else:
                    old, new = op["v"]
                    if state[k] == old:
                        state[k] = new
    return history


@settings(max_examples=300, deadline=None)
@given(concurrent_histories())
def test_real_executions_are_linearizable(history):
    res = check_history(history)
    assert res.ok, (res.describe(), history)


@settings(max_examples=200, deadline=None)
@given(concurrent_histories(), st.data())
def test_corrupted_read_is_rejected(history, data):
    reads = [i for i, e in enumerate(history) if e.type == "ok" and e.f == "read"]
    if not reads:
        return
    i = data.draw(st.sampled_from(reads))
    e = history[i]
    # A value nobody ever wrote cannot be read.
    bad = list(history)
    bad[i] = HistoryEvent(e.process, "ok", "read", -1, e.key)
    assert not check_history(bad).ok


def test_large_concurrent_history_is_fast():
    """Many processes, many operations, several info writes: memoization keeps it quick."""
    import random

    rng = random.Random(7)
    history = []
    state = None
    value = 0
    # 8 processes hammer one key in overlapping rounds; a few crash.
    for _ in range(150):
        procs = rng.sample(range(8), 4)
        effects = []
        for p in procs:
            f = rng.choice(["read", "write", "write", "cas"])
            if f == "write":
                value += 1
                v = value
            elif f == "cas":
                value += 1
                v = (state, value)
            else:
                v = None
            history.append(HistoryEvent(p, "invoke", f, v, "k"))
            effects.append((p, f, v))
        rng.shuffle(effects)
        outs = []
        for p, f, v in effects:
            if f == "read":
                outs.append((p, "ok", f, state))
            elif f == "write":
                state = v
                outs.append((p, "ok", f, v))
            else:
                if state == v[0]:
                    state = v[1]
                    outs.append((p, "ok", f, v))
                else:
                    outs.append((p, "fail", f, v))
        rng.shuffle(outs)
        for p, t, f, v in outs:
            if f == "write" and rng.random() < 0.05:
                t = "info"
            history.append(HistoryEvent(p, t, f, v, "k"))
    t0 = time.perf_counter()
    res = check_history(history)
    elapsed = time.perf_counter() - t0
    assert res.ok, res.describe()
    assert elapsed < 5.0
