"""One chaos run of the ``cluster`` workload: the whole cluster on the lab's hosts.

Same shape as the keeper run (:mod:`paddock.chaos.runner`): one ``try/finally``
(:func:`~paddock.chaos.runner_common.lab_session`) around lab, daemons and workload
so everything is gone when it ends, every wait bounded. The workload process lives
in the observer namespace (never faulted); the nemesis kills, pauses, cuts and slows
the hosts running keeper, master, marathon and agent processes
(:mod:`paddock.chaos.cluster_procs`). After ``--time`` everything is healed and the
workload waits (at most ``recovery_timeout``) for the apps to converge; then the
daemons are stopped, their logs read for leadership intervals, and the history
checked (:mod:`paddock.chaos.checker_cluster`). The parts both runs share are in
:mod:`paddock.chaos.runner_common`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paddock.chaos import checker_cluster, report_cluster
from paddock.chaos import runner_common as common
from paddock.chaos.cluster_procs import DaemonCluster
from paddock.chaos.hosts import Lab
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


def run_cluster(cfg: RunConfig) -> ClusterRunResult:
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    log = common.RunLog(out, cfg.quiet)
    lab = Lab(cfg.hosts, observer=True)
    cluster = DaemonCluster(lab, out)
    workers: list[subprocess.Popen[bytes]] = []  # the workload process, once started
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
    with common.lab_session(lab, cluster, workers):
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

        if not common.wait_for(up, max(cfg.start_timeout, 120.0), step=0.5):
            raise RuntimeError("cluster not up (leading master with every agent, marathon)")
        figures["startup_s"] = round(time.monotonic() - t0, 1)
        log(f"cluster up in {figures['startup_s']}s: master leader h{cluster.master_leader()}")
        start_ns = time.monotonic_ns()
        wall0 = time.time()
        clock = common.clock_since(start_ns)
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
        worker = common.spawn(argv, out / "worker-cluster.log")
        workers.append(worker)
        faults = common.inject_faults(cfg, lab, cluster, clock, log, cluster.supervise)
        heal_t = clock()
        log(f"healed at {heal_t:.1f}s; waiting for the apps to converge")
        deadline = time.monotonic() + cfg.recovery_timeout + 60
        while worker.poll() is None and time.monotonic() < deadline:
            cluster.supervise()
            time.sleep(0.2)
        if worker.poll() is None:
            log("workload did not end in time: killed")
        end_t = clock()

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
    figures.update(common.operation_counts(history))
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
    log.close()
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
        for ev in common.read_events(path, start_ns):
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
    known = sorted(a for a in after if a is not None)
    return {
        "after_fault_s": after,
        "after_fault_median_s": known[len(known) // 2] if known else None,
        "after_fault_max_s": known[-1] if known else None,
        "longest_gap_s": common.longest_gap_between(oks, duration),
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
