"""Launch throughput of one agent (slow; run with ``-m slow -s`` to see the figure).

N tasks (``true``) are sent at once by the in-test master, which acknowledges every
update as it arrives; the clock stops when the last TASK_FINISHED reaches the master.
Each task is 3 reliable updates (checkpointed, fsynced by group commit, acknowledged),
a sandbox, a process and, where available, its cgroups."""

from __future__ import annotations

import time

import pytest

from .test_agent_integration import run_task, running_agent

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("n", [200, 1000])
async def test_launch_throughput(tmp_path, fake_master, n):
    async with running_agent(tmp_path, fake_master, status_retry_min=60) as server:
        await fake_master.wait_registrations(1)
        await fake_master.wait_for(lambda m: server.agent.registered)
        fake_master.auto_ack = True
        finished = 0

        def count(m) -> bool:
            nonlocal finished
            finished = server.agent.counters["tasks_finished"]
            return not server.agent.tasks and finished >= n

        t0 = time.monotonic()
        for i in range(n):
            fake_master.send(run_task(f"t{i}", "true"))
        await fake_master.wait_for(count, timeout=300)
        elapsed = time.monotonic() - t0
        rate = n / elapsed
        print(
            f"\n{n} tasks launched, finished and acknowledged in {elapsed:.2f} s = {rate:.1f} "
            f"tasks/s (cgroups {'on' if server.agent.cgroups.available else 'off'}, "
            f"{server.agent.store.deferred.rounds} fsync rounds)"
        )
        assert rate > 5
