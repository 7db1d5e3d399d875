"""A real agent whose container engine goes away for a while: its DOCKER task's COMMAND
health checks cannot run then, which is neither a success nor a failure (as in Mesos),
so the task is not killed; once the engine is back a real failure still kills it."""

from __future__ import annotations

import asyncio

import pytest

from paddock.testing.podman import ensure_test_image, podman_service, podman_unavailable_reason

from . import test_docker
from .test_docker import docker_task, sandbox_file, until
from .test_docker_checks import command_check

agent = test_docker.agent  # a real agent on this module's docker_socket: the engine below

pytestmark = pytest.mark.timeout(240)


class RestartableEngine:
    """A podman API service of the test's own at a fixed socket path, stopped and
    started again at will (its clients keep the URL, as after an engine restart)."""

    def __init__(self, sock: str) -> None:
        self.url = f"unix://{sock}"
        self._sock = sock
        self._service = None

    def start(self) -> None:
        if self._service is None:
            service = podman_service(socket_path=self._sock)
            service.__enter__()
            self._service = service

    def stop(self) -> None:
        service, self._service = self._service, None
        if service is not None:
            service.__exit__(None, None, None)


@pytest.fixture
def engine(tmp_path):
    if (reason := podman_unavailable_reason()) is not None:
        pytest.skip(f"podman: {reason}")
    ensure_test_image()
    e = RestartableEngine(str(tmp_path / "engine.sock"))
    e.start()
    yield e
    e.stop()


@pytest.fixture
def docker_socket(engine):
    return engine.url


async def test_engine_stopped_does_not_kill_then_a_failing_check_does(engine, agent, fake_master):
    agent.start()
    await fake_master.wait_registrations(1, timeout=60)
    fake_master.auto_ack = True
    check = command_check("test -f /mnt/mesos/sandbox/ok", interval_seconds=0.3)
    cmd = "touch /mnt/mesos/sandbox/ok; exec sleep 120"
    fake_master.send(docker_task("steady", cmd=cmd, grace=0, health_check=check))
    await fake_master.wait_for(
        lambda m: [s for s in m.updates("steady") if s.get("healthy") is True], timeout=60
    )

    def logged(text: str) -> bool:
        return text in agent.log.read_text(errors="replace")

    engine.stop()  # the container goes on running; its checks cannot be run
    try:
        await until(lambda: logged("health check could not be run"), what="a check not run")
        await asyncio.sleep(3)  # 10 intervals: 2 counted failures would have killed it
        assert not [s for s in fake_master.updates("steady") if s.get("healthy") is False]
        assert fake_master.updates("steady")[-1]["state"] == "TASK_RUNNING"
    finally:
        engine.start()
    await until(lambda: logged("health checks run again"), what="checks resumed")
    assert fake_master.updates("steady")[-1]["state"] == "TASK_RUNNING"
    sandbox_file(agent.work, "steady", "ok").unlink()  # now the check really fails
    killed = await fake_master.wait_update("steady", "TASK_KILLED", timeout=60)
    assert killed["healthy"] is False
    assert "2 consecutive failed health checks" in killed["message"]
    assert "status 1 in the container" in killed["message"]
