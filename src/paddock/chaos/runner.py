"""One chaos run: lab up, keeper on every host, workload + nemesis, check, report.

Why this order: the faults must only ever hit a cluster that is being watched,
and everything the run started must be gone when it ends, whatever happened —
so setup and teardown sit in one ``try/finally``
(:func:`~paddock.chaos.runner_common.lab_session`; SIGTERM is turned into
KeyboardInterrupt for the duration, and stale namespaces of an earlier run are
removed first). Every wait is bounded: a run takes at most ``--time`` plus the
start-up, recovery and read-back bounds. What the cluster workload's run
(:mod:`paddock.chaos.runner_cluster`) shares with this one is in
:mod:`paddock.chaos.runner_common`.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paddock.chaos import checker, report
from paddock.chaos import runner_common as common
from paddock.chaos.hosts import Lab, connect_in_namespace
from paddock.chaos.nemesis import KINDS
from paddock.chaos.runner_cluster import ClusterRunResult, run_cluster
from paddock.chaos.workload_keeper import WorkerSpec

CLIENT_PORT = 2181
PEER_PORT = 7001
CLIENTS_PER_HOST = 2
KEY_PERIOD = 5.0
KEYS = 3


@dataclass
class RunConfig:
    hosts: int = 5
    time: float = 120.0
    nemesis: tuple[str, ...] = KINDS
    workload: str = "keeper"
    seed: int = 0
    out: Path = Path("chaos-out")
    start_timeout: float = 60.0
    recovery_timeout: float = 60.0
    quiet: bool = False


@dataclass
class RunResult:
    out: Path
    check: checker.CheckResult
    faults: list[dict[str, Any]]
    leaders: list[dict[str, Any]]
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.check.ok


def _python() -> list[str]:
    return [sys.executable]


class KeeperCluster:
    """``paddock keeper`` on every lab host (the nemesis's :class:`Cluster`)."""

    def __init__(self, lab: Lab, out: Path) -> None:
        self.lab = lab
        self.out = out
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.paused: set[int] = set()
        self._pool = ThreadPoolExecutor(max_workers=max(1, lab.hosts), thread_name_prefix="probe")

    def peers(self) -> str:
        return ",".join(
            f"{h}={self.lab.address(h)}:{PEER_PORT}" for h in range(1, self.lab.hosts + 1)
        )

    def hosts_string(self, only: int | None = None) -> str:
        hs = [only] if only is not None else range(1, self.lab.hosts + 1)
        return ",".join(f"{self.lab.address(h)}:{CLIENT_PORT}" for h in hs)

    def start(self, h: int) -> None:
        d = self.out / f"n{h}"
        (d / "data").mkdir(parents=True, exist_ok=True)
        argv = [
            *self.lab.exec_prefix(h), *_python(), "-m", "paddock.cli.main", "keeper",
            "--id", str(h), "--peers", self.peers(),
            "--client-port", str(CLIENT_PORT), "--client-host", self.lab.address(h),
            "--data-dir", str(d / "data"),
        ]  # fmt: skip
        self.procs[h] = common.spawn(argv, d / "keeper.log")

    def kill(self, h: int) -> None:
        p = self.procs.get(h)
        if p is not None and p.poll() is None:
            p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
        self.paused.discard(h)

    def restart(self, h: int) -> None:
        self.kill(h)
        self.start(h)

    def pause(self, h: int) -> None:
        p = self.procs.get(h)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGSTOP)
            self.paused.add(h)

    def resume(self, h: int) -> None:
        p = self.procs.get(h)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGCONT)
        self.paused.discard(h)

    def heal(self) -> None:
        """Every keeper running and not paused."""
        for h in range(1, self.lab.hosts + 1):
            p = self.procs.get(h)
            if p is None or p.poll() is not None:
                self.start(h)
            elif h in self.paused:
                self.resume(h)

    def ask(self, h: int, word: str, timeout: float = 0.5) -> str | None:
        """Keeper h's answer to the four-letter ``word`` (None: no answer)."""
        try:
            s = connect_in_namespace(self.lab.ns(h), (self.lab.address(h), CLIENT_PORT), timeout)
        except OSError:
            return None
        try:
            s.sendall(word.encode())
            chunks = []
            while True:
                b = s.recv(4096)
                if not b:
                    break
                chunks.append(b)
        except OSError:
            return None
        finally:
            s.close()
        return b"".join(chunks).decode(errors="replace")

    def mode(self, h: int, timeout: float = 0.5) -> str:
        """The ``srvr`` Mode of keeper h, or 'down'."""
        answer = self.ask(h, "srvr", timeout)
        if answer is None:
            return "down"
        for line in answer.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return "unknown"

    def modes(self) -> dict[int, str]:
        hosts = list(range(1, self.lab.hosts + 1))
        return dict(zip(hosts, self._pool.map(self.mode, hosts), strict=True))

    def leader(self) -> int | None:
        leaders = [h for h, m in self.modes().items() if m == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    def has_quorum(self) -> bool:
        """A leader and a majority serving (enough for the final read-back)."""
        modes = list(self.modes().values())
        serving = sum(1 for m in modes if m in ("leader", "follower"))
        return "leader" in modes and serving > len(modes) // 2

    def healthy(self) -> bool:
        modes = self.modes().values()
        return all(m in ("leader", "follower") for m in modes) and "leader" in modes

    def stop_all(self) -> None:
        for h, p in self.procs.items():
            if p.poll() is None:
                if h in self.paused:
                    p.send_signal(signal.SIGCONT)
                p.terminate()
        deadline = time.monotonic() + 10
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(5)
        self._pool.shutdown(wait=False, cancel_futures=True)


def longest_gap(events: list[dict[str, Any]], duration: float) -> float:
    """The longest time (s) without any acknowledged operation during the run."""
    return common.longest_gap_between(
        sorted(e["t"] / 1e9 for e in events if e["type"] == "ok"), duration
    )


def _leader_links_up(cluster: KeeperCluster, last: list[Any]) -> bool:
    """Whether the one leader's ``mntr`` shows a link up to every other keeper;
    ``last`` gets what was seen (leader, its ``mntr``) for the anomaly."""
    leader = cluster.leader()
    mntr = (cluster.ask(leader, "mntr", timeout=2.0) or "") if leader is not None else ""
    last[:] = [leader, mntr]
    others = cluster.lab.hosts - 1
    return leader is not None and checker.leader_link_problem(mntr, others) is None


def _keeper_workload(
    cluster: KeeperCluster, command: str, gens: int, *more: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    """``workload_keeper setup|verify`` on host 1 against every keeper, to its end."""
    argv = [
        *cluster.lab.exec_prefix(1), *_python(), "-m", "paddock.chaos.workload_keeper", command,
        "--hosts", cluster.hosts_string(), "--gens", str(gens), "--keys", str(KEYS), *more,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def run(cfg: RunConfig) -> RunResult | ClusterRunResult:
    if cfg.workload == "cluster":
        return run_cluster(cfg)
    if cfg.workload != "keeper":
        raise ValueError(f"unknown workload {cfg.workload!r} (available: keeper, cluster)")
    return run_keeper(cfg)


def run_keeper(cfg: RunConfig) -> RunResult:
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    log = common.RunLog(out, cfg.quiet)
    lab = Lab(cfg.hosts)
    cluster = KeeperCluster(lab, out)
    gens = int(cfg.time // KEY_PERIOD) + 2
    workers: list[subprocess.Popen[bytes]] = []
    history_files: list[Path] = []
    faults: list[dict[str, Any]] = []
    leaders: list[dict[str, Any]] = []
    final: dict[str, Any] | None = None
    links: list[Any] = [None, ""]  # the last look at the leader: its id, its mntr
    link_anomaly: checker.Anomaly | None = None
    figures: dict[str, Any] = {"hosts": cfg.hosts, "time": cfg.time, "seed": cfg.seed}
    with common.lab_session(lab, cluster, workers):
        lab.create()
        log(f"lab: {cfg.hosts} hosts {[lab.address(h) for h in range(1, cfg.hosts + 1)]}")
        for h in range(1, cfg.hosts + 1):
            cluster.start(h)
        if not common.wait_for(cluster.healthy, cfg.start_timeout):
            raise RuntimeError(f"keeper cluster not serving after {cfg.start_timeout}s")
        log(f"keeper serving: {cluster.modes()}")
        setup = _keeper_workload(cluster, "setup", gens, timeout=60)
        if setup.returncode != 0:
            raise RuntimeError(f"workload setup failed: {setup.stderr[-2000:]}")
        start_ns = time.monotonic_ns()
        clock = common.clock_since(start_ns)
        total_clients = cfg.hosts * CLIENTS_PER_HOST
        for h in range(1, cfg.hosts + 1):
            path = out / f"history-h{h}.jsonl"
            path.unlink(missing_ok=True)
            history_files.append(path)
            spec = WorkerSpec(
                clients=[cluster.hosts_string(h), cluster.hosts_string()],
                procs=[(h - 1) * CLIENTS_PER_HOST + i for i in range(CLIENTS_PER_HOST)],
                stride=total_clients,
                seed=cfg.seed * 100 + h,
                start_ns=start_ns,
                duration=cfg.time,
                keys=KEYS,
                key_period=KEY_PERIOD,
                out=str(path),
            )
            argv = [
                *lab.exec_prefix(h), *_python(), "-m", "paddock.chaos.workload_keeper", "work",
                "--spec", spec.to_json(),
            ]  # fmt: skip
            workers.append(common.spawn(argv, out / f"worker-h{h}.log"))
        last_sample = [-1.0]

        def sample() -> None:
            now = clock()
            if now - last_sample[0] >= 1.0:
                last_sample[0] = now
                leaders.append({"t": now, "modes": cluster.modes()})

        faults = common.inject_faults(cfg, lab, cluster, clock, log, sample)
        heal_t = clock()
        recovered = common.wait_for(cluster.healthy, cfg.recovery_timeout)
        figures["recovery_s"] = round(clock() - heal_t, 2) if recovered else None
        modes_after = cluster.modes()
        log(f"healed at {heal_t:.1f}s; recovered: {recovered} {modes_after}")
        if not recovered:
            stuck = {h: m for h, m in modes_after.items() if m not in ("leader", "follower")}
            figures["not_recovered"] = {str(h): m for h, m in stuck.items()}
        else:
            links_t = clock()
            links_up = common.wait_for(
                lambda: _leader_links_up(cluster, links), cfg.recovery_timeout
            )
            figures["leader_links_s"] = round(clock() - links_t, 2) if links_up else None
            log(f"leader {links[0]}'s links to the other keepers all up: {links_up}")
            if not links_up:
                link_anomaly = checker.leader_link_anomaly(
                    links[0], links[1], cfg.hosts - 1, cfg.recovery_timeout
                )
        quorum = recovered or common.wait_for(cluster.has_quorum, 10)
        deadline = time.monotonic() + 20
        for w in workers:
            try:
                w.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait(5)
        if quorum:
            vpath = out / "final.json"
            v = _keeper_workload(cluster, "verify", gens, "--out", str(vpath), timeout=90)
            if v.returncode == 0:
                final = json.loads(vpath.read_text())
            else:
                log(f"final read-back failed: {v.stderr[-2000:]}")
    events: list[dict[str, Any]] = []
    for i, path in enumerate(history_files):
        if path.exists():
            for ev in common.read_events(path, start_ns):
                ev["w"] = i + 1
                events.append(ev)
    if final is not None:
        final["t_start"] = final["t_start"] - start_ns
    events.sort(key=lambda e: e["t"])
    with open(out / "history.jsonl", "w") as f:
        for ev in events:
            f.write(json.dumps(ev) + "\n")
    result = checker.check(events, final)
    if figures.get("not_recovered"):
        result.anomalies.append(
            checker.Anomaly(
                "not-recovered",
                f"{cfg.recovery_timeout:.0f}s after every fault was healed, keepers "
                f"{figures['not_recovered']} were still not serving",
            )
        )
    if link_anomaly is not None:
        result.anomalies.append(link_anomaly)
    figures["faults"] = len(faults)
    figures.update(common.operation_counts(events))
    figures["anomalies"] = len(result.anomalies)
    figures["longest_gap_s"] = longest_gap(events, cfg.time)
    rr = RunResult(out, result, faults, leaders, figures)
    report.write(rr, events)
    log(report.text(rr))
    log.close()
    return rr
