"""Launch cost: spawning the command directly vs through the zygote and a supervisor
(slow; ``pytest tests/agent/test_supervisor_bench.py -m slow -s`` prints the figures).

Both sides launch N ``true`` commands, N/10 at a time, and wait for each to end (the
direct side with ``asyncio.create_subprocess_exec``, the way the agent spawned tasks
before supervisors; the supervised side through :class:`SupervisedTask`, outcome file
included).  CPU is the agent process's own (``resource.getrusage(RUSAGE_SELF)``) and
everything else's (``RUSAGE_CHILDREN`` does not see the double-forked supervisors, so the
total comes from the machine's ``/proc/stat`` busy ticks, noisy on a shared machine)."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import time

import pytest

from paddock.agent.supervised import SupervisedTask
from paddock.agent.tasks import CommandSpec
from paddock.agent.zygote import Zygote

pytestmark = pytest.mark.slow

N = 300
BATCH = 30


def _busy_ticks() -> int:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # minus idle and iowait


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _measure(launch_one) -> tuple[float, float, float]:
    cpu0, busy0, t0 = _self_cpu(), _busy_ticks(), time.monotonic()
    for i in range(0, N, BATCH):
        await asyncio.gather(*(launch_one(j) for j in range(i, i + BATCH)))
    wall = time.monotonic() - t0
    agent_cpu = _self_cpu() - cpu0
    total = (_busy_ticks() - busy0) / os.sysconf("SC_CLK_TCK")
    return agent_cpu / N * 1e3, total / N * 1e3, wall / N * 1e3


async def test_launch_cost_direct_vs_supervised(tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    sandbox = tmp_path / "sb"
    sandbox.mkdir()

    async def direct(i: int) -> None:
        with open(sandbox / "stdout", "ab") as out, open(sandbox / "stderr", "ab") as err:
            p = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", "true", stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                cwd=str(sandbox), env=env, start_new_session=True,
            )  # fmt: skip
        assert await p.wait() == 0

    zygote = Zygote()
    zygote.start()

    async def supervised(i: int) -> None:
        t = SupervisedTask(
            CommandSpec(["/bin/sh", "-c", "true"]), sandbox, env, tmp_path / f"o{i}", None, zygote
        )
        await t.start()
        assert await t.wait() == 0

    try:
        await supervised(-1)  # the zygote is up
        d = await _measure(direct)
        s = await _measure(supervised)
    finally:
        zygote.close()
    print(
        f"\nper launch of `sh -c true`, {N} launches {BATCH} at a time:\n"
        f"  direct spawn:      agent CPU {d[0]:.2f} ms, machine CPU {d[1]:.2f} ms, "
        f"wall {d[2]:.2f} ms\n"
        f"  zygote+supervisor: agent CPU {s[0]:.2f} ms, machine CPU {s[1]:.2f} ms, "
        f"wall {s[2]:.2f} ms"
    )
    assert s[0] < d[0] * 2  # the agent's share must not grow
