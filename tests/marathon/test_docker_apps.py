"""The seed's ``/ocfweb/web`` DOCKER app, end to end through marathon on a real local
cluster with real containers: keeper, one ``paddock master``, four ``paddock agent``
processes (``--containerizers docker,mesos`` on podman's Docker-compatible service), on
127.0.1.1-.4, three of them with ``nfs:true``, and one ``paddock marathon``.

- The seed's definition as written (its registry image cannot be pulled here) is
  accepted; its tasks fail with the pull error, marathon backs off (the delay grows per
  backoffSeconds/backoffFactor) and says why (``lastTaskFailure``, ``/v2/queue``).
- The same app on a local busybox image (cpus/mem scaled down, BRIDGE network,
  containerPort 8000 -> a host port from the offer) runs 3 healthy instances on the
  three nfs agents, each answering HTTP on its host port from a real container; a new
  version rolls over the same hosts; scaling to 0 and deleting remove the containers.
- A HOST-network app with a host volume and a docker ``label`` parameter; a MESOS
  container naming an image fails with a reason (no unified containerizer here).

One cluster for the module: starting agents and the engine is most of the cost.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from scheduler_cluster import Cluster, Proc, app_tasks, healthy_running, leader_of, url, wait_until

from paddock.cli.app_cmd import _waiting_reason
from paddock.marathon.scheduler.taskinfo import build_task_info
from paddock.marathon.validation import checked_app
from paddock.testing import keeper_unavailable_reason, zk_ensemble
from paddock.testing.podman import (
    TEST_IMAGE,
    ensure_test_image,
    podman_service,
    podman_unavailable_reason,
    remove_labelled_containers,
)
from paddock.testing.ports import free_ports

pytestmark = pytest.mark.timeout(240)

NFS_HOSTS = ["127.0.1.1", "127.0.1.2", "127.0.1.3"]
PLAIN_HOST = "127.0.1.4"
SEED_IMAGE = "docker.ocf.berkeley.edu/ocfweb-web:2020-11-26"

#: The seed's app (docs: "id", "cpus", "mem", "instances", a DOCKER container) with the
#: health checks and constraints the issue gives it, exactly as an operator would post it.
SEED_OCFWEB: dict[str, Any] = {
    "id": "/ocfweb/web",
    "cpus": 1,
    "mem": 1024,
    "instances": 3,
    "container": {"type": "DOCKER", "docker": {"image": SEED_IMAGE}},
    "healthChecks": [
        {"protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 30},
        {"protocol": "TCP"},
    ],
    "constraints": [["hostname", "UNIQUE"], ["nfs", "CLUSTER", "true"]],
}


def local_ocfweb(instances: int = 3) -> dict[str, Any]:
    """The seed's app on the local image: busybox httpd on container port 8000, bridged
    to a host port from the offer; cpus/mem and check intervals scaled for a test."""
    return {
        "id": "/ocfweb/web",
        "cmd": "exec httpd -f -p 8000 -h /www",
        "cpus": 0.1,
        "mem": 48,
        "instances": instances,
        "container": {
            "type": "DOCKER",
            "docker": {"image": TEST_IMAGE},
            "portMappings": [
                {"containerPort": 8000, "hostPort": 0, "protocol": "tcp", "name": "http"}
            ],
        },
        "networks": [{"mode": "container/bridge"}],
        "env": {"OCFWEB_ENV": "test"},
        "labels": {"owner": "ocf", "HAPROXY_GROUP": "external"},
        "healthChecks": [
            {
                "protocol": "HTTP",
                "path": "/",
                "portIndex": 0,
                "gracePeriodSeconds": 60,
                "intervalSeconds": 1,
                "timeoutSeconds": 5,
                "maxConsecutiveFailures": 10,
            },
            {"protocol": "TCP", "portIndex": 0, "intervalSeconds": 1, "timeoutSeconds": 5},
        ],
        "constraints": [["hostname", "UNIQUE"], ["nfs", "CLUSTER", "true"]],
        "taskKillGracePeriodSeconds": 2,
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0},
    }


def _port_block(size: int) -> int:
    """A run of ``size`` ports free on every address (bridged containers bind 0.0.0.0),
    below the ephemeral range and away from the 31000s other cluster tests use."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 30000 - size)
        socks: list[socket.socket] = []
        try:
            for p in range(base, base + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("0.0.0.0", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block")


def start_docker_agent(c: Cluster, hostname: str, attributes: str, socket_url: str) -> Proc:
    (port,) = free_ports(1, hostname)
    base = _port_block(8)
    name = f"agent{len(c.agents)}"
    cmd = c._py(
        "agent", "--master", c.master_zk, "--port", str(port),
        "--work-dir", str(c.work / name), "--ip", hostname, "--hostname", hostname,
        "--resources", f"cpus:4;mem:4096;disk:1000;ports:[{base}-{base + 7}]",
        "--attributes", attributes, "--no-cgroups",
        "--registration-backoff-factor", "0.2", "--status-update-retry-min", "1",
        "--default-kill-grace", "1",
        "--containerizers", "docker,mesos", "--docker-socket", socket_url,
    )  # fmt: skip
    p = Proc(name, cmd, c.work / f"{name}.log", port).start()
    c.agents.append(p)
    c.procs.append(p)
    return p


@pytest.fixture(scope="module")
def docker_socket() -> Iterator[str]:
    reason = podman_unavailable_reason()
    if reason is not None:
        pytest.skip(f"podman: {reason}")
    ensure_test_image()
    with podman_service() as socket_url:
        yield socket_url


@pytest.fixture(scope="module")
def docker_api(docker_socket: str) -> Iterator[Any]:
    import docker

    client = docker.APIClient(base_url=docker_socket, version="1.41", timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, docker_socket: str, request: pytest.FixtureRequest
) -> Iterator[tuple[Cluster, str]]:
    reason = keeper_unavailable_reason()
    if reason is not None:
        pytest.skip(f"keeper: {reason}")
    work = tmp_path_factory.mktemp("docker-apps")
    ens = zk_ensemble("keeper", 1, tick_ms=500)
    c = Cluster(ens.hosts, work)
    failed_before = request.session.testsfailed
    try:
        c.start_master()
        for i, host in enumerate(NFS_HOSTS):
            start_docker_agent(c, host, f"nfs:true;rack:r{i}", docker_socket)
        start_docker_agent(c, PLAIN_HOST, "rack:r9", docker_socket)
        m = c.start_marathon()
        wait_until(lambda: leader_of([m]), 90, "marathon leads")
        base = url(m)
        # all four agents registered (marathon sees their offers through the master)
        wait_until(lambda: len(_agents(c)) == 4, 90, "4 agents registered")
        yield c, base
    finally:
        if request.session.testsfailed > failed_before:
            print(c.logs(80))
        c.stop()
        ens.stop()
        for i in range(len(c.agents)):
            remove_labelled_containers(docker_socket, f"paddock.work_dir={work / f'agent{i}'}")


def _agents(c: Cluster) -> list[dict[str, Any]]:
    r = httpx.get(url(c.masters[0]) + "/master/slaves", timeout=5)
    return list(r.json()["slaves"])


def _deployments(base: str) -> list[dict[str, Any]]:
    return list(httpx.get(base + "/v2/deployments", timeout=10).json())


def _queue_item(base: str, app_id: str) -> dict[str, Any] | None:
    for item in httpx.get(base + "/v2/queue", timeout=10).json()["queue"]:
        if item["app"]["id"] == app_id:
            return dict(item)
    return None


def _last_failure(base: str, app_id: str) -> dict[str, Any] | None:
    r = httpx.get(f"{base}/v2/apps{app_id}?embed=apps.lastTaskFailure", timeout=10)
    return r.json()["app"].get("lastTaskFailure")


def _containers(api: Any, task_id: str) -> list[dict[str, Any]]:
    return list(api.containers(all=True, filters={"label": f"paddock.task_id={task_id}"}))


def _delete_app(base: str, app_id: str) -> None:
    r = httpx.delete(f"{base}/v2/apps{app_id}?force=true", timeout=10)
    assert r.status_code == 200, r.text
    wait_until(lambda: not _deployments(base), 60, f"{app_id} deleted")
    wait_until(
        lambda: httpx.get(f"{base}/v2/apps{app_id}", timeout=10).status_code == 404,
        30,
        f"{app_id} gone",
    )


def test_seed_definition_as_written_fails_to_pull_and_backs_off(
    cluster: tuple[Cluster, str], docker_api: Any
):
    _, base = cluster
    # The seed's text shows the image as "" (elided): marathon says what is wrong.
    elided = {**SEED_OCFWEB, "container": {"type": "DOCKER", "docker": {"image": ""}}}
    r = httpx.post(base + "/v2/apps", json=elided, timeout=10)
    assert r.status_code == 422, r.text
    assert any(d["path"] == "/container/docker/image" for d in r.json()["details"]), r.text

    r = httpx.post(base + "/v2/apps", json=SEED_OCFWEB, timeout=10)
    assert r.status_code == 201, r.text
    app = r.json()
    assert app["container"]["docker"]["image"] == SEED_IMAGE
    assert app["constraints"] == SEED_OCFWEB["constraints"]

    failure = wait_until(lambda: _last_failure(base, "/ocfweb/web"), 90, "a task failure")
    assert failure["state"] == "TASK_FAILED"
    assert failure["message"].startswith(f"Failed to pull image {SEED_IMAGE}: "), failure
    assert failure["host"] in NFS_HOSTS  # the constraints held for the failed attempts too
    assert failure["taskId"].startswith("ocfweb_web.")

    # marathon holds further launches back, and the queue says so
    item = wait_until(
        lambda: (q := _queue_item(base, "/ocfweb/web")) and q["delay"]["timeLeftSeconds"] > 0 and q,
        60,
        "the seed app delayed in the queue",
    )
    assert item["delay"]["overdue"] is False
    assert 1 <= item["count"] <= 3
    summary = item["processedOffersSummary"]
    rejects = {row["reason"]: row["declined"] for row in summary["rejectSummaryLaunchAttempt"]}
    # the only agent that ever declines for a placement reason is the one without nfs
    assert set(k for k, v in rejects.items() if v) <= {"UnfulfilledConstraint"}, summary
    assert summary["processedOffersCount"] >= summary["unusedOffersCount"] >= 0
    # `paddock app`'s "why it waits" line names the failure, not the declined offers
    why = wait_until(
        lambda: (w := _waiting_reason(base, "/ocfweb/web")) and "backoff" in w and w,
        60,
        "the CLI's waiting reason during backoff",
    )
    assert f"after TASK_FAILED: Failed to pull image {SEED_IMAGE}" in why, why
    # nothing was left behind in the engine by the failed launches
    assert not _containers(docker_api, failure["taskId"])

    _delete_app(base, "/ocfweb/web")
    assert _queue_item(base, "/ocfweb/web") is None

    # -- the delay grows per backoffSeconds * backoffFactor^(n-1) --------------------
    # (a fresh app with one instance, so the failures come one at a time)
    retry = {**SEED_OCFWEB, "id": "/ocfweb/retry", "instances": 1, "backoffSeconds": 4,
             "backoffFactor": 3, "maxLaunchDelaySeconds": 60}  # fmt: skip
    r = httpx.post(base + "/v2/apps", json=retry, timeout=10)
    assert r.status_code == 201, r.text
    seen: list[int] = []

    def grown() -> list[int] | None:
        # from the first delay (<= 4 s) to a longer one
        small = [i for i, v in enumerate(seen) if v <= 4]
        return seen[small[0] :] if small and max(seen[small[0] :]) >= 6 else None

    end = time.monotonic() + 90
    while time.monotonic() < end and not grown():
        q = _queue_item(base, "/ocfweb/retry")
        if q is not None and q["delay"]["timeLeftSeconds"] > 0:
            seen.append(q["delay"]["timeLeftSeconds"])
        time.sleep(0.2)
    # first failure: 4 s; second: 12 s (whole seconds, rounded up, read while counting down)
    after = grown()
    assert after is not None and max(after) <= 12, seen
    assert seen[0] <= 4, seen
    failure = _last_failure(base, "/ocfweb/retry")
    assert failure is not None and SEED_IMAGE in failure["message"]

    _delete_app(base, "/ocfweb/retry")
    assert _queue_item(base, "/ocfweb/retry") is None


def test_ocfweb_on_local_image_runs_on_the_nfs_agents(
    cluster: tuple[Cluster, str], docker_api: Any
):
    _, base = cluster
    r = httpx.post(base + "/v2/apps", json=local_ocfweb(), timeout=10)
    assert r.status_code == 201, r.text
    tasks = wait_until(
        lambda: (t := healthy_running(app_tasks(base, "/ocfweb/web"))) and len(t) == 3 and t,
        150,
        "3 healthy instances",
    )
    assert sorted(t["host"] for t in tasks) == NFS_HOSTS  # UNIQUE, and never the nfs-less one
    for t in tasks:
        assert len(t["healthCheckResults"]) == 2
        [host_port] = t["ports"]
        # the instance answers on its agent's address and the host port from the offer
        resp = httpx.get(f"http://{t['host']}:{host_port}/", timeout=10)
        assert resp.status_code == 200 and resp.text.strip() == "paddock-busybox"

        # a real container, labelled with the task, limits and port mapping as asked
        [ctr] = _containers(docker_api, t["id"])
        assert ctr["State"] == "running"
        info = docker_api.inspect_container(ctr["Id"])
        assert info["Config"]["Image"] == TEST_IMAGE
        assert info["HostConfig"]["Memory"] == 48 * 1024 * 1024
        assert info["HostConfig"]["NanoCpus"] == 100_000_000
        bindings = info["HostConfig"]["PortBindings"]["8000/tcp"]
        assert [int(b["HostPort"]) for b in bindings] == [host_port]
        env = dict(e.split("=", 1) for e in info["Config"]["Env"])
        assert env["OCFWEB_ENV"] == "test" and env["MARATHON_APP_ID"] == "/ocfweb/web"
        assert env["PORT0"] == str(host_port) and env["MESOS_TASK_ID"] == t["id"]
        assert env["MARATHON_APP_LABEL_OWNER"] == "ocf"
        assert env["MARATHON_APP_DOCKER_IMAGE"] == TEST_IMAGE
    wait_until(lambda: not _deployments(base), 60, "deployment finished")
    app = httpx.get(base + "/v2/apps/ocfweb/web", timeout=10).json()["app"]
    assert app["tasksRunning"] == 3 and app["tasksHealthy"] == 3
    assert app["labels"] == {"owner": "ocf", "HAPROXY_GROUP": "external"}
    assert _queue_item(base, "/ocfweb/web") is None

    # -- a new version (as a new image tag would be) rolls over the same three hosts ---
    old_ids = {t["id"] for t in tasks}
    r = httpx.put(
        base + "/v2/apps/ocfweb/web",
        json={**local_ocfweb(), "env": {"OCFWEB_ENV": "v2"}},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    wait_until(lambda: not _deployments(base), 120, "rolling upgrade finished")
    tasks = healthy_running(app_tasks(base, "/ocfweb/web"))
    assert len(tasks) == 3 and not ({t["id"] for t in tasks} & old_ids), tasks
    assert sorted(t["host"] for t in tasks) == NFS_HOSTS
    for t in tasks:
        [ctr] = _containers(docker_api, t["id"])
        env = dict(
            e.split("=", 1) for e in docker_api.inspect_container(ctr["Id"])["Config"]["Env"]
        )
        assert env["OCFWEB_ENV"] == "v2"
        assert httpx.get(f"http://{t['host']}:{t['ports'][0]}/", timeout=10).status_code == 200
    wait_until(
        lambda: not any(_containers(docker_api, i) for i in old_ids), 60, "old containers removed"
    )

    # -- scale to 0: every container is stopped and removed --------------------------
    ids = [t["id"] for t in tasks]
    r = httpx.put(base + "/v2/apps/ocfweb/web", json={"instances": 0}, timeout=10)
    assert r.status_code == 200, r.text
    wait_until(lambda: not _deployments(base), 60, "scale to 0 finished")
    wait_until(lambda: not app_tasks(base, "/ocfweb/web"), 30, "no tasks")
    wait_until(lambda: not any(_containers(docker_api, i) for i in ids), 60, "containers removed")
    for t in tasks:
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://{t['host']}:{t['ports'][0]}/", timeout=2)

    # -- scale back to 1, then delete the app: its container goes too ----------------
    r = httpx.put(base + "/v2/apps/ocfweb/web", json={"instances": 1}, timeout=10)
    assert r.status_code == 200, r.text
    [task] = wait_until(
        lambda: (t := healthy_running(app_tasks(base, "/ocfweb/web"))) and len(t) == 1 and t,
        90,
        "1 healthy instance",
    )
    assert task["host"] in NFS_HOSTS and _containers(docker_api, task["id"])
    _delete_app(base, "/ocfweb/web")
    wait_until(lambda: not _containers(docker_api, task["id"]), 60, "container removed")
    assert httpx.get(base + "/v2/tasks", timeout=10).json()["tasks"] == []


def test_host_network_app_with_volume_and_parameters(
    cluster: tuple[Cluster, str], docker_api: Any, tmp_path_factory: pytest.TempPathFactory
):
    """The older spelling (``docker.network: HOST``), a host volume, a docker parameter."""
    _, base = cluster
    site = tmp_path_factory.mktemp("site")
    (site / "index.html").write_text("served from the host volume\n")
    app = {
        "id": "/ocfweb/static",
        "cmd": "exec httpd -f -p $PORT0 -h /srv",
        "cpus": 0.1,
        "mem": 32,
        "instances": 1,
        "container": {
            "type": "DOCKER",
            "docker": {
                "image": TEST_IMAGE,
                "network": "HOST",
                "parameters": [{"key": "label", "value": "ocf.service=static"}],
            },
            "volumes": [{"containerPath": "/srv", "hostPath": str(site), "mode": "RO"}],
        },
        "portDefinitions": [{"port": 0, "name": "http"}],
        "constraints": [["nfs", "CLUSTER", "true"]],
        "healthChecks": [
            {"protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 60,
             "intervalSeconds": 1, "timeoutSeconds": 5, "maxConsecutiveFailures": 10}
        ],
    }  # fmt: skip
    r = httpx.post(base + "/v2/apps", json=app, timeout=10)
    assert r.status_code == 201, r.text
    [task] = wait_until(
        lambda: (t := healthy_running(app_tasks(base, "/ocfweb/static"))) and len(t) == 1 and t,
        90,
        "the static app healthy",
    )
    assert task["host"] in NFS_HOSTS
    resp = httpx.get(f"http://{task['host']}:{task['ports'][0]}/", timeout=10)
    assert resp.text == "served from the host volume\n"
    [ctr] = _containers(docker_api, task["id"])
    assert ctr["Labels"]["ocf.service"] == "static"
    info = docker_api.inspect_container(ctr["Id"])
    assert info["HostConfig"]["NetworkMode"] == "host"
    _delete_app(base, "/ocfweb/static")
    wait_until(lambda: not _containers(docker_api, task["id"]), 60, "container removed")


def test_mesos_container_image_is_mesos_image_in_the_task_info():
    """Mesos's unified containerizer reads ``mesos.image``; DockerInfo is for DOCKER only."""
    app = checked_app(
        {"id": "/ucr", "cmd": "true", "container": {"type": "MESOS", "docker": {"image": "x/y:1"}}}
    )
    info = build_task_info(app, "ucr.1", "agent-1", [31000])
    assert info["container"] == {
        "type": "MESOS",
        "mesos": {"image": {"type": "DOCKER", "docker": {"name": "x/y:1"}}},
    }
    plain = checked_app({"id": "/p", "cmd": "true", "container": {"type": "MESOS"}})
    assert build_task_info(plain, "p.1", "agent-1", [])["container"] == {
        "type": "MESOS",
        "mesos": {},
    }


def test_mesos_container_with_an_image_fails_with_a_reason(cluster: tuple[Cluster, str]):
    """The agents have no unified containerizer: the task fails and says so, rather than
    running the command on the host without the image."""
    _, base = cluster
    app = {
        "id": "/ocfweb/ucr",
        "cmd": "sleep 1000",
        "cpus": 0.05,
        "mem": 16,
        "container": {"type": "MESOS", "docker": {"image": TEST_IMAGE}},
        "backoffSeconds": 30,
    }
    r = httpx.post(base + "/v2/apps", json=app, timeout=10)
    assert r.status_code == 201, r.text
    failure = wait_until(lambda: _last_failure(base, "/ocfweb/ucr"), 60, "the task failed")
    assert failure["state"] == "TASK_FAILED"
    assert (
        f"Container image {TEST_IMAGE} needs Mesos's unified containerizer" in (failure["message"])
    )
    assert not app_tasks(base, "/ocfweb/ucr")  # nothing left running
    _delete_app(base, "/ocfweb/ucr")
