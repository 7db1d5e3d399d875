"""Agent restarts: the id is kept, unacknowledged updates are re-sent, and processes left
by a killed agent are cleaned up."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from paddock.agent.server import AgentServer

from .conftest import make_config
from .test_agent_integration import FW, run_task


async def test_restart_keeps_id_and_resends_unacknowledged(tmp_path, fake_master):
    work = tmp_path / "agent"
    server = AgentServer(make_config(work, fake_master.address))
    await server.start()
    try:
        await fake_master.wait_registrations(1)
        fake_master.send(run_task("t1", "sleep 30"))
        await fake_master.wait_update("t1", "TASK_STARTING")
        await fake_master.wait_for(lambda m: server.agent.tasks[(FW, "t1")].state == "TASK_RUNNING")
    finally:
        await server.stop()  # kills the task; nothing was acknowledged
    assert server.agent.tasks[(FW, "t1")].state == "TASK_KILLED"

    again = AgentServer(make_config(work, fake_master.address))
    await again.start()
    try:
        reg = await fake_master.wait_registrations(2)
        assert reg["agent_info"]["id"] == {"value": "agent-1"}
        pending = reg["unacknowledged_updates"]
        assert [u["state"] for u in pending] == ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"]
        [task] = reg["tasks"]
        assert task["state"] == "TASK_KILLED"
        assert task["status_update_state"] == "TASK_STARTING"
        fake_master.auto_ack = True
        fake_master.ack(FW, pending[0])
        await fake_master.wait_for(lambda m: not again.agent.tasks)
        assert not again.agent.store.task_dir(FW, "t1").exists()
    finally:
        await again.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def _agent_process(
    work: Path, master: str, log: Path, recover: str = "cleanup"
) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable, "-m", "paddock.cli.main", "agent",
            "--master", master, "--work-dir", str(work), "--port", "0", "--ip", "127.0.0.1",
            "--hostname", "localhost", "--recover", recover,
            "--resources", "cpus:1;mem:256;disk:100;ports:[31000-31001]",
            "--registration-backoff-factor", "0.05",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip


async def test_kill_9_then_cleanup_kills_leftover_tasks(tmp_path, fake_master):
    work = tmp_path / "agent"
    pidfile = tmp_path / "task.pid"
    log = tmp_path / "agent.log"
    proc = _agent_process(work, fake_master.address, log)
    task_pid = None
    try:
        await fake_master.wait_registrations(1, timeout=30)
        fake_master.auto_ack = True
        fake_master.send(run_task("t1", f"echo $$ > {pidfile}; exec sleep 60"))
        await fake_master.wait_update("t1", "TASK_RUNNING")
        await fake_master.wait_for(lambda m: pidfile.exists() and pidfile.read_text().strip())
        task_pid = int(pidfile.read_text())
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert _alive(task_pid)  # the task outlived its agent
        fake_master.close_stream()

        proc = _agent_process(work, fake_master.address, log)
        reg = await fake_master.wait_registrations(2, timeout=30)
        assert reg["agent_info"]["id"] == {"value": "agent-1"}
        lost = await fake_master.wait_update("t1", "TASK_LOST")
        assert lost["reason"] == "REASON_AGENT_RESTARTED"
        assert lost["source"] == "SOURCE_AGENT"
        assert not _alive(task_pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if task_pid is not None and _alive(task_pid):
            os.kill(task_pid, signal.SIGKILL)
    assert proc.returncode == 0, log.read_text()[-2000:]


async def test_sigusr1_unregisters_and_forgets_the_id(tmp_path, fake_master):
    work = tmp_path / "agent"
    log = tmp_path / "agent.log"
    proc = _agent_process(work, fake_master.address, log)
    try:
        await fake_master.wait_registrations(1, timeout=30)
        fake_master.auto_ack = True
        fake_master.send(run_task("t1", "sleep 30"))
        await fake_master.wait_update("t1", "TASK_RUNNING")
        proc.send_signal(signal.SIGUSR1)
        await fake_master.wait_for(lambda m: any(c["type"] == "UNREGISTER" for c in m.calls))
        await fake_master.wait_update("t1", "TASK_KILLED")
        await asyncio.to_thread(proc.wait, 15)
        assert proc.returncode == 0, log.read_text()[-2000:]
        assert not (work / "meta" / "agent.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_kill_9_then_reconnect_reattaches_running_tasks(tmp_path, fake_master):
    work = tmp_path / "agent"
    log = tmp_path / "agent.log"
    proc = _agent_process(work, fake_master.address, log, recover="reconnect")
    pids: dict[str, int] = {}
    try:
        await fake_master.wait_registrations(1, timeout=30)
        fake_master.auto_ack = True
        for name, cmd in (
            ("killme", "exec sleep 60"),
            ("ends", f"while [ ! -f {tmp_path}/stop ]; do sleep 0.05; done"),
        ):
            fake_master.send(run_task(name, f"echo $$ > {tmp_path}/{name}.pid; {cmd}"))
            await fake_master.wait_update(name, "TASK_RUNNING")
            pidfile = tmp_path / f"{name}.pid"
            await fake_master.wait_for(lambda m, p=pidfile: p.exists() and p.read_text().strip())
            pids[name] = int(pidfile.read_text())
        await fake_master.wait_for(
            lambda m: len([c for c in m.calls if c["type"] == "UPDATE"]) >= 4
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        fake_master.close_stream()

        proc = _agent_process(work, fake_master.address, log, recover="reconnect")
        reg = await fake_master.wait_registrations(2, timeout=30)
        assert reg["agent_info"]["id"] == {"value": "agent-1"}
        states = {t["task_id"]["value"]: t["state"] for t in reg["tasks"]}
        assert states == {"killme": "TASK_RUNNING", "ends": "TASK_RUNNING"}
        assert all(_alive(p) for p in pids.values())  # nothing was killed

        # The reattached tasks are followed to their end.
        (tmp_path / "stop").touch()
        ended = await fake_master.wait_update("ends", "TASK_FINISHED", timeout=20)
        assert ended["message"] == "Command exited with status 0"  # its real exit status
        fake_master.send(
            {
                "type": "KILL_TASK",
                "kill_task": {"framework_id": {"value": FW}, "task_id": {"value": "killme"}},
            }
        )
        await fake_master.wait_update("killme", "TASK_KILLED", timeout=20)
        await fake_master.wait_for(lambda m: not _alive(pids["killme"]))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pid in pids.values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0, log.read_text()[-2000:]
