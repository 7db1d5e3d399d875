"""A process task that exceeds its memory is OOM-killed by the kernel inside its memory
cgroup and reported TASK_FAILED with REASON_CONTAINER_LIMITATION_MEMORY and Mesos's
message.  Skipped only where the machine gives no usable memory cgroup."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from paddock.agent.cgroups import CgroupManager

from .test_agent_integration import FW, run_task, running_agent

ROOT = "paddock-test-mem"


def _memory_cgroup_reason() -> str | None:
    m = CgroupManager(ROOT)
    m.detect()
    return None if "memory" in m.controllers else (m.reason or "no memory controller")


needs_memory_cgroup = pytest.mark.skipif(
    _memory_cgroup_reason() is not None,
    reason=f"no usable memory cgroup here: {_memory_cgroup_reason()}",
)

HOG = (
    f"{sys.executable} -c \"b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]);"
    " print('survived')\""
)


@needs_memory_cgroup
async def test_memory_hog_fails_with_memory_limitation(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master, cgroups_root=ROOT) as server:
        await fake_master.wait_registrations(1)
        fake_master.auto_ack = True
        async with httpx.AsyncClient() as client:
            state = (await client.get(f"http://127.0.0.1:{server.config.port}/state")).json()
        assert state["cgroups"]["available"] is True
        assert "memory" in state["cgroups"]["controllers"]
        assert "cgroups/mem" in state["cgroups"]["isolation"]

        fake_master.send(run_task("hog", HOG))  # asks for 32 MB
        failed = await fake_master.wait_update("hog", "TASK_FAILED", timeout=30)
        assert failed["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY"
        assert failed["source"] == "SOURCE_AGENT"
        assert failed["message"].startswith("Memory limit exceeded: Requested: 32MB Maximum Used: ")
        assert "MEMORY STATISTICS" in failed["message"]
        tasks = [*server.agent.completed, *server.agent.tasks.values()]
        [task] = [t for t in tasks if t.task_id == "hog"]
        assert "survived" not in (task.sandbox / "stdout").read_text()
        # Its cgroup is gone once it ended.
        await fake_master.wait_for(
            lambda m: (
                not any(
                    (root / f"{FW}.hog.{task.run_id}").exists()
                    for root in server.agent.cgroups.controllers.values()
                )
            )
        )

        # A task within its limit is not affected.
        fake_master.send(run_task("small", f"{sys.executable} -c 'b = bytearray(4 << 20)'"))
        done = await fake_master.wait_update("small", "TASK_FINISHED", timeout=30)
        assert "reason" not in done


async def test_without_cgroups_the_state_says_so(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master, cgroups_enabled=False) as server:
        await fake_master.wait_registrations(1)
        async with httpx.AsyncClient() as client:
            state = (await client.get(f"http://127.0.0.1:{server.config.port}/state")).json()
    assert state["cgroups"]["available"] is False
    assert state["cgroups"]["reason"] == "disabled by --no-cgroups"
    assert state["cgroups"]["isolation"] == "posix/cpu,posix/mem"


def test_cgroup_v2_layout_on_a_fake_unified_tree(tmp_path):
    # The v2 path is not exercised by the machine (cgroup v1 here): check what it writes
    # on a stand-in tree (plain files where the kernel would have its own).
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    own = next((line[3:].strip().lstrip("/") for line in lines if line.startswith("0::")), "")
    home = tmp_path / own  # where the agent's own cgroup would be
    home.mkdir(parents=True, exist_ok=True)
    for where in {tmp_path, home}:
        (where / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    m = CgroupManager("paddock", mount=tmp_path)
    m.detect()
    assert m.available and m.version == 2, m.reason
    assert m.controllers == {"memory": home / "paddock", "cpu": home / "paddock"}
    assert (home / "cgroup.subtree_control").read_text() == "+memory +cpu"
    group = m.create("fw.t.run-1", cpus=0.5, mem_mb=64)
    assert group is not None
    path = home / "paddock" / "fw.t.run-1"
    assert (path / "memory.max").read_text() == str(64 << 20)
    assert (path / "cpu.weight").read_text() == str(1 + (512 - 2) * 9999 // 262142)
    assert group.procs_files() == [str(path / "cgroup.procs")]  # one directory for both
    assert m.describe()["isolation"] == "cgroups/cpu,cgroups/mem"
