"""DOCKER tasks through the Docker Engine API, against real containers: a real
``paddock agent`` process (``--containerizers docker,mesos``) talking to podman's
Docker-compatible service, driven by the in-test master stand-in."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from paddock.testing.podman import (
    TEST_IMAGE,
    ensure_test_image,
    podman_service,
    podman_unavailable_reason,
    remove_labelled_containers,
)
from paddock.testing.ports import free_port

from .test_agent_integration import FW

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def docker_socket():
    reason = podman_unavailable_reason()
    if reason is not None:
        pytest.skip(f"podman: {reason}")
    ensure_test_image()
    with podman_service() as url:
        yield url


@pytest.fixture
def docker_api(docker_socket):
    import docker

    client = docker.APIClient(base_url=docker_socket, version="1.41", timeout=60)
    yield client
    client.close()


class AgentProc:
    """A real ``paddock agent`` process; always stopped, its containers always removed."""

    def __init__(self, work: Path, master: str, socket: str, log: Path) -> None:
        self.work, self.master, self.socket, self.log = work, master, socket, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, recover: str = "reconnect", containerizers: str = "docker,mesos") -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "paddock.cli.main", "agent",
                "--master", self.master, "--work-dir", str(self.work), "--port", "0",
                "--ip", "127.0.0.1", "--hostname", "localhost", "--recover", recover,
                "--resources", "cpus:2;mem:1024;disk:100;ports:[31000-31001]",
                "--registration-backoff-factor", "0.05", "--default-kill-grace", "1",
                "--containerizers", containerizers, "--docker-socket", self.socket,
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
async def agent(tmp_path, fake_master, docker_socket):
    a = AgentProc(tmp_path / "agent", fake_master.address, docker_socket, tmp_path / "agent.log")
    yield a
    rc = a.stop()
    print(f"--- agent log ({a.log}) ---\n{a.tail()}")  # shown when the test failed
    remove_labelled_containers(docker_socket, f"paddock.work_dir={a.work}")
    assert rc in (None, 0), a.tail()


def docker_task(
    task_id: str,
    *,
    cmd: str | None = None,
    args: list[str] | None = None,
    image: str = TEST_IMAGE,
    network: str = "HOST",
    ports: list[int] | None = None,
    port_mappings: list[dict] | None = None,
    env: dict[str, str] | None = None,
    volumes: list[dict] | None = None,
    mem: float = 32,
    grace: float | None = None,
    parameters: list[dict] | None = None,
    health_check: dict | None = None,
) -> dict:
    resources = [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
    ]
    if ports:
        resources.append(
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": p, "end": p} for p in ports]},
            }
        )
    command: dict = {
        "environment": {"variables": [{"name": k, "value": v} for k, v in (env or {}).items()]}
    }
    if cmd is not None:
        command.update(value=cmd, shell=True)
    else:
        command.update(shell=False, arguments=args or [])
    docker: dict = {"image": image, "network": network, "force_pull_image": False}
    if port_mappings is not None:
        docker["port_mappings"] = port_mappings
    if parameters:
        docker["parameters"] = parameters
    task: dict = {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": {"value": "agent-1"},
        "resources": resources,
        "command": command,
        "container": {"type": "DOCKER", "docker": docker, "volumes": volumes or []},
    }
    if health_check is not None:
        task["health_check"] = health_check
    if grace is not None:
        task["kill_policy"] = {"grace_period": {"nanoseconds": int(grace * 1e9)}}
    return {
        "type": "RUN_TASK",
        "run_task": {"framework": {"id": {"value": FW}, "name": "t", "user": "root"}, "task": task},
    }


def kill_task(task_id: str) -> dict:
    return {
        "type": "KILL_TASK",
        "kill_task": {"framework_id": {"value": FW}, "task_id": {"value": task_id}},
    }


def containers_of(api, task_id: str) -> list[dict]:
    return api.containers(all=True, filters={"label": f"paddock.task_id={task_id}"})


async def get_text(url: str, timeout: float = 30.0) -> str:
    """GET url until it answers (the server in the container needs a moment)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            try:
                resp = await client.get(url)
                return resp.text
            except httpx.HTTPError:
                if loop.time() > deadline:
                    raise
            await asyncio.sleep(0.1)


async def until(predicate, timeout: float = 60.0, what: str = "") -> None:
    """Poll an outside system (the container engine, files a container writes) in a
    thread, so the in-test master's event loop never waits on it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(predicate):
        if loop.time() > deadline:
            raise TimeoutError(f"not within {timeout} s: {what or predicate}")
        await asyncio.sleep(0.2)


def sandbox_file(work: Path, task_id: str, name: str) -> Path:
    [path] = work.glob(f"slaves/*/frameworks/{FW}/executors/{task_id}/runs/*/{name}")
    return path


async def test_bridge_port_mapping_serves_http_then_kill_removes_container(
    agent, fake_master, docker_api
):
    host_port = free_port()
    agent.start()
    await fake_master.wait_registrations(1, timeout=60)
    fake_master.auto_ack = True
    fake_master.send(
        docker_task(
            "web",
            args=["httpd", "-f", "-p", "8080", "-h", "/www"],
            network="BRIDGE",
            ports=[host_port],
            port_mappings=[{"host_port": host_port, "container_port": 8080, "protocol": "tcp"}],
            mem=48,
            grace=1,  # httpd as PID 1 ignores SIGTERM: the stop ends in SIGKILL
            # the container port: checked through its host port from the agent
            health_check={
                "type": "HTTP",
                "http": {"port": 8080, "path": "/"},
                "delay_seconds": 0,
                "interval_seconds": 0.5,
                "grace_period_seconds": 30,
            },
        )
    )
    running = await fake_master.wait_update("web", "TASK_RUNNING", timeout=60)
    assert running["source"] == "SOURCE_EXECUTOR"
    [c] = containers_of(docker_api, "web")
    [net] = running["container_status"]["network_infos"]
    assert running["container_status"]["container_id"] == {"value": c["Id"]}
    ip = net["ip_addresses"][0]["ip_address"]
    assert ip and ip != "127.0.0.1"  # the container's own address on the bridge
    assert (await get_text(f"http://127.0.0.1:{host_port}/")).strip() == "paddock-busybox"
    healthy = await fake_master.wait_for(
        lambda m: [s for s in m.updates("web") if s.get("healthy") is True], timeout=60
    )
    assert str(host_port) in healthy[0]["message"]

    [c] = containers_of(docker_api, "web")
    assert c["Names"][0].lstrip("/") == "paddock-agent-1-web"
    labels = c["Labels"]
    assert labels["paddock.agent_id"] == "agent-1"
    assert labels["paddock.framework_id"] == FW
    assert labels["paddock.run_id"]
    host_config = docker_api.inspect_container(c["Id"])["HostConfig"]
    assert host_config["Memory"] == 48 * 1024 * 1024
    assert host_config["NanoCpus"] == 100_000_000

    fake_master.send(kill_task("web"))
    killed = await fake_master.wait_update("web", "TASK_KILLED", timeout=60)
    assert "kill" in killed["message"]
    await until(lambda: not containers_of(docker_api, "web"), what="web container removed")
    with pytest.raises(httpx.HTTPError):
        async with httpx.AsyncClient(timeout=2.0) as client:
            await client.get(f"http://127.0.0.1:{host_port}/")


async def test_host_network_env_volumes_and_logs(agent, fake_master, tmp_path):
    port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("from the host\n")
    ro = tmp_path / "ro"
    ro.mkdir()
    agent.start()
    await fake_master.wait_registrations(1, timeout=60)
    fake_master.auto_ack = True
    # HOST network: a server on the task's port is reachable on the host's loopback.
    fake_master.send(
        docker_task("hostweb", cmd="exec httpd -f -p $PORT0 -h /www", ports=[port], grace=0)
    )
    fake_master.send(
        docker_task(
            "envvol",
            cmd=(
                "echo FOO=$FOO TASK=$MESOS_TASK_ID SANDBOX=$MESOS_SANDBOX; cat /data/in.txt; "
                "echo written-inside > /data/out.txt; echo to-stderr >&2; "
                "if echo x > /ro/x; then echo ro-writable; fi"
            ),
            env={"FOO": "bar baz"},
            volumes=[
                {"container_path": "/data", "host_path": str(data), "mode": "RW"},
                {"container_path": "/ro", "host_path": str(ro), "mode": "RO"},
            ],
        )
    )
    hostweb = await fake_master.wait_update("hostweb", "TASK_RUNNING", timeout=60)
    [net] = hostweb["container_status"]["network_infos"]
    assert net["ip_addresses"] == [{"protocol": "IPv4", "ip_address": "127.0.0.1"}]
    assert (await get_text(f"http://127.0.0.1:{port}/")).strip() == "paddock-busybox"

    finished = await fake_master.wait_update("envvol", "TASK_FINISHED", timeout=60)
    assert finished["message"] == "Container exited with status 0"
    stdout = sandbox_file(agent.work, "envvol", "stdout").read_text()
    assert "FOO=bar baz TASK=envvol SANDBOX=/mnt/mesos/sandbox" in stdout
    assert "from the host" in stdout
    assert "ro-writable" not in stdout
    assert (data / "out.txt").read_text() == "written-inside\n"
    assert not (ro / "x").exists()
    assert "to-stderr" in sandbox_file(agent.work, "envvol", "stderr").read_text()

    fake_master.send(kill_task("hostweb"))
    await fake_master.wait_update("hostweb", "TASK_KILLED", timeout=60)


async def test_exit_status_oom_pull_failure_and_bad_parameters(agent, fake_master, docker_api):
    agent.start()
    await fake_master.wait_registrations(1, timeout=60)
    fake_master.auto_ack = True
    fake_master.send(docker_task("three", cmd="echo bye; exit 3"))
    fake_master.send(
        # (a moment first: an OOM before the agent has set its watch up is only a 137)
        docker_task("hog", cmd="sleep 1; exec dd if=/dev/zero of=/dev/null bs=64M", mem=16)
    )
    image = "registry.invalid/paddock/nothing:latest"
    fake_master.send(docker_task("nopull", cmd="true", image=image))
    fake_master.send(
        docker_task("badparam", cmd="true", parameters=[{"key": "volume-driver", "value": "x"}])
    )
    failed = await fake_master.wait_update("three", "TASK_FAILED", timeout=60)
    assert failed["message"] == "Container exited with status 3"
    assert "bye" in sandbox_file(agent.work, "three", "stdout").read_text()

    hog = await fake_master.wait_update("hog", "TASK_FAILED", timeout=60)
    assert hog["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY", hog
    assert hog["source"] == "SOURCE_AGENT"

    nopull = await fake_master.wait_update("nopull", "TASK_FAILED", timeout=60)
    assert nopull["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert nopull["message"].startswith(f"Failed to pull image {image}: ")
    assert "registry.invalid" in nopull["message"][len(image) + 22 :]

    bad = await fake_master.wait_update("badparam", "TASK_ERROR", timeout=60)
    assert bad["reason"] == "REASON_TASK_INVALID"
    assert "unsupported docker parameter 'volume-driver'" in bad["message"]

    await until(lambda: not containers_of(docker_api, "three"), what="container removed")


async def test_agent_without_docker_containerizer_fails_docker_tasks(agent, fake_master):
    agent.start(containerizers="mesos")
    await fake_master.wait_registrations(1, timeout=60)
    fake_master.auto_ack = True
    fake_master.send(docker_task("nodocker", cmd="true"))
    failed = await fake_master.wait_update("nodocker", "TASK_FAILED", timeout=60)
    assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert "does not run Docker containers (--containerizers=mesos)" in failed["message"]


async def test_orphan_containers_are_removed_at_start(agent, fake_master, docker_api):
    agent.work.mkdir(parents=True)
    labels = {
        "paddock.agent_id": "agent-1",
        "paddock.framework_id": FW,
        "paddock.task_id": "orphan",
        "paddock.run_id": "r0",
        "paddock.work_dir": str(agent.work),
    }
    orphan = docker_api.create_container(
        TEST_IMAGE, command=["sleep", "300"], labels=labels, name=f"orphan-{free_port()}"
    )["Id"]
    docker_api.start(orphan)
    clash = f"clash{free_port()}"
    other = docker_api.create_container(  # another agent's, named like our task's will be
        TEST_IMAGE,
        command=["sleep", "300"],
        labels={"paddock.task_id": clash, "paddock.work_dir": "/elsewhere"},
        name=f"paddock-agent-1-{clash}",
    )["Id"]
    try:
        agent.start()
        await fake_master.wait_registrations(1, timeout=60)
        ids = {c["Id"] for c in docker_api.containers(all=True)}
        assert orphan not in ids
        assert other in ids  # not this agent's: left alone

        fake_master.auto_ack = True
        fake_master.send(docker_task(clash, args=["sleep", "300"], grace=0))
        await fake_master.wait_update(clash, "TASK_RUNNING", timeout=60)
        names = {n.lstrip("/") for c in containers_of(docker_api, clash) for n in c["Names"]}
        assert f"paddock-agent-1-{clash}" in names  # the other agent's, untouched
        assert any(n.startswith(f"paddock-agent-1-{clash}-") for n in names)  # ours
    finally:
        with contextlib.suppress(Exception):
            docker_api.remove_container(other, force=True)
        with contextlib.suppress(Exception):
            docker_api.remove_container(orphan, force=True)


async def test_kill_9_then_reconnect_reattaches_containers(
    agent, fake_master, docker_api, tmp_path
):
    data = tmp_path / "data"
    data.mkdir()
    agent.start(recover="reconnect")
    await fake_master.wait_registrations(1, timeout=60)
    fake_master.auto_ack = True
    vol = [{"container_path": "/data", "host_path": str(data), "mode": "RW"}]
    fake_master.send(
        docker_task(
            "ends",
            cmd="echo before; while [ ! -f /data/stop ]; do sleep 0.1; done; echo after; exit 7",
            volumes=vol,
        )
    )
    fake_master.send(docker_task("killme", args=["sleep", "300"], grace=0))
    for t in ("ends", "killme"):
        await fake_master.wait_update(t, "TASK_RUNNING", timeout=60)
    stdout = sandbox_file(agent.work, "ends", "stdout")
    await until(lambda: "before" in stdout.read_text(), what="'before' in stdout")
    before = {t: docker_api.inspect_container(containers_of(docker_api, t)[0]["Id"]) for t in
              ("ends", "killme")}  # fmt: skip
    agent.kill9()
    fake_master.close_stream()

    agent.start(recover="reconnect")
    reg = await fake_master.wait_registrations(2, timeout=60)
    states = {t["task_id"]["value"]: t["state"] for t in reg["tasks"]}
    assert states == {"ends": "TASK_RUNNING", "killme": "TASK_RUNNING"}
    for t, old in before.items():
        [c] = containers_of(docker_api, t)
        now = docker_api.inspect_container(c["Id"])
        assert now["Id"] == old["Id"]
        assert now["State"]["Running"]
        assert now["State"]["StartedAt"] == old["State"]["StartedAt"]  # not restarted

    (data / "stop").touch()
    ended = await fake_master.wait_update("ends", "TASK_FAILED", timeout=60)
    assert ended["message"] == "Container exited with status 7"
    await until(lambda: "after" in stdout.read_text(), what="'after' in stdout")
    assert stdout.read_text().count("before") == 1

    fake_master.send(kill_task("killme"))
    await fake_master.wait_update("killme", "TASK_KILLED", timeout=60)
    await until(
        lambda: not containers_of(docker_api, "killme") and not containers_of(docker_api, "ends"),
        what="both containers removed",
    )
    ends = {s["uuid"]: s["task_id"]["value"] for s in fake_master.updates()
            if s["state"] not in ("TASK_STARTING", "TASK_RUNNING")}  # fmt: skip
    assert sorted(ends.values()) == ["ends", "killme"]  # each ended once, none restarted


async def test_kill_9_then_cleanup_removes_containers(agent, fake_master, docker_api):
    agent.start(recover="cleanup")
    await fake_master.wait_registrations(1, timeout=60)
    fake_master.auto_ack = True
    fake_master.send(docker_task("gone", args=["sleep", "300"]))
    await fake_master.wait_update("gone", "TASK_RUNNING", timeout=60)
    assert containers_of(docker_api, "gone")
    agent.kill9()
    fake_master.close_stream()

    agent.start(recover="cleanup")
    await fake_master.wait_registrations(2, timeout=60)
    lost = await fake_master.wait_update("gone", "TASK_LOST", timeout=60)
    assert lost["reason"] == "REASON_AGENT_RESTARTED"
    assert not containers_of(docker_api, "gone")


async def test_engine_restart_while_a_container_runs(
    tmp_path, fake_master, docker_socket, docker_api
):
    """The podman service goes away and comes back on the same socket: the container
    goes on, the agent keeps following it and reports its real exit status."""
    sock = str(tmp_path / "engine.sock")
    data = tmp_path / "data"
    data.mkdir()
    a = AgentProc(tmp_path / "agent", fake_master.address, f"unix://{sock}", tmp_path / "a.log")
    try:
        with podman_service(socket_path=sock):
            a.start()
            await fake_master.wait_registrations(1, timeout=60)
            fake_master.auto_ack = True
            fake_master.send(
                docker_task(
                    "survivor",
                    cmd="while [ ! -f /data/stop ]; do sleep 0.1; done; echo done; exit 5",
                    volumes=[{"container_path": "/data", "host_path": str(data), "mode": "RW"}],
                )
            )
            await fake_master.wait_update("survivor", "TASK_RUNNING", timeout=60)
        # the engine is down; the container is not
        (data / "stop").touch()
        await until(  # it ends while the agent's engine is away (seen through another one)
            lambda: (
                not docker_api.inspect_container(containers_of(docker_api, "survivor")[0]["Id"])[
                    "State"
                ]["Running"]
            ),
            what="the container ended",
        )
        with podman_service(socket_path=sock):
            ended = await fake_master.wait_update("survivor", "TASK_FAILED", timeout=60)
            assert ended["message"] == "Container exited with status 5"
            out = sandbox_file(a.work, "survivor", "stdout")
            await until(lambda: "done" in out.read_text(), what="'done' copied after the restart")
            rc = a.stop()
    finally:
        a.stop()
        remove_labelled_containers(docker_socket, f"paddock.work_dir={a.work}")
    assert rc == 0, a.tail()
