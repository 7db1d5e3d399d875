"""Launch cost: spawning the command directly vs through the zygote and a supervisor
(slow; ``pytest tests/agent/test_supervisor_bench.py -m slow -s`` prints the figures, or
run ``python tests/agent/test_supervisor_bench.py direct|supervised N``).

Each side launches N ``sh -c true`` commands, 20 at a time, and waits for each to end:
the direct side with ``asyncio.create_subprocess_exec`` (how the agent spawned tasks
before supervisors), the supervised side through :class:`SupervisedTask` (zygote fork,
supervisor, ``posix_spawn``, outcome file with fsync, pidfd, reading the outcome).  The
benchmark runs in a ``cpuacct`` cgroup of its own, which every process it forks
inherits, so "total CPU" includes the zygote and the double-forked-away supervisors that
``RUSAGE_CHILDREN`` would not see; "agent CPU" is the benchmark process's own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

CPUACCT = Path("/sys/fs/cgroup/cpuacct")
BATCH = 20


def _usable() -> str | None:
    if not (CPUACCT / "cpuacct.usage").exists():
        return "no cgroup v1 cpuacct hierarchy"
    if os.geteuid() != 0:
        return "not root"
    return None


async def _bench(mode: str, n: int, work: Path) -> str:
    from paddock.agent.supervised import SupervisedTask
    from paddock.agent.tasks import CommandSpec
    from paddock.agent.zygote import Zygote

    group = CPUACCT / f"paddock-bench-{os.getpid()}"
    group.mkdir()
    (group / "cgroup.procs").write_text(str(os.getpid()))
    sandbox = work / "sandbox"
    sandbox.mkdir(parents=True, exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", **{f"VAR{i}": "x" * 20 for i in range(30)}}
    zygote = Zygote()
    zygote.start()

    async def direct(i: int) -> None:
        with open(sandbox / "stdout", "ab") as out, open(sandbox / "stderr", "ab") as err:
            p = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", "true", stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                cwd=str(sandbox), env=env, start_new_session=True,
            )  # fmt: skip
        assert await p.wait() == 0

    async def supervised(i: int) -> None:
        spec = CommandSpec(["/bin/sh", "-c", "true"])
        t = SupervisedTask(spec, sandbox, env, work / f"outcome-{i}", None, zygote)
        await t.start()
        assert await t.wait() == 0

    launch = direct if mode == "direct" else supervised
    try:
        await supervised(-1)  # the zygote is up
        usage0 = int((group / "cpuacct.usage").read_text())
        times0, t0 = os.times(), time.monotonic()
        for i in range(0, n, BATCH):
            await asyncio.gather(*(launch(j) for j in range(i, min(n, i + BATCH))))
        wall = time.monotonic() - t0
        times1 = os.times()
        total = (int((group / "cpuacct.usage").read_text()) - usage0) / 1e6
    finally:
        zygote.close()
        (CPUACCT / "cgroup.procs").write_text(str(os.getpid()))
        for _ in range(100):  # supervisors may still be exiting
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.05)
    own = (times1.user + times1.system - times0.user - times0.system) * 1e3
    return (
        f"{mode:>10}: total CPU {total / n:.2f} ms/launch, agent CPU {own / n:.2f} ms, "
        f"wall {wall / n * 1e3:.2f} ms"
    )


@pytest.mark.slow
@pytest.mark.skipif(_usable() is not None, reason=f"cannot measure: {_usable()}")
def test_launch_cost_direct_vs_supervised(tmp_path):
    lines = []
    for mode in ("direct", "supervised"):
        out = subprocess.run(
            [sys.executable, __file__, mode, "300", str(tmp_path / mode)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        lines.append(out.stdout.strip())
    print("\nper launch of `sh -c true`, 300 launches, 20 at a time:\n" + "\n".join(lines))


if __name__ == "__main__":
    mode, n = sys.argv[1], int(sys.argv[2])
    work = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(f"/tmp/paddock-bench-{os.getpid()}")
    print(asyncio.run(_bench(mode, n, work)))
