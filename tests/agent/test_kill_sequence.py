"""The one kill sequence of process tasks (tasks.terminate_group) on real processes, and
the "agent restarted" ending recovery reports."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from paddock.agent.task_outcome import SOURCE_AGENT, agent_restarted_end
from paddock.agent.tasks import terminate_group

pytestmark = pytest.mark.timeout(60)

# Prints "ready" once its SIGTERM handler is in place; on SIGTERM prints "term" and
# exits 7 (or, with "ignore", keeps running); it has a child in its process group that
# ignores SIGTERM.
PROGRAM = """
import signal, subprocess, sys, time
child = subprocess.Popen(["sh", "-c", "trap '' TERM; exec sleep 60"])
def on_term(*_):
    print("term", flush=True)
    if sys.argv[1] == "exit":
        child.kill()
        sys.exit(7)
signal.signal(signal.SIGTERM, on_term)
print("ready", child.pid, flush=True)
while True:
    time.sleep(0.05)
"""


async def start(mode: str):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PROGRAM,
        mode,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
    assert line[0] == "ready"
    exited = asyncio.Event()

    async def reap() -> int:
        rc = await proc.wait()
        exited.set()
        return rc

    return proc, int(line[1]), exited, asyncio.create_task(reap())


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


async def test_a_process_that_ends_on_sigterm_is_not_sigkilled():
    proc, _, exited, reaped = await start("exit")
    await asyncio.wait_for(terminate_group(proc.pid, 20, exited), 30)
    assert await reaped == 7  # it ended by itself (SIGTERM handled), long before the grace
    assert proc.stdout is not None and (await proc.stdout.read()).decode() == "term\n"


async def test_sigterm_ignored_means_sigkill_of_the_group_after_the_grace():
    proc, child, exited, reaped = await start("ignore")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(terminate_group(proc.pid, 0.5, exited), 30)
    assert loop.time() - started >= 0.5  # the grace was given
    assert await asyncio.wait_for(reaped, 30) == -9
    assert proc.stdout is not None and b"term" in await proc.stdout.read()
    for _ in range(100):  # the child of the group got SIGKILL too (reaped by init)
        if not alive(child):
            break
        await asyncio.sleep(0.05)
    assert not alive(child)


async def test_no_grace_is_sigkill_at_once_and_a_gone_group_is_no_error():
    proc, _, exited, reaped = await start("ignore")
    await terminate_group(proc.pid, 0, exited)
    assert await asyncio.wait_for(reaped, 30) == -9
    await terminate_group(proc.pid, 0, exited)  # already ended: returns quietly
    gone = asyncio.Event()
    await terminate_group(2**22 + 12345, 0, gone)  # no such group


def test_agent_restarted_end():
    end = agent_restarted_end("(--recover=cleanup) and killed the task's process")
    assert (end.state, end.reason, end.source, end.healthy) == (
        "TASK_LOST",
        "REASON_AGENT_RESTARTED",
        SOURCE_AGENT,
        None,
    )
    assert end.message == "The agent restarted (--recover=cleanup) and killed the task's process"
