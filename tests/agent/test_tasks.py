"""The task runner with real processes: environment, sandbox files, exit codes, killing."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from paddock.agent.tasks import (
    LaunchError,
    TaskProcess,
    command_spec,
    describe_exit,
    task_environment,
    task_ports,
)

PORTS = {
    "name": "ports",
    "type": "RANGES",
    "ranges": {"range": [{"begin": 31000, "end": 31001}, {"begin": 31005, "end": 31005}]},
}


def info(command: dict, **extra) -> dict:
    return {
        "task_id": {"value": "t-1"},
        "name": "t",
        "command": command,
        "resources": [PORTS],
        **extra,
    }


def spawn(tmp_path: Path, task: dict) -> TaskProcess:
    sandbox = tmp_path / "sandbox"
    env = task_environment(
        task_info=task,
        framework_id="fw-1",
        agent_id="ag-1",
        sandbox=sandbox,
        agent_endpoint="127.0.0.1:5051",
        hostname="host-a",
    )
    return TaskProcess(command_spec(task), sandbox, env)


async def run(tmp_path: Path, task: dict) -> tuple[int, TaskProcess]:
    p = spawn(tmp_path, task)
    await p.start()
    rc = await asyncio.wait_for(p.wait(), 10)
    return rc, p


def test_ports_in_resource_order():
    assert task_ports(info({"value": "true"})) == [31000, 31001, 31005]
    assert task_ports({"resources": []}) == []


async def test_environment_and_sandbox_files(tmp_path):
    task = info(
        {
            "value": 'echo "$MESOS_TASK_ID $MESOS_FRAMEWORK_ID $HOST $PORT $PORTS $PORT0 '
            '$PORT2 $EXTRA"; '
            'echo "$MESOS_SANDBOX|$MESOS_AGENT_ENDPOINT|$(pwd)"; echo err >&2',
            "environment": {"variables": [{"name": "EXTRA", "value": "x y"}]},
        }
    )
    rc, p = await run(tmp_path, task)
    assert rc == 0
    out = (p.sandbox / "stdout").read_text().splitlines()
    assert out[0] == "t-1 fw-1 host-a 31000 31000,31001,31005 31000 31005 x y"
    sandbox = str(p.sandbox)
    assert out[1] == f"{sandbox}|127.0.0.1:5051|{sandbox}"
    assert (p.sandbox / "stderr").read_text() == "err\n"


async def test_argv_command_without_shell(tmp_path):
    task = info({"shell": False, "value": "/bin/echo", "arguments": ["echo", "$HOME", "a b"]})
    rc, p = await run(tmp_path, task)
    assert rc == 0
    assert (p.sandbox / "stdout").read_text() == "$HOME a b\n"


def test_bad_commands_are_launch_errors():
    with pytest.raises(LaunchError):
        command_spec({"task_id": {"value": "x"}})
    with pytest.raises(LaunchError):
        command_spec({"command": {"value": "  "}})
    with pytest.raises(LaunchError):
        command_spec({"command": {"shell": False, "arguments": ["a"]}})
    with pytest.raises(LaunchError, match="custom executors"):
        command_spec({"executor": {}})


async def test_missing_executable_is_a_launch_error(tmp_path):
    p = spawn(tmp_path, info({"shell": False, "value": "/no/such/file", "arguments": ["x"]}))
    with pytest.raises(LaunchError, match="Failed to launch"):
        await p.start()


async def test_exit_codes_map_to_states(tmp_path):
    rc, _ = await run(tmp_path, info({"value": "exit 0"}))
    assert describe_exit(rc, killed=False).state == "TASK_FINISHED"
    rc, _ = await run(tmp_path, info({"value": "exit 7"}))
    out = describe_exit(rc, killed=False)
    assert (out.state, out.message, out.exit_code) == (
        "TASK_FAILED",
        "Command exited with status 7",
        7,
    )
    rc, _ = await run(tmp_path, info({"value": "kill -9 $$"}))
    out = describe_exit(rc, killed=False)
    assert (out.state, out.message) == ("TASK_FAILED", "Command terminated with signal SIGKILL")
    assert describe_exit(-15, killed=True).state == "TASK_KILLED"
    assert describe_exit(-9, killed=False, oom=True).reason == "REASON_CONTAINER_LIMITATION_MEMORY"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


async def test_kill_waits_grace_then_sigkills_the_whole_group(tmp_path):
    # The shell and its background child both ignore SIGTERM; the child records its pid.
    task = info({"value": "trap '' TERM; sh -c 'echo $$ > child.pid; exec sleep 60' & wait; wait"})
    p = spawn(tmp_path, task)
    await p.start()
    pidfile = p.sandbox / "child.pid"
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.01)
    child = int(pidfile.read_text())
    waiter = asyncio.ensure_future(p.wait())
    started = time.monotonic()
    await p.kill(grace=0.5)
    rc = await asyncio.wait_for(waiter, 5)
    elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 3, elapsed  # SIGTERM was ignored: the grace period ran out
    assert rc == -9
    assert describe_exit(rc, killed=p.kill_requested).state == "TASK_KILLED"
    for _ in range(100):
        if not _alive(child):
            break
        await asyncio.sleep(0.01)
    assert not _alive(child), "the background child survived"


async def test_kill_of_a_cooperative_task_needs_no_sigkill(tmp_path):
    p = spawn(tmp_path, info({"value": "exec sleep 60"}))
    await p.start()
    waiter = asyncio.ensure_future(p.wait())
    started = time.monotonic()
    await p.kill(grace=5)
    assert await asyncio.wait_for(waiter, 5) == -15
    assert time.monotonic() - started < 2


async def test_leftover_children_are_killed_when_the_command_exits(tmp_path):
    p = spawn(
        tmp_path, info({"value": "sh -c 'echo $$ > bg.pid; exec sleep 60' & sleep 0.2; exit 0"})
    )
    await p.start()
    assert await asyncio.wait_for(p.wait(), 10) == 0
    bg = int((p.sandbox / "bg.pid").read_text())
    for _ in range(100):
        if not _alive(bg):
            break
        await asyncio.sleep(0.01)
    assert not _alive(bg)
