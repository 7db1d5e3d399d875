"""pymesos 0.3.15 (the reference Python Mesos client) against three paddock masters.

pymesos finds the leader through ZooKeeper (``zk://.../mesos``, lowest ``json.info_``
child), subscribes over a chunked RecordIO stream, launches tasks, acknowledges
updates (the real ``paddock agent`` runs the tasks), and must keep working after
``kill -9`` of the leading master.

pymesos needs ``http-parser``, whose C extension does not build on Python 3.11;
its pure-Python parser works. Install with (not in pyproject: the wheel build fails):
``pip download http-parser==0.9.0 --no-binary :all:``, unpack, change
``run_setup(not IS_PYPY)`` to ``run_setup(False)`` in its setup.py, ``pip install`` that
directory, then ``pip install pymesos==0.3.15``.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pymesos = pytest.importorskip("pymesos", reason="pymesos 0.3.15 not installed (see docstring)")

from master.clients import AgentProcess, MasterProcess, elected, wait_until  # noqa: E402
from paddock.testing import KeeperUnavailable, zk_ensemble  # noqa: E402

from .conftest import KINDS, unavailable_reason  # noqa: E402

pytestmark = pytest.mark.timeout(150)


def _agent_completed(agent: AgentProcess) -> str:
    """The agent's view of finished (acknowledged) tasks, as JSON text."""
    try:
        st = httpx.get(f"http://127.0.0.1:{agent.port}/state", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return ""
    parts = [st.get("completed_frameworks", [])]
    parts += [fw.get("completed_executors", []) for fw in st.get("frameworks", [])]
    return json.dumps(parts)


class RecordingScheduler(pymesos.Scheduler):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.states: dict[str, list[str]] = {}
        self.registered_count = 0
        self.to_launch: list[str] = []
        self.offer_times: list[float] = []
        self.framework_id: str | None = None

    def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
        self.framework_id = framework_id["value"]
        self.registered_count += 1

    def reregistered(self, driver: Any, master_info: Any) -> None:
        self.registered_count += 1

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:
        self.offer_times.append(time.monotonic())
        for offer in offers:
            with self.lock:
                tid = self.to_launch.pop(0) if self.to_launch else None
            if tid is None:
                driver.declineOffer(offer["id"], {"refuse_seconds": 0.2})
                continue
            task = {
                "task_id": {"value": tid},
                "agent_id": offer["agent_id"],
                "name": tid,
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}},
                ],
                "command": {"value": "true"},
            }
            driver.launchTasks(offer["id"], [task], {"refuse_seconds": 0.2})

    def statusUpdate(self, driver: Any, update: Any) -> None:
        with self.lock:
            self.states.setdefault(update["task_id"]["value"], []).append(update["state"])


@pytest.mark.parametrize("kind", KINDS)
def test_pymesos_subscribe_launch_and_survive_leader_kill(tmp_path: Path, kind: str) -> None:
    reason = unavailable_reason(kind)
    if reason:
        pytest.skip(f"{kind}: {reason}")
    try:
        ensemble = zk_ensemble(kind, 1, tick_ms=500)
    except KeeperUnavailable as exc:
        pytest.skip(f"keeper: {exc}")
    masters: list[MasterProcess] = []
    agent: AgentProcess | None = None
    driver = None
    try:
        zk_url = f"zk://{ensemble.hosts}/mesos"
        fast = ("--allocation-interval", "0.2s", "--zk-session-timeout", "2s")
        masters = [MasterProcess(zk_url, 2, tmp_path / f"m{i}", *fast).start() for i in range(3)]
        leader = wait_until(lambda: elected(masters), 60, "a leader")[0]
        agent = AgentProcess(zk_url, tmp_path / "agent").start()

        sched = RecordingScheduler()
        sched.to_launch.append("before")
        framework = {"user": "root", "name": "pymesos-test", "hostname": "localhost"}
        driver = pymesos.MesosSchedulerDriver(sched, framework, zk_url, use_addict=False)
        driver.start()
        wait_until(
            lambda: "TASK_FINISHED" in sched.states.get("before", []), 30, "first task FINISHED"
        )
        assert sched.states["before"][-2:] == ["TASK_RUNNING", "TASK_FINISHED"]
        # The terminal update's ACK reached the agent: it moved the task to completed.
        wait_until(lambda: "before" in _agent_completed(agent), 10, "ACKs reach the agent")

        t0 = time.monotonic()
        leader.kill(signal.SIGKILL)
        survivors = [m for m in masters if m is not leader]
        wait_until(lambda: elected(survivors), 30, "a new leader")
        with sched.lock:
            sched.to_launch.append("after")
        wait_until(lambda: sched.registered_count >= 2, 30, "pymesos re-subscribed")
        wait_until(lambda: any(t > t0 for t in sched.offer_times), 30, "an offer after failover")
        first_offer = min(t for t in sched.offer_times if t > t0) - t0
        print(f"pymesos failover: first offer {first_offer:.2f}s after kill -9 of the leader")
        wait_until(
            lambda: "TASK_FINISHED" in sched.states.get("after", []), 30, "task FINISHED after"
        )
        assert sched.states["after"][-2:] == ["TASK_RUNNING", "TASK_FINISHED"]
    finally:
        if driver is not None:
            driver.stop()
            driver.join()
        if agent is not None:
            agent.kill()
        for m in masters:
            m.kill()
        ensemble.stop()
