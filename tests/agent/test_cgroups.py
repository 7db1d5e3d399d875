"""Resource limits through cgroups v1 (skipped where the machine has none usable)."""

from __future__ import annotations

import sys

import pytest

from paddock.agent.cgroups import CgroupManager

from .test_agent_integration import FW, run_task, running_agent


def _usable() -> CgroupManager:
    m = CgroupManager("paddock-test")
    m.detect()
    return m


pytestmark = pytest.mark.skipif(
    not _usable().available, reason=f"cgroups v1 unusable here: {_usable().reason}"
)


async def test_task_runs_in_its_cgroups_with_limits(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master, cgroups_root="paddock-test") as server:
        await fake_master.wait_registrations(1)
        fake_master.auto_ack = True
        fake_master.send(run_task("c1", "cat /proc/self/cgroup"))
        await fake_master.wait_update("c1", "TASK_FINISHED")
        task = (
            server.agent.completed[-1] if server.agent.completed else server.agent.tasks[(FW, "c1")]
        )
        lines = (task.sandbox / "stdout").read_text().splitlines()
        by_controller = {line.split(":")[1]: line.split(":")[2] for line in lines}
        name = f"{FW}.c1.{task.run_id}"
        assert by_controller["memory"].endswith(f"/paddock-test/{name}")
        assert by_controller["cpu"].endswith(f"/paddock-test/{name}")
        # The cgroups are removed once the task ended.
        for root in server.agent.cgroups.controllers.values():
            assert not (root / name).exists()


async def test_memory_limit_kills_with_a_reason(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master, cgroups_root="paddock-test"):
        await fake_master.wait_registrations(1)
        fake_master.auto_ack = True
        touch_400mb = "b = bytearray(400 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
        hog = f'{sys.executable} -c "{touch_400mb}"'
        fake_master.send(run_task("hog", hog))  # the task asks for 32 MB
        failed = await fake_master.wait_update("hog", "TASK_FAILED", timeout=30)
        assert failed["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY"
        assert failed["source"] == "SOURCE_AGENT"
