"""Checking a keeper history: what ZooKeeper promises, and nothing lost.

Why these checks: ZooKeeper promises linearizable *writes* and sequentially
consistent *reads* (a read is served by the client's own server, possibly
behind the leader, but a session never goes back in time; ``sync`` then read
sees every write completed before the sync began). So:

* writes and compare-and-sets of each register, plus the final read of every
  register after the cluster healed, must be linearizable
  (:mod:`paddock.sim.linearizability`, model: a versioned register — setData
  returns the new version, a ``bad-version`` answer is an observation that the
  version differed at some point of the call);
* every read must return a value some write wrote (with the version that write
  got), never a value of a write invoked after the read completed, and never
  the value of a write that certainly failed;
* per session and register, versions seen never decrease, and a session sees
  its own acknowledged writes;
* ``sync`` then read sees at least the version of every write acknowledged
  before the sync was invoked;
* sequential creates: numbers unique, in real-time order, every acknowledged
  create present at the end, nothing present that no client asked for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from paddock.chaos.workload_keeper import INITIAL_VALUE
from paddock.sim.linearizability import (
    FAIL,
    INFO,
    INVOKE,
    OK,
    HistoryEvent,
    Operation,
    check_history,
)

BAD_VERSION = "bad-version"


class VersionedRegister:
    """A znode's data and version. State: ``(version, value)``."""

    def init(self) -> tuple[int, str]:
        return (0, INITIAL_VALUE)

    def step(self, state: Any, op: Operation) -> tuple[bool, Any]:
        version, _value = state
        if op.f == "read":
            return tuple(op.output) == state, state
        if op.f == "write":
            if op.output is not None and op.output != version + 1:
                return False, state
            return True, (version + 1, op.input)
        if op.f == "cas":
            expected, new = op.input
            if op.output == BAD_VERSION:
                return version != expected, state
            if version != expected:
                return False, state
            if op.output is not None and op.output != version + 1:
                return False, state
            return True, (version + 1, new)
        raise ValueError(f"unknown operation {op.f!r}")


@dataclass
class Anomaly:
    kind: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}


@dataclass
class CheckResult:
    anomalies: list[Anomaly] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    registers_checked: int = 0
    linearizable_ops: int = 0
    search_steps: int = 0
    creates_acknowledged: int = 0
    creates_found: int = 0

    @property
    def ok(self) -> bool:
        return not self.anomalies

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "anomalies": [a.to_json() for a in self.anomalies],
            "counts": self.counts,
            "registers_checked": self.registers_checked,
            "linearizable_ops": self.linearizable_ops,
            "search_steps": self.search_steps,
            "creates_acknowledged": self.creates_acknowledged,
            "creates_found": self.creates_found,
        }


@dataclass
class _Op:
    """An invocation with its completion (None: never completed)."""

    inv: dict[str, Any]
    done: dict[str, Any] | None

    @property
    def type(self) -> str:
        return INFO if self.done is None else str(self.done["type"])

    @property
    def t_end(self) -> float:
        return float("inf") if self.done is None else float(self.done["t"])


def pair(events: list[dict[str, Any]]) -> list[_Op]:
    """Pair invocations and completions per process (events sorted by time)."""
    open_: dict[int, dict[str, Any]] = {}
    ops: list[_Op] = []
    for ev in events:
        if ev["type"] == INVOKE:
            open_[ev["p"]] = ev
        else:
            inv = open_.pop(ev["p"], None)
            if inv is not None:
                ops.append(_Op(inv, ev))
    ops.extend(_Op(inv, None) for inv in open_.values())
    ops.sort(key=lambda o: o.inv["t"])
    return ops


def _lin_events(ops: list[_Op]) -> dict[str, list[tuple[int, int, HistoryEvent]]]:
    """Per register: (time, order, event) lines for the linearizability check."""
    per_key: dict[str, list[tuple[int, int, HistoryEvent]]] = defaultdict(list)
    for o in ops:
        f = o.inv["f"]
        if f not in ("write", "cas"):
            continue
        key = o.inv["key"]
        inp = tuple(o.inv["value"]) if f == "cas" else o.inv["value"]
        per_key[key].append((o.inv["t"], 0, HistoryEvent(o.inv["p"], INVOKE, f, inp, key)))
        if o.done is None:
            continue
        kind, out = o.done["type"], o.done.get("value")
        if kind == FAIL and o.done.get("error") == BAD_VERSION:
            kind, out = OK, BAD_VERSION
        elif kind != OK:
            out = None
        per_key[key].append((o.done["t"], 1, HistoryEvent(o.inv["p"], kind, f, out, key)))
    return per_key


def check(events: list[dict[str, Any]], final: dict[str, Any] | None) -> CheckResult:
    """Check a merged history (sorted by ``t``) and the final read-back."""
    res = CheckResult()
    events = sorted(events, key=lambda e: (e["t"], e["type"] != INVOKE))
    ops = pair(events)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for o in ops:
        counts[o.inv["f"]][o.type] += 1
    res.counts = {f: dict(c) for f, c in counts.items()}

    # ---- linearizability of writes/CAS (+ the final reads)
    per_key = _lin_events(ops)
    if final is not None:
        t0 = int(final.get("t_start", 0))
        for i, (key, got) in enumerate(sorted(final["registers"].items())):
            p = -1 - i
            per_key[key].append((t0, 0, HistoryEvent(p, INVOKE, "read", None, key)))
            per_key[key].append((t0 + 1, 1, HistoryEvent(p, OK, "read", tuple(got), key)))
    for key in sorted(per_key):
        lines = sorted(per_key[key], key=lambda x: (x[0], x[1]))
        r = check_history([x[2] for x in lines], VersionedRegister(), lambda op: op.key)
        res.registers_checked += 1
        res.linearizable_ops += r.operations
        res.search_steps += r.explored
        if not r.ok:
            res.anomalies.append(Anomaly("not-linearizable", r.describe()))

    # ---- reads
    writes_by_value: dict[tuple[str, str], _Op] = {}
    for o in ops:
        if o.inv["f"] == "write":
            writes_by_value[(o.inv["key"], o.inv["value"])] = o
        elif o.inv["f"] == "cas":
            writes_by_value[(o.inv["key"], o.inv["value"][1])] = o
    acked: dict[str, list[tuple[int, int]]] = defaultdict(list)  # key -> (t_end, version)
    for o in ops:
        if o.inv["f"] in ("write", "cas") and o.type == OK:
            acked[o.inv["key"]].append((int(o.done["t"]), int(o.done["value"])))  # type: ignore[index]
    for lst in acked.values():
        lst.sort()
    seen: dict[Hashable, int] = {}
    for o in sorted(ops, key=lambda o: o.t_end):
        if o.type != OK:
            continue
        f, key = o.inv["f"], o.inv["key"]
        if f == "create":
            continue
        sess = (o.inv.get("w"), o.inv["client"], o.inv["session"], key)
        assert o.done is not None
        if f in ("write", "cas"):
            seen[sess] = max(seen.get(sess, 0), int(o.done["value"]))
            continue
        version, value = o.done["value"]
        where = f"{f} by p{o.inv['p']} of {key} -> v{version} {value!r}"
        if value == INITIAL_VALUE:
            if version != 0:
                res.anomalies.append(Anomaly("bad-read", f"{where}: initial value at v{version}"))
        else:
            w = writes_by_value.get((key, value))
            if w is None:
                res.anomalies.append(Anomaly("bad-read", f"{where}: no client wrote it"))
            elif w.type == FAIL:
                res.anomalies.append(Anomaly("bad-read", f"{where}: its write certainly failed"))
            elif w.inv["t"] > o.done["t"]:
                res.anomalies.append(Anomaly("bad-read", f"{where}: written only later"))
            elif w.type == OK and w.done is not None and w.done["value"] != version:
                res.anomalies.append(
                    Anomaly("bad-read", f"{where}: its write got v{w.done['value']}")
                )
        prev = seen.get(sess, 0)
        if version < prev:
            res.anomalies.append(
                Anomaly("session-went-back", f"{where}: the session had seen v{prev}")
            )
        seen[sess] = max(prev, version)
        if f == "sync-read":
            need = 0
            for t_end, v in acked.get(key, ()):
                if t_end >= o.inv["t"]:
                    break
                need = max(need, v)
            if version < need:
                res.anomalies.append(
                    Anomaly("stale-sync-read", f"{where}: v{need} was acknowledged before the sync")
                )

    # ---- sequential creates
    creates = [o for o in ops if o.inv["f"] == "create"]
    ok_creates = [o for o in creates if o.type == OK]
    res.creates_acknowledged = len(ok_creates)
    by_seq: dict[int, _Op] = {}
    for o in ok_creates:
        assert o.done is not None
        seq = int(o.done["value"])
        if seq in by_seq:
            res.anomalies.append(
                Anomaly("duplicate-sequence", f"n-{seq:010d} given to two creates")
            )
        by_seq[seq] = o
    # real-time order: a create acknowledged before another began has a smaller number
    done_sorted = sorted(ok_creates, key=lambda o: o.t_end)
    i, max_done = 0, -1
    for o in sorted(ok_creates, key=lambda o: o.inv["t"]):
        while i < len(done_sorted) and done_sorted[i].t_end < o.inv["t"]:
            max_done = max(max_done, int(done_sorted[i].done["value"]))  # type: ignore[index]
            i += 1
        assert o.done is not None
        if int(o.done["value"]) <= max_done:
            res.anomalies.append(
                Anomaly(
                    "sequence-order",
                    f"create {o.inv['value']!r} got {o.done['value']} after "
                    f"{max_done} had been acknowledged",
                )
            )
    if final is not None:
        present = {name: value for name, value in final["seq"].items()}
        res.creates_found = len(present)
        values_present = {v: name for name, v in present.items()}
        for o in ok_creates:
            assert o.done is not None
            name = f"n-{int(o.done['value']):010d}"
            if present.get(name) != o.inv["value"]:
                res.anomalies.append(
                    Anomaly(
                        "lost-create",
                        f"acknowledged create {o.inv['value']!r} as {name} is "
                        f"{'missing' if name not in present else 'holding ' + repr(present[name])}",
                    )
                )
        asked = {o.inv["value"]: o for o in creates}
        for value, name in values_present.items():
            asker = asked.get(value)
            if asker is None:
                res.anomalies.append(Anomaly("phantom-create", f"{name} = {value!r}"))
            elif asker.type == FAIL:
                res.anomalies.append(
                    Anomaly("failed-create-applied", f"{name} = {value!r} ({asker.done})")
                )
    else:
        res.anomalies.append(
            Anomaly("no-final-read", "the cluster did not answer the final read-back")
        )
    return res


def parse_mntr(text: str) -> dict[str, str]:
    """``mntr``'s ``key<TAB>value`` lines as a dict (other lines are skipped)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("\t")
        if sep and key.strip():
            fields[key.strip()] = value.strip()
    return fields


def leader_link_problem(mntr: str, others: int) -> str | None:
    """What is wrong with a leader's outbound consensus links, judged from its
    ``mntr`` answer; None when it leads with a link up to each of ``others``.

    Why: a leader whose link to one follower died silently keeps the majority
    serving while that follower, hearing no leader, stays read-only — the
    client-visible checks and "every keeper serves" can both pass (the follower
    may rejoin under another leader) while the link stays dead. After the heal
    every link must come back, so ``paddock_peers_connected`` must equal the
    number of other keepers.
    """
    fields = parse_mntr(mntr)
    if not fields:
        return "no mntr answer"
    state = fields.get("zk_server_state", "?")
    if state != "leader":
        return f"it answered as {state}, not leader"
    raw = fields.get("paddock_peers_connected")
    if raw is None:
        return "its mntr has no paddock_peers_connected"
    try:
        connected = int(raw)
    except ValueError:
        return f"paddock_peers_connected is {raw!r}, not a number"
    if connected != others:
        dropped = fields.get("paddock_peer_messages_dropped", "?")
        return (
            f"paddock_peers_connected {connected} of {others} other keepers "
            f"(paddock_peer_messages_dropped {dropped})"
        )
    return None


def leader_link_anomaly(
    leader: int | None, mntr: str, others: int, waited: float
) -> Anomaly | None:
    """The ``leader-link-down`` anomaly of the last look at the leader after
    ``waited`` s of waiting for its links (None: the links were all up)."""
    if leader is None:
        return Anomaly(
            "leader-link-down",
            f"{waited:.0f}s after every keeper served again there was still no "
            "single leader to ask for its links",
        )
    problem = leader_link_problem(mntr, others)
    if problem is None:
        return None
    return Anomaly(
        "leader-link-down",
        f"{waited:.0f}s after every keeper served again, leader {leader}'s outbound "
        f"consensus links were not all up: {problem}",
    )
