"""COMMAND health checks of DOCKER tasks run inside the container (as Mesos's docker
executor runs them), against real podman containers."""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest

from paddock.agent.docker_checks import ContainerCommandCheck
from paddock.agent.healthcheck import HealthCheck, check_once
from paddock.testing.podman import TEST_IMAGE, remove_labelled_containers

from . import test_docker
from .test_docker import docker_task, until

# the real-agent and podman fixtures of test_docker
docker_socket = test_docker.docker_socket
docker_api = test_docker.docker_api
agent = test_docker.agent

pytestmark = pytest.mark.timeout(180)


def command_check(value: str, **extra) -> dict:
    check = {
        "type": "COMMAND",
        "command": {"value": value, "shell": True},
        "delay_seconds": 0,
        "interval_seconds": 0.5,
        "grace_period_seconds": 0,
        "timeout_seconds": 10,
        "consecutive_failures": 2,
    }
    check.update(extra)
    return check


async def test_command_check_sees_the_container_not_the_host(agent, fake_master):
    assert not os.path.exists("/tmp/only-in-container")  # not on the host
    agent.start()
    await fake_master.wait_registrations(1, timeout=60)
    fake_master.auto_ack = True
    # The file exists only inside the container: a check on the host would fail.
    fake_master.send(
        docker_task(
            "inside",
            cmd="touch /tmp/only-in-container && exec sleep 60",
            grace=0,
            health_check=command_check("test -f /tmp/only-in-container"),
        )
    )
    fake_master.send(
        docker_task(
            "failing",
            cmd="exec sleep 60",
            grace=0,
            health_check=command_check("test -f /tmp/only-in-container"),
        )
    )
    healthy = await fake_master.wait_for(
        lambda m: [s for s in m.updates("inside") if s.get("healthy") is True], timeout=60
    )
    assert "in the container" in healthy[0]["message"]
    assert healthy[0]["reason"] == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"

    killed = await fake_master.wait_update("failing", "TASK_KILLED", timeout=60)
    assert killed["healthy"] is False
    assert killed["reason"] == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
    assert "2 consecutive failed health checks" in killed["message"]
    assert "status 1 in the container" in killed["message"]
    unhealthy = [s for s in fake_master.updates("failing") if s.get("healthy") is False]
    assert unhealthy and unhealthy[0]["state"] == "TASK_RUNNING"
    # "inside" stayed healthy all along.
    assert not [s for s in fake_master.updates("inside") if s.get("healthy") is False]


@pytest.fixture
def container(docker_api):
    cid = docker_api.create_container(
        TEST_IMAGE,
        command=["/bin/sh", "-c", "exec sleep 120"],
        labels={"paddock.test": "docker_checks"},
        host_config=docker_api.create_host_config(binds=["/tmp:/mnt/mesos/sandbox:rw"]),
    )["Id"]
    docker_api.start(cid)
    yield cid
    with contextlib.suppress(Exception):
        docker_api.remove_container(cid, force=True)


def sleepers(api, cid: str) -> list[str]:
    exec_id = api.exec_create(cid, ["ps", "-o", "args"], stdout=True)["Id"]
    lines = api.exec_start(exec_id).decode().splitlines()
    return [ln for ln in lines if "sleep 31" in ln]


async def test_timeout_and_missing_program_in_the_container(docker_api, docker_socket, container):
    run = ContainerCommandCheck(docker_api, container)
    slow = HealthCheck("COMMAND", timeout=0.5, command=("/bin/sh", "-c", "sleep 31; true"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    ok, detail = await check_once(slow, {}, None, run)  # type: ignore[arg-type]
    assert (ok, detail) == (False, "health check timed out after 0.5 s")
    assert loop.time() - started < 5
    # the timed-out check was killed inside the container, not left running
    await until(lambda: not sleepers(docker_api, container), timeout=30, what="check killed")

    chatty = HealthCheck(
        "COMMAND", command=("/bin/sh", "-c", "yes | head -c 3000000; echo; echo last words; exit 3")
    )
    ok, detail = await check_once(chatty, {}, None, run)  # type: ignore[arg-type]
    assert not ok and detail.startswith("command exited with status 3 in the container: ")
    assert detail.endswith("last words") and len(detail) < 300

    missing = HealthCheck("COMMAND", command=("no-such-program",))
    ok, detail = await check_once(missing, {}, None, run)  # type: ignore[arg-type]
    assert not ok and "status 127" in detail

    cwd = HealthCheck("COMMAND", command=("/bin/sh", "-c", 'test "$(pwd)" = /mnt/mesos/sandbox'))
    assert (await check_once(cwd, {}, None, run))[0] is True  # type: ignore[arg-type]

    docker_api.remove_container(container, force=True)
    ok, detail = await check_once(cwd, {}, None, run)  # type: ignore[arg-type]
    assert not ok and "could not run in the container" in detail
    remove_labelled_containers(docker_socket, "paddock.test=docker_checks")
