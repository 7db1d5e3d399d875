"""An unmodified pymesos 0.3.15 executor (``MesosExecutorDriver``) under a real paddock
cluster (keeper, one master, one agent), launched by a pymesos scheduler.

The scheduler launches two tasks with the same ``ExecutorInfo`` in one offer; the
agent starts the executor script once (with the venv's python), the driver
subscribes through ``POST /api/v1/executor``, gets both tasks as LAUNCH events and
reports TASK_RUNNING then TASK_FINISHED for each; the scheduler sees both updates of
both tasks.  Tearing the framework down shuts the executor down, and nothing of it is
left running.
"""

from __future__ import annotations

import base64
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pymesos = pytest.importorskip("pymesos", reason="pymesos 0.3.15 not installed")

from master.clients import AgentProcess, MasterProcess, elected, wait_until  # noqa: E402
from paddock.testing import KeeperUnavailable, zk_ensemble  # noqa: E402

from .conftest import unavailable_reason  # noqa: E402

pytestmark = pytest.mark.timeout(150)

EXECUTOR_SCRIPT = """
import base64
import os
import sys
import threading
import time

from pymesos import Executor, MesosExecutorDriver


class ScriptExecutor(Executor):
    def registered(self, driver, executor_info, framework_info, agent_info):
        print("registered", executor_info["executor_id"]["value"], flush=True)

    def reregistered(self, driver, agent_info):
        print("reregistered", flush=True)

    def launchTask(self, driver, task):
        def run():
            tid = task["task_id"]
            driver.sendStatusUpdate(
                {"task_id": tid, "state": "TASK_RUNNING", "message": "in the pymesos executor"}
            )
            if task["name"].startswith("long"):
                return  # runs until killed
            time.sleep(0.2)
            driver.sendStatusUpdate({"task_id": tid, "state": "TASK_FINISHED"})
            print("finished", tid["value"], flush=True)

        threading.Thread(target=run, daemon=True).start()

    def frameworkMessage(self, driver, message):
        text = base64.b64decode(message).decode()
        driver.sendFrameworkMessage(base64.b64encode(("re: " + text).encode()).decode())

    def killTask(self, driver, task_id):
        driver.sendStatusUpdate({"task_id": task_id, "state": "TASK_KILLED"})

    def shutdown(self, driver):
        print("shutdown", flush=True)


with open(sys.argv[1], "w") as f:
    f.write(str(os.getpid()))
MesosExecutorDriver(ScriptExecutor()).run()
"""


class ExecutorScheduler(pymesos.Scheduler):
    def __init__(self, executor_cmd: str, task_ids: tuple[str, ...] = ("exec-a", "exec-b")) -> None:
        self.lock = threading.Lock()
        self.executor_cmd = executor_cmd
        self.task_ids = task_ids
        self.states: dict[str, list[str]] = {}
        self.updates: list[dict[str, Any]] = []
        self.launched = False
        self.messages: list[tuple[Any, Any, str]] = []

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            with self.lock:
                launch, self.launched = not self.launched, True
            if not launch:
                driver.declineOffer(offer["id"], {"refuse_seconds": 60})
                continue
            executor = {
                "executor_id": {"value": "pyexec"},
                "name": "pymesos test executor",
                "command": {"value": self.executor_cmd},
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                ],
            }
            tasks = [
                {
                    "task_id": {"value": tid},
                    "agent_id": offer["agent_id"],
                    "name": tid,
                    "resources": [
                        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                        {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                    ],
                    "executor": executor,
                }
                for tid in self.task_ids
            ]
            driver.launchTasks(offer["id"], tasks, {"refuse_seconds": 60})

    def frameworkMessage(self, driver: Any, executor_id: Any, agent_id: Any, data: str) -> None:
        with self.lock:
            self.messages.append((executor_id, agent_id, base64.b64decode(data).decode()))

    def statusUpdate(self, driver: Any, update: Any) -> None:
        with self.lock:
            self.updates.append(update)
            self.states.setdefault(update["task_id"]["value"], []).append(update["state"])


def _changes(states: list[str]) -> list[str]:
    """The states in order, a repeat of the one before dropped: status updates are
    delivered at least once, so an update resent after an agent restart (its
    acknowledgement lost with the old agent) may reach the scheduler twice."""
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie not yet reaped by its parent counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_pymesos_executor_runs_tasks_of_a_pymesos_scheduler(tmp_path: Path) -> None:
    reason = unavailable_reason("keeper")
    if reason:
        pytest.skip(f"keeper: {reason}")
    try:
        ensemble = zk_ensemble("keeper", 1, tick_ms=500)
    except KeeperUnavailable as exc:
        pytest.skip(f"keeper: {exc}")
    master: MasterProcess | None = None
    agent: AgentProcess | None = None
    driver = None
    script = tmp_path / "executor.py"
    script.write_text(EXECUTOR_SCRIPT)
    pidfile = tmp_path / "executor.pid"
    try:
        zk_url = f"zk://{ensemble.hosts}/mesos"
        master = MasterProcess(zk_url, 1, tmp_path / "m0", "--allocation-interval", "0.2s").start()
        wait_until(lambda: elected([master]), 60, "a leader")
        agent = AgentProcess(zk_url, tmp_path / "agent").start()

        sched = ExecutorScheduler(f"{sys.executable} {script} {pidfile}")
        framework = {"user": "root", "name": "pymesos-executor-test", "hostname": "localhost"}
        driver = pymesos.MesosSchedulerDriver(sched, framework, zk_url, use_addict=False)
        driver.start()

        def both_finished() -> bool:
            with sched.lock:
                return all("TASK_FINISHED" in sched.states.get(t, []) for t in ("exec-a", "exec-b"))

        wait_until(both_finished, 60, "both tasks FINISHED")
        with sched.lock:
            for tid in ("exec-a", "exec-b"):
                changes = _changes(sched.states[tid])
                assert changes == ["TASK_RUNNING", "TASK_FINISHED"], sched.states
            running = [u for u in sched.updates if u["state"] == "TASK_RUNNING"]
        assert all(u["message"] == "in the pymesos executor" for u in running)
        assert all(u["executor_id"] == {"value": "pyexec"} for u in sched.updates)
        assert all(u["source"] == "SOURCE_EXECUTOR" for u in sched.updates)

        # One executor ran both tasks, in its own sandbox.
        runs = list((tmp_path / "agent").glob("slaves/*/frameworks/*/executors/pyexec/runs/*"))
        assert len(runs) == 1, runs
        stdout = (runs[0] / "stdout").read_text()
        assert "registered pyexec" in stdout
        assert "finished exec-a" in stdout and "finished exec-b" in stdout
        executor_pid = int(pidfile.read_text())
        assert _alive(executor_pid)

        # Framework messages both ways: scheduler -> executor -> scheduler, after both
        # drivers' call connections sat idle longer than uvicorn's default keep-alive
        # (5 s): pymesos reuses them without retrying, so the servers must keep them.
        time.sleep(6)
        agent_id = sched.updates[0]["agent_id"]
        ping = base64.b64encode(b"ping").decode()
        driver.sendFrameworkMessage({"value": "pyexec"}, agent_id, ping)
        wait_until(lambda: sched.messages, 30, "the executor's reply")
        assert sched.messages == [({"value": "pyexec"}, agent_id, "re: ping")]

        # Tearing the framework down shuts the executor down.
        driver.stop()
        driver.join()
        driver = None
        wait_until(lambda: not _alive(executor_pid), 30, "the executor to end")
        assert "shutdown" in (runs[0] / "stdout").read_text()
    finally:
        if driver is not None:
            driver.stop()
            driver.join()
        if agent is not None:
            agent.kill()
        if master is not None:
            master.kill()
        ensemble.stop()


def _agent_executors(agent: AgentProcess) -> list[dict[str, Any]]:
    try:
        st = httpx.get(f"http://127.0.0.1:{agent.port}/state", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return []
    return [e for fw in st.get("frameworks", []) for e in fw.get("executors", [])]


def test_pymesos_executor_survives_an_agent_kill_9(tmp_path: Path) -> None:
    """A checkpointing framework's pymesos executor outlives a kill -9 of the agent,
    re-subscribes to the restarted agent and still owns its task, which a kill from the
    scheduler then ends."""
    reason = unavailable_reason("keeper")
    if reason:
        pytest.skip(f"keeper: {reason}")
    try:
        ensemble = zk_ensemble("keeper", 1, tick_ms=500)
    except KeeperUnavailable as exc:
        pytest.skip(f"keeper: {exc}")
    master: MasterProcess | None = None
    agent: AgentProcess | None = None
    driver = None
    script = tmp_path / "executor.py"
    script.write_text(EXECUTOR_SCRIPT)
    pidfile = tmp_path / "executor.pid"
    executor_pid = None
    try:
        zk_url = f"zk://{ensemble.hosts}/mesos"
        master = MasterProcess(zk_url, 1, tmp_path / "m0", "--allocation-interval", "0.2s").start()
        wait_until(lambda: elected([master]), 60, "a leader")
        agent = AgentProcess(zk_url, tmp_path / "agent").start()

        sched = ExecutorScheduler(f"{sys.executable} {script} {pidfile}", ("long-1",))
        framework = {
            "user": "root",
            "name": "pymesos-executor-restart",
            "hostname": "localhost",
            "checkpoint": True,
        }
        driver = pymesos.MesosSchedulerDriver(sched, framework, zk_url, use_addict=False)
        driver.start()
        wait_until(lambda: "TASK_RUNNING" in sched.states.get("long-1", []), 60, "RUNNING")
        wait_until(lambda: pidfile.exists() and pidfile.read_text(), 10, "the executor pid")
        executor_pid = int(pidfile.read_text())

        agent.kill(signal.SIGKILL)
        assert _alive(executor_pid)
        agent.start()  # same port and work dir
        wait_until(
            lambda: [e for e in _agent_executors(agent) if e.get("state") == "RUNNING"],
            45,
            "the executor to re-subscribe",
        )
        (entry,) = _agent_executors(agent)
        assert entry["pid"] == os.getpgid(executor_pid)  # the same process (group) as before
        assert [t["id"] for t in entry["tasks"]] == ["long-1"]

        driver.killTask({"value": "long-1"})
        wait_until(lambda: "TASK_KILLED" in sched.states.get("long-1", []), 30, "KILLED")
        assert _changes(sched.states["long-1"]) == ["TASK_RUNNING", "TASK_KILLED"]
        runs = list((tmp_path / "agent").glob("slaves/*/frameworks/*/executors/pyexec/runs/*"))
        assert len(runs) == 1
        assert "reregistered" in (runs[0] / "stdout").read_text()
    finally:
        if driver is not None:
            driver.stop()
            driver.join()
        if agent is not None:
            agent.kill()
        if master is not None:
            master.kill()
        ensemble.stop()
        if executor_pid is not None and _alive(executor_pid):
            os.kill(executor_pid, signal.SIGKILL)
