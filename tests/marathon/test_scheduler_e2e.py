"""End to end on a real local cluster: real ZooKeeper, one ``paddock master``, four
``paddock agent`` processes on distinct loopback hosts (three with ``nfs:true``), one
``paddock marathon``. An app with an HTTP health check and constraints runs on the right
agents; scaling past what the constraints allow leaves the queue explaining why; a
rolling restart keeps enough healthy instances; a task killed outside (kill -9) is
replaced; deleting the app stops everything."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from scheduler_cluster import (
    Cluster,
    app_tasks,
    healthy_running,
    leader_of,
    url,
    wait_until,
)

from paddock.testing import zk_ensemble, zookeeper_unavailable_reason

pytestmark = pytest.mark.timeout(170)

NFS_HOSTS = {"127.0.0.1", "127.0.0.2", "127.0.0.3"}


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest):
    reason = zookeeper_unavailable_reason()
    if reason is not None:
        pytest.skip(f"zookeeper: {reason}")
    ens = zk_ensemble("zookeeper", 1, tick_ms=500)
    c = Cluster(ens.hosts, tmp_path)
    failed_before = request.session.testsfailed
    try:
        yield c
    finally:
        if request.session.testsfailed > failed_before:
            print(c.logs(60))
        c.stop()
        ens.stop()


def web_app(pid_dir: Path, instances: int = 3) -> dict:
    return {
        "id": "/ocf/web",
        "cmd": f"echo $$ > {pid_dir}/$MESOS_TASK_ID.pid; "
        "exec python3 -m http.server $PORT0 --bind $HOST",
        "cpus": 0.1,
        "mem": 32,
        "instances": instances,
        "portDefinitions": [{"port": 0, "name": "http"}],
        "constraints": [["hostname", "UNIQUE"], ["nfs", "CLUSTER", "true"]],
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0},
        "backoffSeconds": 1,
        "healthChecks": [
            {
                "protocol": "HTTP",
                "path": "/",
                "portIndex": 0,
                "gracePeriodSeconds": 15,
                "intervalSeconds": 1,
                "timeoutSeconds": 1,
                "maxConsecutiveFailures": 2,
            }
        ],
    }


def deployments(base: str) -> list[dict]:
    return httpx.get(base + "/v2/deployments", timeout=5).json()


def test_app_lifecycle_on_real_cluster(cluster: Cluster, tmp_path: Path):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    cluster.start_master()
    for i, host in enumerate(sorted(NFS_HOSTS)):
        cluster.start_agent(host, f"nfs:true;rack:r{i}", f"{31000 + 100 * i}-{31099 + 100 * i}")
    cluster.start_agent("127.0.0.4", "rack:r9", "31400-31499")
    m = cluster.start_marathon()
    base = url(m)
    wait_until(lambda: leader_of([m]), 30, "marathon leads")
    info = httpx.get(base + "/v2/info", timeout=5).json()
    assert info["elected"] and info["leader"] == f"127.0.0.1:{m.port}"

    # -- deploy: 3 healthy instances, one per nfs host -------------------------------
    r = httpx.post(base + "/v2/apps", json=web_app(pid_dir), timeout=10)
    assert r.status_code == 201, r.text
    tasks = wait_until(
        lambda: (t := healthy_running(app_tasks(base, "/ocf/web"))) and len(t) == 3 and t,
        45,
        "3 healthy instances",
    )
    assert {t["host"] for t in tasks} == NFS_HOSTS
    for t in tasks:
        assert t["id"].startswith("ocf_web.")
        assert t["ports"] and 31000 <= t["ports"][0] < 31400
        # the instance really serves on its host and port
        assert httpx.get(f"http://{t['host']}:{t['ports'][0]}/", timeout=5).status_code == 200
    wait_until(lambda: not deployments(base), 20, "deployment finished")
    app = httpx.get(base + "/v2/apps/ocf/web", timeout=5).json()["app"]
    assert app["tasksRunning"] == 3 and app["tasksHealthy"] == 3 and app["tasksStaged"] == 0
    framework_id = httpx.get(base + "/v2/info", timeout=5).json()["frameworkId"]
    assert framework_id

    # -- a failing app backs off: the queue shows the delay, lastTaskFailure the cause --
    bad = {"id": "/bad", "cmd": "exit 3", "cpus": 0.01, "mem": 8, "instances": 1,
           "backoffSeconds": 5, "backoffFactor": 2, "maxLaunchDelaySeconds": 60}  # fmt: skip
    assert httpx.post(base + "/v2/apps", json=bad, timeout=10).status_code == 201

    def delayed():
        for item in httpx.get(base + "/v2/queue", timeout=5).json()["queue"]:
            if item["app"]["id"] == "/bad" and item["delay"]["timeLeftSeconds"] > 0:
                return item
        return None

    item = wait_until(delayed, 30, "the failing app is delayed")
    assert item["delay"]["overdue"] is False and item["count"] == 1
    failure = httpx.get(base + "/v2/apps/bad", timeout=5).json()["app"]["lastTaskFailure"]
    assert failure["state"] == "TASK_FAILED" and "3" in failure["message"]
    assert httpx.delete(base + "/v2/queue/bad/delay", timeout=5).status_code == 204
    assert httpx.delete(base + "/v2/apps/bad?force=true", timeout=10).status_code == 200

    # -- scale past the constraints: the 4th instance waits, and the queue says why ---
    r = httpx.put(base + "/v2/apps/ocf/web", json={"instances": 4}, timeout=10)
    assert r.status_code == 200, r.text

    def queue_explains():
        q = httpx.get(base + "/v2/queue", timeout=5).json()["queue"]
        for item in q:
            rows = {
                row["reason"]: row["declined"]
                for row in item["processedOffersSummary"]["rejectSummaryLaunchAttempt"]
            }
            if item["count"] == 1 and rows.get("UnfulfilledConstraint", 0) > 0:
                return item
        return None

    wait_until(queue_explains, 20, "queue explains the waiting instance")
    assert len(healthy_running(app_tasks(base, "/ocf/web"))) == 3
    r = httpx.put(base + "/v2/apps/ocf/web?force=true", json={"instances": 3}, timeout=10)
    assert r.status_code == 200, r.text
    wait_until(lambda: not deployments(base), 20, "scale back finished")
    assert httpx.get(base + "/v2/queue", timeout=5).json()["queue"] == []

    # -- rolling restart: never fewer than ceil(3 * 0.5) = 2 healthy -------------------
    before = {t["id"] for t in app_tasks(base, "/ocf/web")}
    r = httpx.post(base + "/v2/apps/ocf/web/restart", timeout=10)
    assert r.status_code == 200, r.text
    lowest = 3
    end = time.monotonic() + 60
    while time.monotonic() < end:
        lowest = min(lowest, len(healthy_running(app_tasks(base, "/ocf/web"))))
        if not deployments(base):
            break
        time.sleep(0.1)
    assert not deployments(base), "restart did not finish"
    tasks = app_tasks(base, "/ocf/web")
    assert len(tasks) == 3 and not ({t["id"] for t in tasks} & before)
    assert lowest >= 2
    assert {t["host"] for t in tasks} == NFS_HOSTS

    # -- a task killed outside marathon is replaced -------------------------------------
    victim = tasks[0]
    pid = int((pid_dir / f"{victim['id']}.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    replaced = wait_until(
        lambda: (
            (t := healthy_running(app_tasks(base, "/ocf/web")))
            and len(t) == 3
            and victim["id"] not in {x["id"] for x in t}
            and t
        ),
        45,
        "replacement of the killed task",
    )
    assert {t["host"] for t in replaced} == NFS_HOSTS
    app = httpx.get(base + "/v2/apps/ocf/web?embed=apps.lastTaskFailure", timeout=5).json()["app"]
    assert app["lastTaskFailure"]["taskId"] == victim["id"]
    assert app["lastTaskFailure"]["state"] == "TASK_FAILED"

    # -- delete: every task ends and its process is gone ----------------------------------
    pids = [int((pid_dir / f"{t['id']}.pid").read_text()) for t in replaced]
    r = httpx.delete(base + "/v2/apps/ocf/web", timeout=10)
    assert r.status_code == 200, r.text
    wait_until(lambda: not deployments(base), 30, "delete finished")
    assert httpx.get(base + "/v2/tasks", timeout=5).json()["tasks"] == []
    wait_until(lambda: not any(_alive(p) for p in pids), 15, "task processes gone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False
