"""Checking a cluster run: Marathon's and Mesos's promises under faults.

Inputs: the workload's history (requests with invoke/complete times and outcome),
its samples (``/v2/tasks``, every agent's ``/state``, once a second), the faults
(which host was killed or paused when) and the leadership intervals parsed from the
masters' and marathons' own logs. Checks:

* **converged**: within the bound after the faults stopped, every app runs an
  instance count the history allows (the last acknowledged deploy/scale, or one
  with an unknown outcome that may have been applied after it), Marathon and the
  agents agree, no deployment is left;
* **task-twice**: no task id runs on two agents in the same sample (nor ever on
  two different agents: Marathon task ids are unique per launch);
* **over-capacity**: no app has more tasks running (in Marathon's view) than its
  upgradeStrategy allows: ``floor(target * (1 + maximumOverCapacity))``, where the
  target is any instance count that may have been in force within the last
  ``GRACE`` seconds, when one of them was launched (first seen) since the last
  request for the app — Marathon started one too many. Surplus tasks that were
  all there before (a scale-down whose kills are slow under faults) are left to
  the convergence check;
* **lost-task**: a task Marathon reported RUNNING is still running at the end,
  unless a scale-down or restart of its app was asked for (not refused) after
  it was first seen in any state, or up to 5 s before;
* **two-leaders**: no two masters (and no two marathons) on different hosts act as
  leader at the same time, judged from the intervals each logged ("elected" ..
  "stopped acting"), cut at a ``kill -9`` of its host and with the time its host was
  paused (SIGSTOP: it does nothing) taken out. The time a deposed leader needs to
  notice is *not* allowed for: once another leads, the old one must have stopped.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paddock.chaos.checker import Anomaly
from paddock.chaos.workload_cluster import APP_PREFIX, STRATEGIES, allowed_final, task_app

GRACE = 10.0  # s: a scale-down's kills may take this long to show
DEATH_SLACK = 1.0  # s: a kill -9 recorded at t reaches every process by t + this
RESTART_WINDOW = 120.0  # s: a restart asked for this long ago may still be replacing tasks

_TS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")
START_EDGES = {
    "master": ("elected and recovered", "acting as leader again"),
    "marathon": ("started acting as leader",),
}
STOP_EDGES = {
    "master": ("stopped acting as leader",),
    "marathon": ("stopped acting as leader",),
}


@dataclass
class Interval:
    kind: str
    host: int
    start: float
    end: float


@dataclass
class ClusterCheck:
    anomalies: list[Anomaly] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    samples: int = 0
    tasks_seen: int = 0
    converged_at: float | None = None
    leader_intervals: list[Interval] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.anomalies

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "anomalies": [{"kind": a.kind, "detail": a.detail} for a in self.anomalies],
            "counts": self.counts,
            "samples": self.samples,
            "tasks_seen": self.tasks_seen,
            "converged_at": self.converged_at,
            "leader_intervals": [i.__dict__ for i in self.leader_intervals],
        }


# ------------------------------------------------------------------ leadership


def log_edges(path: Path, kind: str, wall0: float) -> list[tuple[float, str]]:
    """(run seconds, 'start'|'stop') for every leadership edge the daemon logged."""
    out: list[tuple[float, str]] = []
    if not path.exists():
        return out
    with open(path, errors="replace") as f:
        for line in f:
            edge = None
            if any(s in line for s in START_EDGES[kind]):
                edge = "start"
            elif any(s in line for s in STOP_EDGES[kind]):
                edge = "stop"
            if edge is None:
                continue
            m = _TS.match(line)
            if m is None:
                continue
            wall = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
            out.append((wall + int(m.group(2)) / 1000 - wall0, edge))
    return out


def intervals(
    edges: list[tuple[float, str]],
    kind: str,
    host: int,
    deaths: list[float],
    pauses: list[tuple[float, float]],
    end: float,
) -> list[Interval]:
    """Acting intervals from the edges; an open one ends at the next death of the
    host's processes (kill -9) or the run's end; paused stretches are cut out."""
    raw: list[tuple[float, float]] = []
    opened: float | None = None
    # A kill of several hosts is recorded when it starts and reaches the last process
    # some milliseconds later: an edge logged within DEATH_SLACK after a recorded kill
    # was logged by the dying process (a restarted one takes seconds to get that far).
    edges = [
        (t, e)
        for t, e in edges
        if not (e == "start" and any(d < t <= d + DEATH_SLACK for d in deaths))
    ]
    for t, e in sorted(edges):
        if opened is not None:
            died = [d for d in deaths if opened <= d <= t]
            if died:
                raw.append((opened, died[0]))
                opened = None
        if e == "start" and opened is None:
            opened = t
        elif e == "stop" and opened is not None:
            raw.append((opened, t))
            opened = None
    if opened is not None:
        died = [d for d in deaths if d >= opened]
        raw.append((opened, died[0] if died else end))
    out = []
    for a, b in raw:
        pieces = [(a, b)]
        for pa, pb in pauses:
            nxt = []
            for x, y in pieces:
                if pb <= x or pa >= y:
                    nxt.append((x, y))
                    continue
                if x < pa:
                    nxt.append((x, pa))
                if pb < y:
                    nxt.append((pb, y))
            pieces = nxt
        out += [Interval(kind, host, x, y) for x, y in pieces if y > x]
    return out


def two_leaders(ivs: list[Interval]) -> list[Anomaly]:
    out = []
    for kind in ("master", "marathon"):
        mine = sorted((i for i in ivs if i.kind == kind), key=lambda i: i.start)
        for i, a in enumerate(mine):
            for b in mine[i + 1 :]:
                if b.start >= a.end:
                    break
                if b.host != a.host:
                    out.append(
                        Anomaly(
                            "two-leaders",
                            f"{kind}s on h{a.host} ({a.start:.2f}-{a.end:.2f}s) and "
                            f"h{b.host} ({b.start:.2f}-{b.end:.2f}s) both acted as leader "
                            f"for {min(a.end, b.end) - b.start:.2f}s",
                        )
                    )
    return out


# ------------------------------------------------------------------ history


def _ops(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per request: f, app, value, t_inv, t_end (None: never completed), type."""
    inv: dict[int, dict[str, Any]] = {}
    done: dict[int, dict[str, Any]] = {}
    for ev in history:
        if "f" not in ev:
            continue
        if ev["type"] == "invoke":
            inv[ev["op"]] = ev
        else:
            done[ev["op"]] = ev
    out = []
    for op, i in inv.items():
        d = done.get(op)
        out.append(
            {
                "op": op,
                "f": i["f"],
                "app": i["app"],
                "value": i["value"],
                "t_inv": i["t"] / 1e9,
                "t_end": d["t"] / 1e9 if d else None,
                "type": d["type"] if d else "info",
            }
        )
    return sorted(out, key=lambda o: o["t_inv"])


def targets_at(ops: list[dict[str, Any]], t: float, grace: float) -> list[int]:
    """Instance counts of one app that may have been in force within [t - grace, t]."""
    sizing = [o for o in ops if o["f"] in ("deploy", "scale") and o["type"] != "fail"]
    out = []
    for i, o in enumerate(sizing):
        if o["t_inv"] > t:
            break
        later_ok = [
            p["t_end"] for p in sizing[i + 1 :] if p["type"] == "ok" and p["t_inv"] > o["t_inv"]
        ]
        superseded = min(later_ok) if later_ok else math.inf
        if superseded >= t - grace:
            out.append(int(o["value"]))
    return out


def _limit(app: str, targets: list[int], restarting: bool = False) -> int:
    """Most tasks Marathon may run for ``app`` with any of ``targets`` in force.

    ``floor(n * (1 + maximumOverCapacity))``; during a restart Marathon's
    ``computeRestartStrategy`` allows one more when ``ceil(n * minimumHealthCapacity)``
    equals that ceiling (else nothing could start before an old one is killed, e.g. a
    1-instance app with the default strategy).
    """
    try:
        index = int(app[len(APP_PREFIX) :])
    except ValueError:
        index = 0
    health, over = STRATEGIES[index % len(STRATEGIES)]
    limit = 0
    for n in targets:
        ceiling = math.floor(n * (1 + over) + 1e-9)
        if restarting and n > 0 and math.ceil(n * health - 1e-9) == ceiling:
            ceiling += 1
        limit = max(limit, ceiling)
    return limit


def check(
    history: list[dict[str, Any]],
    samples: list[dict[str, Any]],
    final: dict[str, Any] | None,
    converged_at: float | None,
    faults: list[dict[str, Any]],
    leader_intervals: list[Interval],
) -> ClusterCheck:
    res = ClusterCheck(samples=len(samples), leader_intervals=leader_intervals)
    ops = _ops(history)
    by_app: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in ops:
        by_app[o["app"]].append(o)
        res.counts.setdefault(o["f"], {}).setdefault(o["type"], 0)
        res.counts[o["f"]][o["type"]] += 1

    # task-twice: the same task id on two agents in one sample, or ever
    where: dict[str, set[str]] = defaultdict(set)
    for s in samples:
        seen: dict[str, list[str]] = defaultdict(list)
        for agent, ids in (s.get("agents") or {}).items():
            for tid in ids or []:
                seen[tid].append(agent)
                where[tid].add(agent)
        for tid, agents in seen.items():
            if len(agents) > 1:
                res.anomalies.append(
                    Anomaly("task-twice", f"task {tid} running on {agents} at {s['t'] / 1e9:.1f}s")
                )
    for tid, places in where.items():
        if len(places) > 1:
            res.anomalies.append(
                Anomaly("task-twice", f"task {tid} ran on several agents: {sorted(places)}")
            )

    # over-capacity (Marathon's view) and the tasks Marathon acknowledged RUNNING
    acked: dict[str, tuple[float, str]] = {}
    first_seen: dict[str, float] = {}  # in any state, by Marathon or an agent
    reported: set[tuple[str, int]] = set()
    for s in samples:
        t = s["t"] / 1e9
        for ids in (s.get("agents") or {}).values():
            for tid in ids or []:
                first_seen.setdefault(tid, t)
        if s.get("tasks") is None:
            continue
        running: dict[str, list[str]] = defaultdict(list)
        for task in s["tasks"]:
            first_seen.setdefault(task["id"], t)
            if task["state"] == "TASK_RUNNING":
                running[task["app"]].append(task["id"])
                acked.setdefault(task["id"], (t, task.get("host") or "?"))
        for app, ids in running.items():
            ops_app = by_app.get(app, [])
            targets = targets_at(ops_app, t, GRACE)
            restarting = any(
                o["f"] == "restart"
                and o["type"] != "fail"
                and t - RESTART_WINDOW <= o["t_inv"] <= t
                for o in ops_app
            )
            limit = _limit(app, targets, restarting)
            if len(ids) <= limit or (app, int(t)) in reported:
                continue
            # Too many: an anomaly if Marathon launched one of them since the last
            # request that could change the app (a scale-down whose kills are slow
            # is not a launch beyond the strategy; convergence judges it at the end).
            since = max((o["t_inv"] for o in ops_app if o["type"] != "fail" and o["t_inv"] <= t),
                        default=0.0)  # fmt: skip
            launched = sorted(i for i in ids if first_seen[i] >= since)
            if launched:
                reported.add((app, int(t)))
                res.anomalies.append(
                    Anomaly(
                        "over-capacity",
                        f"{app}: {len(ids)} tasks running at {t:.1f}s, at most {limit} allowed "
                        f"(targets {targets}); launched since the last request at "
                        f"{since:.1f}s: {launched}",
                    )
                )
    res.tasks_seen = len(acked)

    # converged, and the final counts allowed
    allowed = allowed_final(history)
    res.converged_at = converged_at
    if final is None:
        last = samples[-1] if samples else None
        detail = "no sample" if last is None else _counts_detail(last, allowed)
        res.anomalies.append(Anomaly("not-converged", detail))
        return res
    final_running: set[str] = set()
    per_app: dict[str, int] = defaultdict(int)
    for ids in (final.get("agents") or {}).values():
        for tid in ids or []:
            final_running.add(tid)
            per_app[task_app(tid)] += 1
    for app in set(allowed) | set(per_app):
        if per_app.get(app, 0) not in allowed.get(app, {0}):
            res.anomalies.append(
                Anomaly(
                    "wrong-count",
                    f"{app} ends with {per_app.get(app, 0)} tasks; allowed {sorted(allowed[app])}",
                )
            )

    # lost-task: acknowledged RUNNING, gone at the end, nobody asked
    kills = [(f["start"], set(f["hosts"])) for f in faults if f["kind"] == "kill"]
    for tid, (t1, host) in sorted(acked.items(), key=lambda kv: kv[1][0]):
        if tid in final_running:
            continue
        app = task_app(tid)
        excused = False
        # Requests from shortly before the task was first seen (in any state) on:
        # a restart or scale-down invoked while it was being launched may replace it.
        since = min(first_seen.get(tid, t1), t1) - 5.0
        for o in by_app.get(app, []):
            if o["type"] == "fail" or o["t_inv"] < since:
                continue
            if o["f"] == "restart":
                excused = True
            elif o["f"] in ("deploy", "scale"):
                before = targets_at(by_app[app], o["t_inv"], 0.0)
                if int(o["value"]) < max(before, default=0):
                    excused = True
            if excused:
                break
        if not excused:
            killed = [round(k, 1) for k, hs in kills if k >= t1 and any(
                host.endswith(f".1{h}") for h in hs)]  # fmt: skip
            res.anomalies.append(
                Anomaly(
                    "lost-task",
                    f"{tid} (on {host}) reported RUNNING at {t1:.1f}s is gone at the end; "
                    f"no scale-down or restart of {app} asked for it"
                    + (f" (its host was killed at {killed}s)" if killed else ""),
                )
            )

    res.anomalies += two_leaders(leader_intervals)
    return res


def _counts_detail(snap: dict[str, Any], allowed: dict[str, set[int]]) -> str:
    per_app: dict[str, int] = defaultdict(int)
    for ids in (snap.get("agents") or {}).values():
        for tid in ids or []:
            per_app[task_app(tid)] += 1
    parts = [
        f"{app}: {per_app.get(app, 0)} running (allowed {sorted(ok)})"
        for app, ok in sorted(allowed.items())
    ]
    return (
        f"did not converge; last sample at {snap['t'] / 1e9:.1f}s: deployments "
        f"{snap.get('deployments')}, " + "; ".join(parts)
    )
