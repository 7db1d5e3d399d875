"""``paddock up`` to ``paddock down`` from the command line, on real local clusters.

A small cluster (1 keeper, 1 master, 2 agents, 1 marathon) runs the example app; its
instances answer HTTP on their ports; ``status``, ``task list``, ``task logs``,
``app scale``, ``app deploy`` (YAML) work against it; a daemon killed with SIGKILL is
restarted by the supervisor; ``down`` leaves no process behind, and a second ``up``
resumes the same cluster (same ports, the app still defined and running again).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cluster_cli import (
    PADDOCK,
    logs,
    paddock,
    paddock_json,
    processes_of,
    stop_cluster,
    wait_until,
)

pytestmark = pytest.mark.timeout(300)

SMALL = ["--keepers", "1", "--masters", "1", "--agents", "2", "--marathons", "1"]


@pytest.fixture
def work_dir(tmp_path: Path, request: pytest.FixtureRequest):
    d = tmp_path / "cluster"
    failed_before = request.session.testsfailed
    try:
        yield d
    finally:
        if request.session.testsfailed > failed_before and (d / "logs").exists():
            print(logs(d))
        stop_cluster(d)


def serving(task: dict) -> bool:
    r = httpx.get(f"http://{task['host']}:{task['ports'][0]}/", timeout=3)
    return r.status_code == 200 and task["id"] in r.text


def test_small_cluster_from_up_to_down_and_resume(work_dir: Path, tmp_path: Path):
    wd = ["--work-dir", str(work_dir)]
    # The shape from [up], and a setting of the agents from [agent] of the same file.
    cfg = tmp_path / "paddock.toml"
    cfg.write_text(
        "[up]\nkeepers = 1\nmasters = 1\nagents = 2\nmarathons = 1\n[agent]\ngc-delay = 4321.5\n"
    )
    t0 = time.monotonic()
    r = paddock("up", *wd, "--config", str(cfg), "--detach")
    assert r.returncode == 0, r.stdout + r.stderr
    print(f"up --detach (small, with example app): {time.monotonic() - t0:.1f}s")
    assert "cluster is up" in r.stdout
    cluster = json.loads((work_dir / "cluster.json").read_text())
    assert cluster["zk"].startswith("zk://127.0.0.1:")
    assert len(cluster["keepers"]) == 1 and len(cluster["masters"]) == 1
    assert len(cluster["agents"]) == 2 and len(cluster["marathons"]) == 1
    assert cluster["ui"] == f"http://{cluster['marathons'][0]}/ui/"
    sup_pid = int((work_dir / "supervisor.pid").read_text())
    assert _gc_delays(cluster) == ["4321.5secs", "4321.5secs"]

    # -- the example app: 3 healthy instances that really serve HTTP ----------------------
    tasks = paddock_json("task", "list", *wd, "--app", "/hello")
    assert len(tasks) == 3
    assert all(t["state"] == "TASK_RUNNING" for t in tasks)
    for t in tasks:
        assert serving(t)

    # -- status: quorum and leaders, both agents, the marathon framework -----------------
    st = paddock_json("status", *wd)
    assert st["keeper_quorum"] and st["keepers"][0]["mode"] == "standalone"
    assert st["master_quorum"] and st["master_leader"] == cluster["masters"][0]
    assert sorted(a["hostname"] for a in st["agents"]) == ["127.0.1.1", "127.0.1.2"]
    assert {a["attributes"]["name"] for a in st["agents"]} == {"agent1", "agent2"}
    assert sum(a["used"]["cpus"] for a in st["agents"]) == pytest.approx(0.3)
    assert [f["name"] for f in st["frameworks"]] == ["marathon"]
    r = paddock("status", *wd, real=True)
    assert r.returncode == 0 and "leader" in r.stdout, r.stderr

    # -- environment variables instead of flags ---------------------------------------
    r = paddock("app", "list", "-o", "json", env={"PADDOCK_WORK_DIR": str(work_dir)})
    assert r.returncode == 0 and [a["id"] for a in json.loads(r.stdout)] == ["/hello"]

    # -- task logs: the sandbox stdout and stderr through the agent ---------------------
    r = paddock("task", "logs", tasks[0]["id"], *wd)
    assert r.returncode == 0, r.stderr
    assert f"hello from {tasks[0]['id']}" in r.stdout
    assert "Serving HTTP" in r.stdout
    r = paddock("task", "logs", tasks[0]["id"], "--stderr", *wd)
    assert r.returncode == 0 and "GET / HTTP/1.1" in r.stdout  # the health checks

    # -- app scale waits for its deployment -----------------------------------------------
    r = paddock("app", "scale", "/hello", "1", *wd)
    assert r.returncode == 0, r.stdout + r.stderr
    tasks = paddock_json("task", "list", *wd)
    assert len(tasks) == 1 and serving(tasks[0])

    # -- task kill: marathon replaces the task --------------------------------------------
    assert paddock("task", "kill", tasks[0]["id"], *wd).returncode == 0
    replacement = wait_until(
        lambda: [t for t in paddock_json("task", "list", *wd) if t["id"] != tasks[0]["id"]],
        60,
        "a replacement task",
    )
    wait_until(lambda: serving(replacement[0]), 30, "the replacement serves")

    # -- app deploy from YAML, and an update of it ----------------------------------------
    spec = tmp_path / "echo.yaml"
    spec.write_text(
        "id: /tools/echo\n"
        "cmd: exec python3 -u -m http.server $PORT0 --bind $HOST\n"
        "cpus: 0.1\nmem: 32\ninstances: 2\n"
        "portDefinitions: [{port: 0}]\n"
    )
    r = paddock("app", "deploy", str(spec), *wd)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(paddock_json("task", "list", *wd, "--app", "/tools/echo")) == 2
    app = json.loads(paddock("app", "show", "/tools/echo", *wd).stdout)
    assert app["tasksRunning"] == 2

    # -- a daemon killed with SIGKILL is restarted by the supervisor ----------------------
    pids = json.loads((work_dir / "pids.json").read_text())
    os.kill(pids["marathon1"], signal.SIGKILL)
    wait_until(
        lambda: json.loads((work_dir / "pids.json").read_text())["marathon1"] != pids["marathon1"],
        20,
        "marathon restarted",
    )
    wait_until(
        lambda: httpx.get(f"http://{cluster['marathons'][0]}/v2/info", timeout=2).json()["elected"],
        60,
        "restarted marathon leads",
    )
    assert "marathon1 restarted" in (work_dir / "logs" / "supervisor.log").read_text()

    # -- down: nothing of this cluster keeps running --------------------------------------
    assert processes_of(work_dir)
    r = paddock("down", *wd)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(f"/proc/{sup_pid}") or _zombie(sup_pid)
    assert processes_of(work_dir) == []
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{cluster['marathons'][0]}/ping", timeout=2)
    r = paddock("down", *wd)
    assert r.returncode == 1 and r.stderr.startswith("error: no cluster is running")

    # -- a second up resumes: same ports, the apps' state kept --------------------------
    r = paddock("up", *wd, "--detach", "--no-example")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "resuming" in r.stdout
    assert f"the daemons read {cfg}" in r.stdout  # recorded by the first up
    assert json.loads((work_dir / "cluster.json").read_text()) == cluster
    assert _gc_delays(cluster) == ["4321.5secs", "4321.5secs"]
    apps = wait_until(
        lambda: (
            (a := {x["id"]: x for x in paddock_json("app", "list", *wd)})
            and all(x["tasksRunning"] == x["instances"] for x in a.values())
            and a
        ),
        90,
        "apps running again after resume",
    )
    assert apps["/hello"]["instances"] == 1 and apps["/tools/echo"]["instances"] == 2
    r = paddock("up", *wd, "--detach")
    assert r.returncode == 1 and "already running" in r.stderr

    # -- SIGKILL of the supervisor orphans daemons and tasks; down still stops them all
    # (recorded pids, daemons naming the directory, tasks in its sandboxes) -------------
    # Right after the resume marathon may still list the task it knew before the
    # `down` until reconciliation replaces it, so look for whichever task serves.
    def a_serving_hello_task() -> dict | None:
        for task in paddock_json("task", "list", "--app", "/hello", *wd):
            try:
                if task.get("ports") and serving(task):
                    return task
            except httpx.HTTPError:
                pass
        return None

    hello = wait_until(a_serving_hello_task, 90, "the resumed app serves")
    os.kill(int((work_dir / "supervisor.pid").read_text()), signal.SIGKILL)
    assert serving(hello)  # orphaned, still running
    r = paddock("down", *wd)
    assert r.returncode == 0, r.stderr
    assert processes_of(work_dir) == []


def _gc_delays(cluster: dict) -> list[str]:
    return [
        httpx.get(f"http://{a}/state", timeout=5).json()["flags"]["gc_delay"]
        for a in cluster["agents"]
    ]


def test_up_checks_every_daemon_table_of_its_config_before_starting(tmp_path: Path):
    cfg = tmp_path / "paddock.toml"
    cfg.write_text("[up]\nkeepers = 1\n[master]\nqorum = 2\n")  # misspelt
    r = paddock("up", "--work-dir", str(tmp_path / "c"), "--config", str(cfg), "--detach")
    assert r.returncode == 2
    assert "[master]: unknown setting 'qorum'" in r.stderr
    assert not (tmp_path / "c").exists()  # nothing laid out, nothing started
    other = tmp_path / "paddock.conf"  # valid TOML, but keeper would take it for a zoo.cfg
    other.write_text("[up]\nkeepers = 1\n")
    r = paddock("up", "--work-dir", str(tmp_path / "c"), "--config", str(other), "--detach")
    assert r.returncode != 0 and "takes a .toml file" in r.stderr


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True


def test_foreground_up_stops_everything_on_sigterm(work_dir: Path):
    proc = subprocess.Popen(
        [*PADDOCK, "up", "--work-dir", str(work_dir), *SMALL, "--agents", "1", "--no-example"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        seen = []
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if "Ctrl-C stops the cluster" in line:
                break
        assert any("cluster is up" in s for s in seen), "".join(seen)
        assert processes_of(work_dir)
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=90)[0]
        assert proc.returncode == 0, rest
        assert "stopped" in rest
        assert processes_of(work_dir) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow  # ~25 s to form plus checks; the small cluster covers the same paths
@pytest.mark.timeout(200)
def test_default_shape_3_keepers_3_masters_3_agents_2_marathons(work_dir: Path):
    wd = ["--work-dir", str(work_dir)]
    t0 = time.monotonic()
    r = paddock("up", *wd, "--detach")
    assert r.returncode == 0, r.stdout + r.stderr
    print(f"up --detach (3/3/3/2, with example app): {time.monotonic() - t0:.1f}s")
    st = paddock_json("status", *wd)
    modes = sorted(k["mode"] for k in st["keepers"])
    assert modes == ["follower", "follower", "leader"]
    assert st["master_quorum"] and st["master_leader"] in [m["address"] for m in st["masters"]]
    assert sum(1 for m in st["masters"] if m.get("elected")) == 1
    assert len([a for a in st["agents"] if a["active"]]) == 3
    assert sum(1 for m in st["marathons"] if m["leader"]) == 1
    tasks = paddock_json("task", "list", *wd)
    assert len(tasks) == 3 and all(serving(t) for t in tasks)
    # a standby marathon answers too (it proxies to the leader)
    cluster = json.loads((work_dir / "cluster.json").read_text())
    for m in cluster["marathons"]:
        r = paddock("app", "list", "-o", "json", "--marathon", m)
        assert r.returncode == 0 and json.loads(r.stdout)[0]["id"] == "/hello", r.stderr
    assert paddock("down", *wd).returncode == 0
    assert processes_of(work_dir) == []


def test_up_on_an_existing_zookeeper_and_zk_commands(work_dir: Path):
    """--zk: masters and marathon use an ensemble we did not start (Apache ZooKeeper
    when installed, else a keeper); ``paddock zk`` reads and writes it; ``down``
    leaves the ensemble alone."""
    from paddock.testing import zk_ensemble, zookeeper_unavailable_reason

    kind = "zookeeper" if zookeeper_unavailable_reason() is None else "keeper"
    ens = zk_ensemble(kind, 1)
    try:
        zk = f"zk://{ens.hosts}/paddock"
        wd = ["--work-dir", str(work_dir)]
        r = paddock(
            "up", *wd, "--zk", zk, "--masters", "1", "--agents", "1", "--marathons", "1",
            "--no-example", "--detach",
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        cluster = json.loads((work_dir / "cluster.json").read_text())
        assert cluster["zk"] == zk and cluster["keepers"] == [ens.hosts]
        assert not any(p.name.startswith("keeper") for p in (work_dir / "logs").iterdir())
        st = paddock_json("status", *wd)
        assert st["keeper_quorum"] and st["master_leader"] == cluster["masters"][0]
        # cluster.json's zk carries the chroot: paths are below /paddock, as in zkCli
        assert {"mesos", "marathon"} <= set(paddock_json("zk", "ls", "/", *wd))
        bare = ["--zk", f"zk://{ens.hosts}"]
        assert {"mesos", "marathon"} <= set(paddock_json("zk", "ls", "/paddock", *bare))
        assert paddock("zk", "set", "/x/y", "hello", *wd).returncode == 0
        got = paddock_json("zk", "get", "/paddock/x/y", *bare)
        assert got["data"] == "hello" and got["version"] == 0
        assert paddock("zk", "set", "/x/y", "again", *wd).returncode == 0
        assert paddock("zk", "get", "/x/y", *wd).stdout == "again\n"
        r = paddock("zk", "rm", "/x", *wd)
        assert r.returncode == 1 and "children" in r.stderr
        assert paddock("zk", "rm", "-r", "/x", *wd).returncode == 0
        r = paddock("zk", "get", "/x/y", *wd)
        assert r.returncode == 1 and r.stderr == "error: no such znode\n"
        # a deployment that cannot finish says why it waits
        big = work_dir / "big.json"
        big.write_text(json.dumps({"id": "/big", "cmd": "sleep 100", "cpus": 64, "mem": 32}))
        r = paddock("app", "deploy", str(big), "--timeout", "6", *wd)
        assert r.returncode == 1 and "InsufficientCpus" in r.stderr, r.stdout + r.stderr
        assert "InsufficientCpus" in r.stdout  # the live progress line shows it too
        assert paddock("app", "rm", "/big", "--force", *wd).returncode == 0
        assert paddock("down", *wd).returncode == 0
        assert processes_of(work_dir) == []
        assert all(m.running for m in ens.members)
    finally:
        ens.stop()
