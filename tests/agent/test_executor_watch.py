"""The watcher of a custom executor's process settles its tasks even when the agent
fails while waiting for the process (a bug must not leave tasks without an end)."""

from __future__ import annotations

import os
import signal

import pytest

from paddock.agent.tasks import TaskProcess

from .test_agent_integration import FW, running_agent
from .test_executor_api import executor_env, executor_task

pytestmark = pytest.mark.timeout(60)


async def test_a_failing_wait_still_fails_the_executors_tasks(tmp_path, fake_master, monkeypatch):
    real_wait = TaskProcess.wait

    async def wait_then_fail(self: TaskProcess) -> int:
        await real_wait(self)
        raise RuntimeError("lost track of the process")

    monkeypatch.setattr(TaskProcess, "wait", wait_then_fail)
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_for(lambda m: server.agent.registered)
        fake_master.auto_ack = True
        fake_master.send(executor_task("t1"))
        await executor_env(server)
        executors = server.agent.executors
        os.kill(executors.lookup(FW, "ex-1").pid, signal.SIGKILL)
        failed = await fake_master.wait_update("t1", "TASK_FAILED")
        assert (failed["reason"], failed["source"], failed["message"]) == (
            "REASON_EXECUTOR_TERMINATED",
            "SOURCE_AGENT",
            "agent error while watching the executor: lost track of the process",
        )
        await fake_master.wait_for(lambda m: executors.lookup(FW, "ex-1") is None)
