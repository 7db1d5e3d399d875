"""Deploy benchmark: marathon on a real local cluster.

Part 1 (deploy): real Apache ZooKeeper, one ``paddock master``, ``--agents`` agents, one
``paddock marathon``. POST one app of ``--instances`` instances of a tiny command
(``sleep 3600``, cpus 0.01, mem 8); time until every instance is TASK_RUNNING in
``/v2/apps/{id}/tasks`` and until the deployment is gone. Then ``POST .../restart`` with
``minimumHealthCapacity`` 0.5 / ``maximumOverCapacity`` 0.5 and time the rolling
replacement of every instance. Marathon 0.15 deployed 500 instances on 189 agents in
14.18 s (OpenStack performance docs).

Part 2 (API): the store is seeded directly (in-process service with the Mesos-less
InstantCore) with ``--apps`` apps of ``--tasks-per-app`` task records each, then a
``paddock marathon`` leads over that state (reconciliation pushed out of the way, no
master needed) and ``GET /v2/apps?embed=apps.tasks`` is timed (Marathon issue #1274:
12 s with 1,000 tasks; target here: under 200 ms for 1,000 apps / 10,000 tasks).

    .venv/bin/python bench/deploy_bench.py [--instances 500] [--agents 5] [--apps 1000]
        [--tasks-per-app 10] [--skip-deploy] [--skip-api]

With ``PADDOCK_MARATHON_PROFILE=<file>`` in the environment, marathon profiles its event
loop thread with cProfile and writes the stats there when it stops (use with
``--skip-api``, or the API part's marathon overwrites the deploy part's file).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from kazoo.client import KazooClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "marathon"))

from scheduler_cluster import Cluster, leader_of, url, wait_until

from paddock.marathon.api import instant_service
from paddock.testing import zk_ensemble


def deploy_part(
    hosts: str, work: Path, instances: int, agents: int, verbose: bool = False
) -> dict[str, float]:
    c = Cluster(hosts, work, chroot="/deploy")
    try:
        c.start_master()
        per_agent = instances // agents + 20
        for i in range(agents):
            lo = 31000 + i * 1000
            c.start_agent(
                f"127.0.0.{i + 1}",
                f"rack:r{i}",
                f"{lo}-{lo + 999}",
                resources=f"cpus:{per_agent * 0.01 * 2:.2f};mem:{per_agent * 8 * 2}",
                status_retry=10.0,  # Mesos's default: no resend storm while loaded
            )
        m = c.start_marathon(
            "--reconciliation-initial-delay", "30", "--reconciliation-interval", "600"
        )  # fmt: skip
        base = url(m)
        wait_until(lambda: leader_of([m]), 60, "marathon leads")
        # Wait until every agent is registered (offers from all of them).
        wait_until(
            lambda: (
                len(httpx.get(url(c.masters[0]) + "/master/state", timeout=5).json()["slaves"])
                == agents
            ),
            60,
            "agents registered",
        )
        app = {
            "id": "/bench/sleep",
            "cmd": "sleep 3600",
            "cpus": 0.01,
            "mem": 8,
            "instances": instances,
            "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.5},
        }
        client = httpx.Client(timeout=30)

        last_report = [0.0]

        def running() -> int:
            # The app list carries counts without rendering 500 tasks on every poll.
            a = client.get(base + "/v2/apps", params={"id": "bench/sleep"}).json()["apps"][0]
            n: int = a["tasksRunning"]
            if verbose and time.monotonic() - last_report[0] > 2:
                last_report[0] = time.monotonic()
                print(f"  {time.monotonic() - t0:6.1f}s: {a['tasksStaged']} staged, {n} running")
            return n

        def cpu() -> dict[str, float]:
            return {
                "marathon": _cpu_seconds(m.proc.pid) if m.proc else 0.0,
                "master": sum(_cpu_seconds(p.proc.pid) for p in c.masters if p.proc),
                "agents": sum(_cpu_seconds(p.proc.pid) for p in c.agents if p.proc),
            }

        def cpu_line(before: dict[str, float]) -> str:
            now = cpu()
            return ", ".join(f"{k} {now[k] - before[k]:.1f}s" for k in now)

        cpu0 = cpu()
        print(f"load average before the deploy: {_load()}")
        t0 = time.monotonic()
        r = client.post(base + "/v2/apps", json=app)
        assert r.status_code == 201, r.text
        wait_until(lambda: running() >= instances, 600, "all running", interval=0.25)
        t_running = time.monotonic() - t0
        wait_until(lambda: not client.get(base + "/v2/deployments").json(), 120, "deployed")
        t_deployed = time.monotonic() - t0
        print(
            f"deploy: {instances} running after {t_running:.2f}s, deployment done {t_deployed:.2f}s"
        )
        print(f"  CPU used: {cpu_line(cpu0)}")
        cpu0 = cpu()

        before = {t["id"] for t in client.get(base + "/v2/apps/bench/sleep/tasks").json()["tasks"]}
        t0 = time.monotonic()
        r = client.post(base + "/v2/apps/bench/sleep/restart")
        assert r.status_code == 200, r.text

        def replaced() -> bool:
            tasks = client.get(base + "/v2/apps/bench/sleep/tasks").json()["tasks"]
            ids = {t["id"] for t in tasks}
            deps = client.get(base + "/v2/deployments").json()
            return not deps and len(ids) == instances and not (ids & before)

        wait_until(replaced, 900, "restart done", interval=1.0)
        t_restart = time.monotonic() - t0
        print(f"rolling restart of {instances}: {t_restart:.2f}s")
        print(f"  CPU used: {cpu_line(cpu0)}")
        print(f"load average after the restart: {_load()}")
        r = client.delete(base + "/v2/apps/bench/sleep")
        wait_until(lambda: not client.get(base + "/v2/deployments").json(), 300, "deleted")
        return {"running": t_running, "deployed": t_deployed, "restart": t_restart}
    except BaseException:
        print(c.logs(30))
        raise
    finally:
        c.stop()


def api_part(hosts: str, work: Path, apps: int, per_app: int, runs: int = 20) -> dict[str, float]:
    zk = KazooClient(hosts=hosts, timeout=20)
    zk.start(timeout=20)
    base_path = "/api/marathon"
    t0 = time.monotonic()
    service, _core = instant_service(zk, base_path)
    bodies = [
        {"id": f"/g{i // 100}/app{i}", "cmd": "sleep 3600", "cpus": 0.01, "mem": 8,
         "instances": per_app, "portDefinitions": [{"port": 0}]}
        for i in range(apps)
    ]  # fmt: skip
    service.update_apps(bodies)
    seeded = time.monotonic() - t0
    zk.stop()
    zk.close()
    print(f"seeded {apps} apps / {apps * per_app} tasks in {seeded:.1f}s")
    c = Cluster(hosts, work, chroot="/api")
    try:
        m = c.start_marathon("--reconciliation-initial-delay", "3600")
        base = url(m)
        wait_until(lambda: leader_of([m]), 60, "marathon leads")
        client = httpx.Client(timeout=60)
        out: dict[str, float] = {}
        for name, path in (
            ("apps_embed_tasks", "/v2/apps?embed=apps.tasks"),
            ("apps", "/v2/apps"),
            ("tasks", "/v2/tasks"),
        ):
            times = []
            assert m.proc is not None
            cpu0 = _cpu_seconds(m.proc.pid)
            for _ in range(runs):
                t0 = time.perf_counter()
                r = client.get(base + path)
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text[:200]
            out[name + "_server_cpu_ms"] = (_cpu_seconds(m.proc.pid) - cpu0) / runs * 1000
            body = r.json()
            if name == "apps_embed_tasks":
                assert len(body["apps"]) == apps
                assert sum(len(a["tasks"]) for a in body["apps"]) == apps * per_app
            times.sort()
            print(f"  load average: {_load()}")
            out[name + "_median_ms"] = statistics.median(times) * 1000
            out[name + "_p90_ms"] = times[int(len(times) * 0.9) - 1] * 1000
            out[name + "_bytes"] = len(r.content)
            print(
                f"GET {path}: median {out[name + '_median_ms']:.0f} ms, "
                f"p90 {out[name + '_p90_ms']:.0f} ms, "
                f"server CPU {out[name + '_server_cpu_ms']:.0f} ms/request, "
                f"{len(r.content) / 1e6:.1f} MB"
            )
        return out
    except BaseException:
        print(c.logs(30))
        raise
    finally:
        c.stop()


def _load() -> str:
    """The 1/5/15-minute load averages (the machine is shared: wall times depend on it)."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (robust to other load on the machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--instances", type=int, default=500)
    p.add_argument("--agents", type=int, default=5)
    p.add_argument("--apps", type=int, default=1000)
    p.add_argument("--tasks-per-app", type=int, default=10)
    p.add_argument("--skip-deploy", action="store_true")
    p.add_argument("--skip-api", action="store_true")
    p.add_argument("--verbose", action="store_true", help="print progress while deploying")
    args = p.parse_args()
    # Stopped with SIGTERM: still stop every process started here (finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ens = zk_ensemble("zookeeper", 1)
    work = Path(tempfile.mkdtemp(prefix="deploy-bench-"))
    try:
        if not args.skip_deploy:
            deploy_part(ens.hosts, work, args.instances, args.agents, args.verbose)
        if not args.skip_api:
            api_part(ens.hosts, work, args.apps, args.tasks_per_app)
    finally:
        ens.stop()


if __name__ == "__main__":
    main()
