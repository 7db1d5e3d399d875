"""Master failover benchmark: kill -9 of the leading master -> first offer from the new one.

A real local cluster per configuration: one coordination server (keeper or Apache
ZooKeeper), 3 ``paddock master`` processes (quorum 2, ``--zk-session-timeout`` as asked,
``--allocation-interval`` 1 s as Mesos), 3 real ``paddock agent`` processes (they find
the leader through ZooKeeper; ``--registration-backoff-factor`` as asked, Mesos's default
1 s) and one framework (``launch_bench.Framework``: the v1 scheduler HTTP API; it
watches the ``json.info_*`` znodes as pymesos does and re-SUBSCRIBEs with its id to the
new leader, retrying a 503 every 50 ms).

Each trial: wait for a steady cluster (a leader, 3 active agents, the framework holding
offers), ``kill -9`` the leader, and take a timeline (seconds after the kill):

* ``gone``: a separate ZooKeeper client sees the old leader's znode disappear (the
  coordination service expired the dead master's session and told its watchers);
* ``zk_leader``: the new leader logs that ZooKeeper names it leader;
* ``registry``: it has taken over the registry (its "elected" record committed);
* ``agent1`` / ``agents``: the first / all 3 agents re-registered with it;
* ``offer``: the framework's first OFFERS event from it.

The killed master is then restarted (same work dir and ports) and rejoins as a follower
before the next trial. ZooKeeper's ``tickTime`` is a quarter of the session timeout
(capped at 2 s, its default) unless ``--tick-ms`` says otherwise: a session can be no
shorter than 2 ticks, and ZooKeeper expires sessions only on tick boundaries.

    .venv/bin/python bench/master_failover_bench.py [--kinds keeper,zookeeper]
        [--session-timeouts 10s,2s,1s] [--trials 5] [--registration-backoff 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from kazoo.client import KazooClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "master"))
sys.path.insert(0, str(ROOT / "bench"))

from clients import AgentProcess, MasterProcess, elected, wait_until  # noqa: E402

from _common import commit, loadavg, print_log_tails, start_agent, stop_cluster  # noqa: E402
from _common import main as bench_main  # noqa: E402
from launch_bench import Framework  # noqa: E402
from paddock.master.config import parse_duration  # noqa: E402
from paddock.testing import zk_ensemble  # noqa: E402

PATH = "/failover"
STAGES = ("gone", "zk_leader", "registry", "agent1", "agents", "offer")


class BenchAgent(AgentProcess):
    """AgentProcess with a chosen registration backoff (the tests use 0.2 s)."""

    def __init__(self, master: str, work_dir: Path, backoff: float) -> None:
        super().__init__(master, work_dir, resources="cpus:1;mem:256")
        self.backoff = backoff

    def start(self) -> BenchAgent:
        start_agent(self, "--no-cgroups", "--registration-backoff-factor", str(self.backoff))
        return self


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def log_time(m: MasterProcess, pattern: str, after: float) -> float | None:
    """Wall-clock time of the first line of ``m``'s log after ``after`` containing
    ``pattern`` (the log's asctime has millisecond resolution)."""
    try:
        lines = m.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if pattern not in line:
            continue
        mt = _LOG_TIME.match(line)
        if mt is None:
            continue
        t = datetime.strptime(mt.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if t >= after - 0.0005:
            return t
    return None


class LeaderWatch:
    """The framework's leader detector: the lowest ``json.info_*`` child, watched."""

    def __init__(self, hosts: str, loop: asyncio.AbstractEventLoop) -> None:
        self.zk = KazooClient(hosts=hosts, timeout=10)
        self.loop = loop
        self.children: list[str] = []
        self.changed = asyncio.Event()
        self.gone_at: dict[str, float] = {}

    def start(self) -> None:
        self.zk.start(30)
        self.zk.ChildrenWatch(PATH, self._watch)

    def _watch(self, children: list[str]) -> None:  # kazoo thread
        now = time.monotonic()
        for c in self.children:
            if c not in children:
                self.gone_at[c] = now
        self.children = list(children)
        self.loop.call_soon_threadsafe(self.changed.set)

    def leader(self) -> tuple[str, str] | None:
        infos = sorted(c for c in self.children if c.startswith("json.info_"))
        for c in infos:
            with contextlib.suppress(Exception):
                info = json.loads(self.zk.get(f"{PATH}/{c}")[0])
                addr = info["address"]
                return c, f"http://{addr['ip']}:{addr['port']}"
        return None

    def stop(self) -> None:
        self.zk.stop()
        self.zk.close()


async def metric(client: httpx.AsyncClient, m: MasterProcess, key: str) -> float:
    try:
        r = await client.get(m.url + "/metrics/snapshot", timeout=2)
        return float(r.json().get(key, 0.0))
    except (httpx.HTTPError, ValueError):
        return 0.0


async def trial(
    masters: list[MasterProcess], watch: LeaderWatch, fw: Framework, offers: asyncio.Queue[Any]
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    leader = (await asyncio.to_thread(wait_until, lambda: elected(masters), 60, "a leader"))[0]
    async with httpx.AsyncClient() as client:
        end = time.monotonic() + 60
        while await metric(client, leader, "master/agents_active") < 3:
            if time.monotonic() > end:
                raise TimeoutError("3 agents active")
            await asyncio.sleep(0.1)
    cur = watch.leader()
    assert cur is not None
    node, url = cur
    if fw.base != url or not fw.framework_id:
        await fw.subscribe(url)
    # The framework holds the current leader's offers, so the next one can only come
    # from a new leader.
    await asyncio.wait_for(offers.get(), 30)
    while not offers.empty():
        offers.get_nowait()
    others = [m for m in masters if m is not leader]

    t_wall = time.time()
    t0 = time.monotonic()
    leader.kill(signal.SIGKILL)
    out: dict[str, float] = {}
    new: MasterProcess | None = None

    async def follow_leader() -> None:
        # The framework: re-subscribe whenever ZooKeeper names a new leader.
        nonlocal new
        while True:
            await watch.changed.wait()
            watch.changed.clear()
            cur = await asyncio.to_thread(watch.leader)
            if cur is not None and cur[0] != node:
                new = next(m for m in others if cur[1] == m.url)
                await fw.subscribe(cur[1])
                return

    async def poll_agents() -> None:
        async with httpx.AsyncClient() as client:
            while True:
                if new is not None:
                    n = await metric(client, new, "master/agents_active")
                    if n >= 1 and "agent1" not in out:
                        out["agent1"] = time.monotonic() - t0
                    if n >= 3:
                        out["agents"] = time.monotonic() - t0
                        return
                await asyncio.sleep(0.01)

    follower = loop.create_task(follow_leader())
    poller = loop.create_task(poll_agents())
    try:
        await asyncio.wait_for(offers.get(), 60)
        out["offer"] = time.monotonic() - t0
        await asyncio.wait_for(poller, 30)
    finally:
        for t in (follower, poller):
            t.cancel()
            with contextlib.suppress(BaseException):
                await t
    if node in watch.gone_at:
        out["gone"] = watch.gone_at[node] - t0
    assert new is not None
    for key, pattern in (("zk_leader", "(this master)"), ("registry", "registry recovered")):
        t = log_time(new, pattern, t_wall)
        if t is not None:
            out[key] = t - t_wall
    # Bring the killed master back as a follower for the next trial.
    leader.start()
    await asyncio.to_thread(
        wait_until,
        lambda: len([c for c in watch.children if c.startswith("json.info_")]) == 3,
        60,
        "the killed master contending again",
    )
    return out


async def run_config(kind: str, timeout_s: str, args: argparse.Namespace) -> list[dict[str, float]]:
    seconds = parse_duration(timeout_s)
    tick = args.tick_ms or int(min(2000, seconds * 1000 / 4))
    work = Path(tempfile.mkdtemp(prefix="paddock-failover-bench-"))
    ens = zk_ensemble(kind, 1, tick_ms=tick)
    masters: list[MasterProcess] = []
    agents: list[BenchAgent] = []
    fw = Framework("failover-bench", retry_delay=0.05)
    fw.quiet_stream_end = True
    offers: asyncio.Queue[Any] = asyncio.Queue()
    fw.on_offers = lambda items: [offers.put_nowait(o) for o in items]  # type: ignore[func-returns-value]
    watch = LeaderWatch(ens.hosts, asyncio.get_running_loop())
    results: list[dict[str, float]] = []
    try:
        zk_url = f"zk://{ens.hosts}{PATH}"
        for i in range(3):
            masters.append(
                MasterProcess(
                    zk_url, 2, work / f"m{i}", "--zk-session-timeout", timeout_s,
                    "--allocation-interval", "1s", *args.master_flag,
                ).start()
            )  # fmt: skip
        await asyncio.to_thread(wait_until, lambda: elected(masters), 120, "a leader")
        await asyncio.to_thread(watch.start)
        for i in range(3):
            agents.append(BenchAgent(zk_url, work / f"a{i}", args.registration_backoff).start())
        for n in range(args.trials):
            r = await trial(masters, watch, fw, offers)
            results.append(r)
            line = ", ".join(f"{k} {r[k]:.2f}" for k in STAGES if k in r)
            print(f"  {kind} {timeout_s} (tick {tick} ms) trial {n + 1}: {line}", flush=True)
    except BaseException:
        print_log_tails([*masters, *agents], 25)
        raise
    finally:
        await stop_cluster(fw, masters, agents)
        with contextlib.suppress(Exception):
            watch.stop()
        ens.stop()
        if args.keep:
            print(f"  logs kept in {work}")
        else:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    return results


def summary(results: list[dict[str, float]]) -> str:
    parts = []
    for k in STAGES:
        xs = [r[k] for r in results if k in r]
        if xs:
            parts.append(f"{k} {statistics.median(xs):.2f} [{min(xs):.2f}-{max(xs):.2f}]")
    return "; ".join(parts)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"commit": commit(), "load_before": loadavg(), "runs": []}
    print(f"commit {report['commit']}, load {report['load_before']}, {os.cpu_count()} CPUs")
    for kind in args.kinds.split(","):
        for timeout_s in args.session_timeouts.split(","):
            results = await run_config(kind, timeout_s, args)
            print(f"{kind} session {timeout_s}: median [min-max] s after kill -9: "
                  f"{summary(results)}", flush=True)  # fmt: skip
            report["runs"].append({"kind": kind, "session_timeout": timeout_s, "trials": results})
    report["load_after"] = loadavg()
    print(f"load average after: {report['load_after']}")
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--kinds", default="keeper,zookeeper")
    p.add_argument("--session-timeouts", default="10s,2s,1s")
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--tick-ms", type=int, default=0, help="coordination tickTime (default: T/4)")
    p.add_argument("--registration-backoff", type=float, default=1.0, help="agents' flag")
    p.add_argument("--master-flag", action="append", default=[], help="extra master flag")
    bench_main(p, main_async, keep_help="keep the work directories (logs)")


if __name__ == "__main__":
    main()
