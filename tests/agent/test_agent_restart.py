"""kill -9 of a real ``paddock agent`` with running process tasks, then a restart
(``--recover=reconnect``): the tasks are reconnected through their supervisors, not
restarted or duplicated, stay killable, and report their real exit codes, including
one that ended while no agent was running."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from .test_agent_integration import FW, run_task
from .test_recovery import _alive

#: A cgroup tree of its own: other agents on this machine clean up theirs at start.
CGROUPS_ROOT = "paddock-test-restart"


def _agent_process(work: Path, master: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable, "-m", "paddock.cli.main", "agent",
            "--master", master, "--work-dir", str(work), "--port", "0", "--ip", "127.0.0.1",
            "--hostname", "localhost", "--recover", "reconnect",
            "--cgroups-root", CGROUPS_ROOT,
            "--resources", "cpus:1;mem:256;disk:100;ports:[31000-31001]",
            "--registration-backoff-factor", "0.05",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip


async def _state(reg: dict) -> dict:
    port = reg["agent_info"]["port"]
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{port}/state", timeout=10)).json()


def _executors(state: dict) -> dict[str, tuple[int, str]]:
    """task id -> (pid, sandbox directory with the run id) of the live tasks."""
    out = {}
    for fw in state["frameworks"]:
        for ex in fw["executors"]:
            for task in ex["tasks"]:
                out[task["id"]] = (ex["pid"], ex["directory"])
    return out


def _starts(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


async def test_kill_9_restart_reconnects_without_restarting_or_duplicating(tmp_path, fake_master):
    work = tmp_path / "agent"
    agent_log = tmp_path / "agent.log"
    waits = {
        "exits3": f"while [ ! -f {tmp_path}/exits3.go ]; do sleep 0.05; done; exit 3",
        "killed": "exec sleep 60",
        "while_down": f"while [ ! -f {tmp_path}/while_down.go ]; do sleep 0.05; done; exit 5",
    }
    proc = _agent_process(work, fake_master.address, agent_log)
    pids: dict[str, int] = {}
    try:
        reg = await fake_master.wait_registrations(1, timeout=30)
        fake_master.auto_ack = True
        for name, body in waits.items():
            fake_master.send(run_task(name, f'echo "start $$" >> {tmp_path}/{name}.log; {body}'))
        for name in waits:
            await fake_master.wait_update(name, "TASK_RUNNING", timeout=20)
            log = tmp_path / f"{name}.log"
            await fake_master.wait_for(lambda m, log=log: len(_starts(log)) == 1)
            pids[name] = int(_starts(log)[0].split()[1])
        before = _executors(await _state(reg))
        assert {name: pid for name, (pid, _) in before.items()} == pids
        await fake_master.wait_for(lambda m: len(m.updates()) == 6)  # STARTING, RUNNING x 3

        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
        fake_master.close_stream()
        assert all(_alive(p) for p in pids.values())  # the tasks outlived their agent
        (tmp_path / "while_down.go").touch()  # ... and this one ends with no agent
        await fake_master.wait_for(lambda m: not _alive(pids["while_down"]))
        # ... and its supervisor has recorded how it ended (else a quick restart finds the
        # supervisor still alive, reconnects to it and rightly reports it RUNNING first).
        await fake_master.wait_for(lambda m: any(work.rglob("outcome-*.json")))

        proc = _agent_process(work, fake_master.address, agent_log)
        reg = await fake_master.wait_registrations(2, timeout=30)
        assert reg["agent_info"]["id"] == {"value": "agent-1"}
        states = {t["task_id"]["value"]: t["state"] for t in reg["tasks"]}
        assert states == {
            "exits3": "TASK_RUNNING",
            "killed": "TASK_RUNNING",
            "while_down": "TASK_FAILED",
        }
        ended = await fake_master.wait_update("while_down", "TASK_FAILED", timeout=20)
        assert ended["message"] == "Command exited with status 5"  # its real outcome

        # Same processes, same runs; nothing started twice.
        after = _executors(await _state(reg))
        assert after == {k: v for k, v in before.items() if k != "while_down"}
        for name in waits:
            assert len(_starts(tmp_path / f"{name}.log")) == 1, name
            assert [u["state"] for u in fake_master.updates(name)].count("TASK_STARTING") == 1
        assert _alive(pids["exits3"]) and _alive(pids["killed"])

        # They are followed to their real end, and can be killed.
        (tmp_path / "exits3.go").touch()
        failed = await fake_master.wait_update("exits3", "TASK_FAILED", timeout=20)
        assert failed["message"] == "Command exited with status 3"
        fake_master.send(
            {
                "type": "KILL_TASK",
                "kill_task": {"framework_id": {"value": FW}, "task_id": {"value": "killed"}},
            }
        )
        killed = await fake_master.wait_update("killed", "TASK_KILLED", timeout=20)
        assert killed["message"] == "Command terminated with signal SIGTERM"
        await fake_master.wait_for(lambda m: not _alive(pids["killed"]))
        for name in waits:  # exactly one terminal update each
            terminal = [
                u
                for u in fake_master.updates(name)
                if u["state"] not in ("TASK_STARTING", "TASK_RUNNING")
            ]
            assert len(terminal) == 1, (name, terminal)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pid in pids.values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0, agent_log.read_text()[-2000:]
