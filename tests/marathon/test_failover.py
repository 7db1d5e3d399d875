"""Marathon failover on a real cluster: kill -9 of the leading marathon while a
deployment is in progress. A standby takes over (it was proxying to the old leader
until then), resumes the stored deployment with the same framework id, kills no
healthy task, and the instance count converges — in the master's view too."""

from __future__ import annotations

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
            print(c.logs(80))
        c.stop()
        ens.stop()


def slow_app(instances: int) -> dict:
    # Serves HTTP only two seconds after it starts: deployments take a while.
    return {
        "id": "/slow",
        "cmd": "sleep 2; exec python3 -m http.server $PORT0 --bind $HOST",
        "cpus": 0.1,
        "mem": 32,
        "instances": instances,
        "portDefinitions": [{"port": 0}],
        "healthChecks": [
            {
                "protocol": "HTTP",
                "gracePeriodSeconds": 20,
                "intervalSeconds": 1,
                "timeoutSeconds": 1,
                "maxConsecutiveFailures": 2,
            }
        ],
    }


def deployments(base: str) -> list[dict]:
    return httpx.get(base + "/v2/deployments", timeout=5).json()


def running_in_master(master_url: str, framework_id: str) -> list[str]:
    state = httpx.get(master_url + "/master/state", timeout=5).json()
    for fw in state.get("frameworks", []):
        if fw["id"] == framework_id:
            return [t["id"] for t in fw.get("tasks", []) if t["state"] == "TASK_RUNNING"]
    return []


def test_leader_killed_during_deployments(cluster: Cluster):
    master = cluster.start_master()
    for i in range(3):
        cluster.start_agent(
            f"127.0.0.{i + 1}", f"rack:r{i}", f"{32000 + 200 * i}-{32199 + 200 * i}"
        )
    m0 = cluster.start_marathon()
    wait_until(lambda: leader_of([m0]), 30, "first marathon leads")
    m1 = cluster.start_marathon()
    base0, base1 = url(m0), url(m1)

    # The standby answers /v2/leader itself and proxies the rest to the leader.
    wait_until(
        lambda: (
            httpx.get(base1 + "/v2/leader", timeout=5).json().get("leader")
            == f"127.0.0.1:{m0.port}"
        ),
        15,
        "standby knows the leader",
    )
    r = httpx.post(base1 + "/v2/apps", json=slow_app(3), timeout=10)
    assert r.status_code == 201, r.text
    assert r.headers.get("X-Marathon-Leader") == f"127.0.0.1:{m0.port}"
    first = wait_until(
        lambda: (t := healthy_running(app_tasks(base0, "/slow"))) and len(t) == 3 and t,
        40,
        "3 healthy",
    )
    wait_until(lambda: not deployments(base0), 20, "first deployment done")
    fw = httpx.get(base0 + "/v2/info", timeout=5).json()["frameworkId"]
    healthy_before = {t["id"] for t in first}

    # -- failover 1: during a scale from 3 to 6 ----------------------------------------
    assert httpx.put(base0 + "/v2/apps/slow", json={"instances": 6}, timeout=10).status_code == 200
    wait_until(
        lambda: len([t for t in app_tasks(base0, "/slow") if t["state"] == "TASK_RUNNING"]) >= 4,
        20,
        "new instances running",
    )
    assert deployments(base0), "the scale finished too early to test a failover during it"
    m0.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(lambda: leader_of([m1]), 30, "the standby leads")
    took_over = time.monotonic() - killed_at
    assert httpx.get(base1 + "/v2/info", timeout=5).json()["frameworkId"] == fw
    final = wait_until(
        lambda: (
            not deployments(base1)
            and (t := healthy_running(app_tasks(base1, "/slow")))
            and len(t) == 6
            and t
        ),
        40,
        "the resumed scale completes",
    )
    assert healthy_before <= {t["id"] for t in final}, "a healthy task was killed"
    assert len(app_tasks(base1, "/slow")) == 6
    wait_until(
        lambda: sorted(running_in_master(url(master), fw)) == sorted(t["id"] for t in final),
        20,
        "the master runs exactly marathon's tasks",
    )

    # -- failover 2: during a rolling restart (minimumHealthCapacity 1) -----------------
    m2 = cluster.start_marathon()
    wait_until(
        lambda: (
            httpx.get(url(m2) + "/v2/leader", timeout=5).json().get("leader")
            == f"127.0.0.1:{m1.port}"
        ),
        15,
        "new standby knows the leader",
    )
    old_ids = {t["id"] for t in final}
    assert httpx.post(base1 + "/v2/apps/slow/restart", timeout=10).status_code == 200
    wait_until(
        lambda: any(t["id"] not in old_ids for t in app_tasks(base1, "/slow")),
        20,
        "restart under way",
    )
    m1.kill(signal.SIGKILL)
    base2 = url(m2)
    wait_until(lambda: leader_of([m2]), 30, "the second standby leads")
    # A new leader knows no health results until its first checks ran, so count running
    # instances: with minimumHealthCapacity 1 an old one may only go once a new one is
    # healthy, so there are never fewer than 6.
    lowest = 6
    end = time.monotonic() + 60
    while time.monotonic() < end:
        tasks = app_tasks(base2, "/slow")
        lowest = min(lowest, len([t for t in tasks if t["state"] == "TASK_RUNNING"]))
        if not deployments(base2) and len(tasks) == 6:
            break
        time.sleep(0.2)
    tasks = app_tasks(base2, "/slow")
    assert not deployments(base2), "the resumed restart did not finish"
    assert len(tasks) == 6 and not ({t["id"] for t in tasks} & old_ids)
    assert len(healthy_running(tasks)) == 6
    assert lowest >= 6, f"running instances dropped to {lowest} during the restart"
    wait_until(
        lambda: sorted(running_in_master(url(master), fw)) == sorted(t["id"] for t in tasks),
        20,
        "the master runs exactly marathon's tasks after the restart",
    )

    # -- abdication: DELETE /v2/leader makes the leader leave (and exit); no task dies --
    m3 = cluster.start_marathon()
    wait_until(
        lambda: (
            httpx.get(url(m3) + "/v2/leader", timeout=5).json().get("leader")
            == f"127.0.0.1:{m2.port}"
        ),
        15,
        "third standby knows the leader",
    )
    r = httpx.delete(base2 + "/v2/leader", timeout=5)
    assert r.status_code == 200, r.text
    assert m2.proc is not None and m2.proc.wait(15) == 0
    wait_until(lambda: leader_of([m3]), 30, "the third marathon leads")
    survivors = {t["id"] for t in tasks}
    time.sleep(2)  # reconciliation after 1 s: nothing known is killed
    after = wait_until(
        lambda: (t := healthy_running(app_tasks(url(m3), "/slow"))) and len(t) == 6 and t,
        20,
        "6 healthy under the third leader",
    )
    assert {t["id"] for t in after} == survivors
    print(f"standby took over {took_over:.1f}s after kill -9 of the leader")
