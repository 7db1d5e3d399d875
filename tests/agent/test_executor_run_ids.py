"""The agent's half of the executor-run protocol (``docs/agent-protocol.md``, *Executor
runs*): each start of an executor is a run with its own id, named in the updates of the
run's tasks (``container_status.container_id``), in ``EXITED_EXECUTOR`` and in the
REGISTER ``executors``; a task sent for an executor id whose run has ended starts a new
run with a new id (the case the master must not confuse with the old run's exit)."""

from __future__ import annotations

import pytest

from paddock.agent.wire import register_body

from .test_agent_integration import FW, running_agent
from .test_executor_api import WAIT_CMD, executor_task

pytestmark = pytest.mark.timeout(60)


def _exits(fake_master) -> list[dict]:
    return [c["exited_executor"] for c in fake_master.calls if c.get("type") == "EXITED_EXECUTOR"]


async def test_each_run_is_named_in_updates_exits_and_registration(tmp_path, fake_master):
    fake_master.auto_ack = True
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_for(lambda m: server.agent.registered)
        # Run 1 of "ex-r" ends at once: its task fails naming the run, then the exit does.
        fake_master.send(executor_task("t1", executor_id="ex-r", cmd="exit 3"))
        failed1 = await fake_master.wait_update("t1", "TASK_FAILED")
        await fake_master.wait_for(lambda m: _exits(m))
        run1 = failed1["container_status"]["container_id"]
        (exit1,) = _exits(fake_master)
        assert exit1["container_id"] == run1
        assert exit1["status"] == 3 << 8

        # A task for the same executor id now starts run 2, a different id.
        fake_master.send(executor_task("t2", executor_id="ex-r", cmd=WAIT_CMD))
        run = await fake_master.wait_for(lambda m: server.agent.executors.lookup(FW, "ex-r"))
        assert {"value": run.run_id} != run1
        assert run.sandbox.name == run.run_id  # the id is the run's sandbox directory
        (entry,) = register_body(server.agent)["executors"]
        assert entry["container_id"] == {"value": run.run_id}
        assert entry["executor_id"] == {"value": "ex-r"}
        fake_master.send(
            {
                "type": "KILL_TASK",
                "kill_task": {"framework_id": {"value": FW}, "task_id": {"value": "t2"}},
            }
        )
        killed = await fake_master.wait_update("t2", "TASK_KILLED", timeout=30)
        assert killed["container_status"]["container_id"] == {"value": run.run_id}
