"""``command.user`` (Marathon's app ``user``): process tasks run as that user when the
agent is root (Mesos's ``--switch_user``); DOCKER tasks get it as the container's user."""

from __future__ import annotations

import os
import pwd

import pytest

from paddock.agent import task_user
from paddock.agent.task_user import TaskUserError, resolve_task_user

from . import test_docker
from .test_agent_integration import FW, run_task, running_agent
from .test_docker import docker_task, sandbox_file
from .test_docker_spec import info, spec_of

pytestmark = pytest.mark.timeout(120)

NOBODY = pwd.getpwnam("nobody")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")


def with_user(user: str | None) -> dict:
    return {"task_id": {"value": "t"}, "command": {"value": "true", "user": user}}


def test_who_a_task_runs_as(monkeypatch):
    assert resolve_task_user({"task_id": {"value": "t"}}, switch_user=True) is None
    assert resolve_task_user(with_user(""), switch_user=True) is None
    assert resolve_task_user(with_user("no-such-user-x"), switch_user=False) is None
    with pytest.raises(TaskUserError, match="'no-such-user-x': no such user on this agent"):
        resolve_task_user(with_user("no-such-user-x"), switch_user=True)

    monkeypatch.setattr(task_user.os, "geteuid", lambda: 0)
    user = resolve_task_user(with_user("nobody"), switch_user=True)
    assert user is not None
    assert (user.name, user.uid, user.gid) == ("nobody", NOBODY.pw_uid, NOBODY.pw_gid)
    assert NOBODY.pw_gid in user.groups
    assert resolve_task_user(with_user("root"), switch_user=True) is None  # no switch

    # An agent that is not root runs tasks of its own user, and refuses others clearly.
    monkeypatch.setattr(task_user.os, "geteuid", lambda: NOBODY.pw_uid)
    assert resolve_task_user(with_user("nobody"), switch_user=True) is None
    with pytest.raises(TaskUserError) as err:
        resolve_task_user(with_user("root"), switch_user=True)
    assert "the agent runs as 'nobody', not root" in str(err.value)
    assert "--no-switch-user" in str(err.value)
    assert resolve_task_user(with_user("root"), switch_user=False) is None


def test_docker_container_user_comes_from_command_user():
    s = spec_of(info(command={"value": "id -un", "user": "nobody"}))
    assert s.user == "nobody"
    assert s.create_kwargs()["user"] == "nobody"
    # a docker "user" parameter is more specific and wins
    s = spec_of(
        info({"parameters": [{"key": "user", "value": "65534:65534"}]}, command={"user": "root"})
    )
    assert s.user == "65534:65534"
    assert "user" not in spec_of(info(command={"value": "true"})).create_kwargs()


@needs_root
async def test_process_tasks_run_as_their_user(tmp_path, fake_master):
    fake_master.auto_ack = True
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_for(lambda m: server.agent.registered, timeout=30)
        as_nobody = run_task("as-nobody", "id -un; id -u; echo made > mine; stat -c %U mine")
        as_nobody["run_task"]["task"]["command"]["user"] = "nobody"
        fake_master.send(as_nobody)
        done = await fake_master.wait_update("as-nobody", "TASK_FINISHED", timeout=30)
        assert done["message"] == "Command exited with status 0"
        stdout = sandbox_file(tmp_path / "agent", "as-nobody", "stdout")
        # id -un, id -u, and the owner of the file it wrote in its sandbox
        assert stdout.read_text().split() == ["nobody", str(NOBODY.pw_uid), "nobody"]
        assert stdout.parent.stat().st_uid == NOBODY.pw_uid  # the sandbox is the user's

        missing = run_task("missing", "true")
        missing["run_task"]["task"]["command"]["user"] = "no-such-user-x"
        fake_master.send(missing)
        failed = await fake_master.wait_update("missing", "TASK_FAILED", timeout=30)
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert failed["source"] == "SOURCE_AGENT"
        assert "'no-such-user-x': no such user" in failed["message"]

        # a program the user may not run: a clear launch failure, not a silent exit
        secret = tmp_path / "secret.sh"
        secret.write_text("#!/bin/sh\necho ran\n")
        secret.chmod(0o700)
        denied = run_task("denied", "")
        denied["run_task"]["task"]["command"] = {
            "value": str(secret),
            "shell": False,
            "arguments": ["secret.sh"],
            "user": "nobody",
        }
        fake_master.send(denied)
        failed = await fake_master.wait_update("denied", "TASK_FAILED", timeout=30)
        assert "Permission denied" in failed["message"], failed

        plain = run_task("plain", "id -un")
        fake_master.send(plain)
        await fake_master.wait_update("plain", "TASK_FINISHED", timeout=30)
        assert sandbox_file(tmp_path / "agent", "plain", "stdout").read_text() == "root\n"


@needs_root
async def test_no_switch_user_runs_tasks_as_the_agent(tmp_path, fake_master):
    fake_master.auto_ack = True
    async with running_agent(tmp_path, fake_master, switch_user=False) as server:
        await fake_master.wait_for(lambda m: server.agent.registered, timeout=30)
        task_info = run_task("as-agent", "id -un")
        task_info["run_task"]["task"]["command"]["user"] = "nobody"
        fake_master.send(task_info)
        await fake_master.wait_update("as-agent", "TASK_FINISHED", timeout=30)
        assert sandbox_file(tmp_path / "agent", "as-agent", "stdout").read_text() == "root\n"


docker_socket = test_docker.docker_socket
agent = test_docker.agent


async def test_docker_task_runs_as_its_user(agent, fake_master):
    agent.start()
    await fake_master.wait_registrations(1, timeout=60)
    fake_master.auto_ack = True
    task_info = docker_task(
        "docker-nobody", cmd="id -un; id -u; echo mine > $MESOS_SANDBOX/out && echo wrote"
    )
    task_info["run_task"]["task"]["command"]["user"] = "nobody"
    fake_master.send(task_info)
    await fake_master.wait_update("docker-nobody", "TASK_FINISHED", timeout=60)
    stdout = sandbox_file(agent.work, "docker-nobody", "stdout").read_text()
    assert stdout.split() == ["nobody", "65534", "wrote"]  # its sandbox is writable


@needs_root
async def test_command_health_checks_run_as_the_task_user(tmp_path, fake_master):
    fake_master.auto_ack = True
    check = {
        "type": "COMMAND",
        "command": {"value": 'test "$(id -un)" = nobody'},
        "delay_seconds": 0,
        "interval_seconds": 0.2,
        "grace_period_seconds": 0,
        "consecutive_failures": 1,
    }
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_for(lambda m: server.agent.registered, timeout=30)
        checked = run_task("checked", "exec sleep 30", health_check=check)
        checked["run_task"]["task"]["command"]["user"] = "nobody"
        fake_master.send(checked)
        healthy = await fake_master.wait_for(
            lambda m: [s for s in m.updates("checked") if "healthy" in s], timeout=30
        )
        assert healthy[0]["healthy"] is True, healthy
        fake_master.send(
            {
                "type": "KILL_TASK",
                "kill_task": {"framework_id": {"value": FW}, "task_id": {"value": "checked"}},
            }
        )
        await fake_master.wait_update("checked", "TASK_KILLED", timeout=30)
