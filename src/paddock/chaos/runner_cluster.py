"""One chaos run of the ``cluster`` workload: the whole cluster on the lab's hosts.

Same shape as the keeper run (:mod:`paddock.chaos.runner`): one ``try/finally``
around lab, daemons and workload so everything is gone when it ends, every wait
bounded. The workload process lives in the observer namespace (never faulted); the
nemesis kills, pauses, cuts and slows the hosts running keeper, master, marathon and
agent processes (:mod:`paddock.chaos.cluster_procs`). After ``--time`` everything is
healed and the workload waits (at most ``recovery_timeout``) for the apps to
converge; then the daemons are stopped, their logs read for leadership intervals,
and the history checked (:mod:`paddock.chaos.checker_cluster`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paddock.chaos import checker_cluster, report_cluster
from paddock.chaos.cluster_procs import DaemonCluster, _die_with_parent
from paddock.chaos.hosts import Lab
from paddock.chaos.nemesis import Nemesis, plan
from paddock.chaos.workload_cluster import ClusterSpec

if TYPE_CHECKING:
    from paddock.chaos.runner import RunConfig


@dataclass
class ClusterRunResult:
    out: Path
    check: checker_cluster.ClusterCheck
    faults: list[dict[str, Any]]
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.check.ok


def _wait(cond: Any, timeout: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


def _sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")


def run_cluster(cfg: RunConfig) -> ClusterRunResult:
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "run.log", "a", buffering=1)  # noqa: SIM115 - closed below

    def log(msg: str) -> None:
        logf.write(msg + "\n")
        if not cfg.quiet:
            print(msg, flush=True)

    lab = Lab(cfg.hosts, observer=True)
    cluster = DaemonCluster(lab, out)
    old_handler = None
    with contextlib.suppress(ValueError):  # not the main thread: no handler
        old_handler = signal.signal(signal.SIGTERM, _sigterm)
    worker: subprocess.Popen[bytes] | None = None
    history_path = out / "history-cluster.jsonl"
    faults: list[dict[str, Any]] = []
    figures: dict[str, Any] = {
        "workload": "cluster",
        "hosts": cfg.hosts,
        "time": cfg.time,
        "seed": cfg.seed,
        "masters": cluster.master_hosts,
        "agents": cluster.agent_hosts,
    }
    start_ns = time.monotonic_ns()
    wall0 = time.time()
    end_t = cfg.time
    heal_t: float | None = None
    try:
        lab.create()
        log(
            f"lab: {cfg.hosts} hosts; keeper+master+marathon on {cluster.master_hosts}, "
            f"agents on {cluster.agent_hosts}"
        )
        for h in range(1, cfg.hosts + 1):
            cluster.start(h)
        t0 = time.monotonic()

        def up() -> bool:
            cluster.supervise()
            return cluster.healthy()

        if not _wait(up, max(cfg.start_timeout, 120.0)):
            raise RuntimeError("cluster not up (leading master with every agent, marathon)")
        figures["startup_s"] = round(time.monotonic() - t0, 1)
        log(f"cluster up in {figures['startup_s']}s: master leader h{cluster.master_leader()}")
        start_ns = time.monotonic_ns()
        wall0 = time.time()

        def clock() -> float:
            return (time.monotonic_ns() - start_ns) / 1e9

        history_path.unlink(missing_ok=True)
        spec = ClusterSpec(
            marathons=cluster.marathons(),
            agents=cluster.agents(),
            masters=[f"{lab.address(h)}:5050" for h in cluster.master_hosts],
            seed=cfg.seed,
            start_ns=start_ns,
            duration=cfg.time,
            settle=cfg.recovery_timeout,
            out=str(history_path),
        )
        argv = [
            "ip", "netns", "exec", lab.observer_ns, sys.executable, "-m",
            "paddock.chaos.workload_cluster", "work", "--spec", spec.to_json(),
        ]  # fmt: skip
        with open(out / "worker-cluster.log", "ab") as wlog:
            worker = subprocess.Popen(
                argv, stdout=wlog, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
            )
        schedule = plan(cfg.seed, cfg.time, cfg.nemesis, cfg.hosts)
        nemesis = Nemesis(lab, cluster, schedule, clock, log)
        log(f"workload started; {len(schedule)} faults planned (seed {cfg.seed})")
        try:
            nemesis.run(cfg.time, cluster.supervise)
        finally:
            faults = [r.to_json() for r in nemesis.records]
            cluster.heal()
            lab.heal()
        heal_t = clock()
        log(f"healed at {heal_t:.1f}s; waiting for the apps to converge")
        deadline = time.monotonic() + cfg.recovery_timeout + 60
        while worker.poll() is None and time.monotonic() < deadline:
            cluster.supervise()
            time.sleep(0.2)
        if worker.poll() is None:
            log("workload did not end in time: killed")
        end_t = clock()
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(5)
        cluster.stop_all()
        lab.destroy()
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)

    history, samples, final, converged_at = load_history(history_path, start_ns)
    deaths: dict[int, list[float]] = {h: [] for h in range(1, cfg.hosts + 1)}
    pauses: dict[int, list[tuple[float, float]]] = {h: [] for h in range(1, cfg.hosts + 1)}
    for f in faults:
        for h in f["hosts"]:
            if f["kind"] == "kill":
                deaths[h].append(f["start"])
            elif f["kind"] == "pause":
                pauses[h].append((f["start"], f["end"] if f["end"] is not None else end_t))
    ivs: list[checker_cluster.Interval] = []
    for h in cluster.master_hosts:
        for kind in ("master", "marathon"):
            edges = checker_cluster.log_edges(cluster.log_path(h, kind), kind, wall0)
            exits = [m - start_ns / 1e9 for m, hh, k, _c in cluster.exits if (hh, k) == (h, kind)]
            dead = sorted([*deaths[h], *exits])
            ivs += checker_cluster.intervals(edges, kind, h, dead, pauses[h], end_t)
    result = checker_cluster.check(history, samples, final, converged_at, faults, ivs)
    figures["daemon_exits"] = [
        {"t": round((m - start_ns / 1e9), 1), "host": h, "daemon": k, "code": c}
        for m, h, k, c in cluster.exits
    ]
    oks = sorted(e["t"] / 1e9 for e in history if e["type"] == "ok")
    figures.update(fault_recovery(faults, oks, cfg.time))
    figures["start_ns"] = start_ns
    figures["wall0"] = wall0
    figures["faults"] = len(faults)
    figures["operations"] = sum(1 for e in history if e["type"] == "invoke")
    figures["ok"] = sum(1 for e in history if e["type"] == "ok")
    figures["samples"] = len(samples)
    figures["tasks_seen"] = result.tasks_seen
    figures["anomalies"] = len(result.anomalies)
    figures["recovery_s"] = (
        round(converged_at - heal_t, 2) if converged_at is not None and heal_t is not None else None
    )
    figures["leader_changes"] = {
        k: sum(1 for i in ivs if i.kind == k) for k in ("master", "marathon")
    }
    rr = ClusterRunResult(out, result, faults, figures)
    report_cluster.write(rr, history, samples)
    log(report_cluster.text(rr))
    logf.close()
    return rr


def load_history(
    path: Path, start_ns: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any] | None, float | None]:
    """(requests, samples, final snapshot, converged at) with run-relative times."""
    history: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    final: dict[str, Any] | None = None
    converged_at: float | None = None
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a torn last line
                ev = json.loads(line)
                ev["t"] = ev["t"] - start_ns
                if ev["type"] == "sample":
                    samples.append(ev)
                elif ev["type"] == "converged":
                    final = ev["final"]
                    final["t"] = final["t"] - start_ns
                    converged_at = ev["t"] / 1e9
                elif "f" in ev:
                    history.append(ev)
    history.sort(key=lambda e: e["t"])
    return history, samples, final, converged_at


def recheck(out: Path) -> checker_cluster.ClusterCheck:
    """Check a finished run's output again (after a checker change), with the
    leadership intervals the run computed. Runs that did not record their start
    (before ``start_ns`` was saved) are aligned on their first request: request
    and sample times stay exact relative to each other; only the fault times in
    the details may be off by the workload's start-up."""
    figures = json.loads((out / "figures.json").read_text())
    path = out / "history-cluster.jsonl"
    start_ns = figures.get("start_ns")
    if start_ns is None:
        with open(path) as f:
            start_ns = json.loads(f.readline())["t"]
    history, samples, final, converged_at = load_history(path, int(start_ns))
    faults = json.loads((out / "faults.json").read_text())
    old = json.loads((out / "check.json").read_text())
    ivs = [checker_cluster.Interval(**i) for i in old.get("leader_intervals", [])]
    return checker_cluster.check(history, samples, final, converged_at, faults, ivs)


def fault_recovery(
    faults: list[dict[str, Any]], oks: list[float], duration: float
) -> dict[str, Any]:
    """Per fault: seconds from its end to the next acknowledged request (None: none
    before the run's end); and the longest time without an acknowledged request."""
    after = []
    for f in faults:
        end = f["end"] if f["end"] is not None else f["start"]
        nxt = next((t for t in oks if t >= end), None)
        after.append(None if nxt is None else round(nxt - end, 2))
    times = [0.0, *(min(max(t, 0.0), duration) for t in oks), duration]
    gap = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
    known = sorted(a for a in after if a is not None)
    return {
        "after_fault_s": after,
        "after_fault_median_s": known[len(known) // 2] if known else None,
        "after_fault_max_s": known[-1] if known else None,
        "longest_gap_s": round(gap, 2),
    }


def outputs(out: Path) -> list[str]:
    """What a cluster run leaves in ``out`` (for the docs and tests)."""
    return ["report.txt", "report.html", "check.json", "faults.json", "history-cluster.jsonl"]


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(prog="paddock.chaos.runner_cluster")
    ap.add_argument("cmd", choices=["recheck"])
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    res = recheck(args.out)
    for a in res.anomalies:
        print(f"{a.kind}: {a.detail}")
    print(f"anomalies: {len(res.anomalies)}")
    sys.exit(0 if res.ok else 1)
