"""An agent the master had marked unreachable (or did not know) re-registers with its tasks:
the master tells each framework the tasks' current state (reason REASON_AGENT_REREGISTERED),
as Mesos >= 1.5 does in ``Master::_reregisterSlave``. Without it a framework that forgot
those tasks (Marathon expunging unreachable instances) only hears of them at its next
reconciliation, and they keep running meanwhile (docs/reliability.md, Findings 5). Tasks of
frameworks that are not partition-aware are kept too (Mesos >= 1.5), not killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import httpx
import pytest

from .clients import HOST, FakeAgent, Scheduler, fixed_ports

pytestmark = pytest.mark.timeout(120)

PA = [{"type": "PARTITION_AWARE"}]


def _zk(zk, path: str) -> str:
    return f"zk://{zk.hosts}/{path}"


def _fast_health(zk, path: str) -> list[str]:
    return [
        _zk(zk, path), "1", "m1", "--allocation-interval", "0.1s",
        "--agent-ping-timeout", "0.2s", "--max-agent-ping-timeouts", "2",
    ]  # fmt: skip


def _not_running(ev) -> bool:
    return ev["update"]["status"]["state"] != "TASK_RUNNING"


def _reconciliation(ev) -> bool:
    return ev["update"]["status"].get("reason") == "REASON_RECONCILIATION"


def _reregistered(ev) -> bool:
    return ev["update"]["status"].get("reason") == "REASON_AGENT_REREGISTERED"


async def _running_task_then_unreachable(m, agent: FakeAgent, sched: Scheduler, task: str) -> str:
    """Launch ``task`` on ``agent``, then stop answering PINGs until the master marks the
    agent unreachable; returns the state the framework was told."""
    await agent.register(m.url)
    await sched.subscribe(m.url)
    offer = (await sched.next("OFFERS"))["offers"]["offers"][0]
    await sched.launch(offer, task, 0.5, 64)
    await agent.next("RUN_TASK")
    await agent.update(sched.framework_id, task, "TASK_RUNNING")
    agent.ponging = False
    upd = await sched.next("UPDATE", timeout=15, pred=_not_running)
    async with httpx.AsyncClient() as c:
        reg = (await c.get(m.url + "/registry")).json()
    assert agent.agent_id in reg["unreachable"]
    await agent.close()
    return str(upd["update"]["status"]["state"])


def _returning(agent: FakeAgent) -> FakeAgent:
    back = FakeAgent(agent.hostname, agent.resources)
    back.agent_id, back.tasks = agent.agent_id, agent.tasks
    return back


async def test_partition_aware_framework_hears_task_running_when_agent_returns(zk, masters):
    m = masters.start(*_fast_health(zk, "rereg1"))
    agent = FakeAgent("host-pa", "cpus:1;mem:512")
    sched = Scheduler("pa", capabilities=PA)
    try:
        assert await _running_task_then_unreachable(m, agent, sched, "t1") == "TASK_UNREACHABLE"
        back = _returning(agent)
        try:
            await back.register(m.url)
            upd = await sched.next("UPDATE", timeout=10, pred=_reregistered)
            st = upd["update"]["status"]
            assert st["task_id"] == {"value": "t1"}
            assert st["state"] == "TASK_RUNNING"
            assert st["source"] == "SOURCE_MASTER"
            assert st["agent_id"] == {"value": agent.agent_id}
            assert "uuid" not in st  # the master's own update: nothing to acknowledge
            # A partition-aware framework's task is not killed by the master.
            assert all(e.get("type") != "KILL_TASK" for e in back.events)
        finally:
            await back.close()
    finally:
        await sched.close()
        await agent.close()


async def test_non_partition_aware_task_is_kept_when_its_agent_returns(zk, masters):
    """Mesos >= 1.5 (apache/mesos 9d0cadc, MESOS-7215): the task of a framework that is not
    partition-aware was reported TASK_LOST when its agent became unreachable; when the
    agent re-registers, the master re-adds the task and tells the framework it runs
    (TASK_RUNNING, REASON_AGENT_REREGISTERED) instead of killing it, as Mesos 1.1-1.4 did
    (and as this test asserted before): killing it was the misuse of
    ShutdownFrameworkMessage that MESOS-7215 removed. The task stays the framework's: the
    master knows it again (reconciliation, /master/state, its resources used) and a KILL
    from the framework reaches the agent."""
    m = masters.start(*_fast_health(zk, "rereg2"))
    agent = FakeAgent("host-npa", "cpus:1;mem:512")
    sched = Scheduler("not-pa")
    try:
        assert await _running_task_then_unreachable(m, agent, sched, "t1") == "TASK_LOST"
        back = _returning(agent)
        try:
            await back.register(m.url)
            upd = await sched.next("UPDATE", timeout=10, pred=_reregistered)
            assert upd["update"]["status"]["state"] == "TASK_RUNNING"
            # Events to the agent are ordered: a framework message sent after the
            # re-registration arrives after any KILL_TASK the re-registration caused.
            data = "cGluZw=="
            code = await sched.call(
                "MESSAGE",
                agent_id={"value": agent.agent_id},
                executor_id={"value": "t1"},
                data=data,
            )
            assert code == 202
            await back.next("FRAMEWORK_MESSAGE", timeout=5)
            assert all(e.get("type") != "KILL_TASK" for e in back.events)
            async with httpx.AsyncClient() as c:
                state = (await c.get(m.url + "/master/state")).json()
            (fw,) = state["frameworks"]
            assert [(t["id"], t["state"]) for t in fw["tasks"]] == [("t1", "TASK_RUNNING")]
            assert all(t["id"] != "t1" for t in fw["completed_tasks"])  # not both
            (slave,) = state["slaves"]
            assert (slave["used_resources"]["cpus"], slave["used_resources"]["mem"]) == (0.5, 64)
            await sched.call("RECONCILE", tasks=[])
            rec = await sched.next("UPDATE", pred=_reconciliation)
            assert rec["update"]["status"]["state"] == "TASK_RUNNING"
            assert await sched.call("KILL", task_id={"value": "t1"}) == 202
            kill = await back.next("KILL_TASK", timeout=5)
            assert kill["kill_task"]["task_id"]["value"] == "t1"
        finally:
            await back.close()
    finally:
        await sched.close()
        await agent.close()


async def test_new_leader_reports_tasks_of_an_agent_it_did_not_expect(zk, masters):
    """The master that marked the agent unreachable is gone; its successor knows nothing of
    the task (the framework re-subscribed to it, Marathon-like, without the task) when the
    agent comes back: the framework is told the task runs."""
    m1 = masters.start(*_fast_health(zk, "rereg3"))
    agent = FakeAgent("host-nl", "cpus:1;mem:512")
    sched = Scheduler("pa", capabilities=PA, failover_timeout=60.0)
    again = Scheduler("pa", capabilities=PA, failover_timeout=60.0)
    try:
        assert await _running_task_then_unreachable(m1, agent, sched, "t9") == "TASK_UNREACHABLE"
        await sched.close()
        m1.kill(signal.SIGTERM)  # a clean stop: its successor need not wait out a session
        m2 = m1.start()  # the same work dir: the registry (agent unreachable) is kept
        again.framework_id = sched.framework_id
        await again.subscribe(m2.url)
        async with httpx.AsyncClient() as c:
            state = (await c.get(m2.url + "/master/state")).json()
        assert all(not f["tasks"] for f in state["frameworks"])
        back = _returning(agent)
        try:
            await back.register(m2.url)
            upd = await again.next("UPDATE", timeout=10, pred=_reregistered)
            st = upd["update"]["status"]
            assert (st["task_id"], st["state"]) == ({"value": "t9"}, "TASK_RUNNING")
        finally:
            await back.close()
    finally:
        await again.close()
        await sched.close()
        await agent.close()


async def test_marathon_kills_a_task_it_forgot_when_its_agent_returns(zk, masters, tmp_path):
    """End to end, the chaos run's ``/chaos/a22``: Marathon asks to kill a task, the agent
    is cut off before it acts, Marathon expunges the instance on TASK_UNREACHABLE; the
    agent comes back with the task still running. The master's REASON_AGENT_REREGISTERED
    update makes Marathon kill it at once (its reconciliation is 10 minutes away)."""
    m = masters.start(
        _zk(zk, "rereg4"), "1", "m1", "--allocation-interval", "0.1s",
        "--agent-ping-timeout", "0.3s", "--max-agent-ping-timeouts", "3",
    )  # fmt: skip
    (port,) = fixed_ports(1)
    log_path = tmp_path / "marathon.log"
    cmd = [
        sys.executable, "-m", "paddock.cli.main", "marathon",
        "--master", _zk(zk, "rereg4"), "--zk", _zk(zk, "rereg4-marathon"),
        "--port", str(port), "--hostname", HOST, "--bind", HOST,
        "--reconciliation-initial-delay", "600", "--reconciliation-interval", "600",
    ]  # fmt: skip
    with open(log_path, "ab") as log:
        marathon = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    masters.cleanups.append(lambda: (marathon.kill(), marathon.wait(10)))
    base = f"http://{HOST}:{port}"
    agent = FakeAgent("127.0.0.1", "cpus:2;mem:1024")
    try:
        await agent.register(m.url)
        async with httpx.AsyncClient(timeout=5) as c:

            async def tasks() -> list:
                r = await c.get(base + "/v2/apps/e2e/tasks")
                return r.json()["tasks"] if r.status_code == 200 else []

            app = {"id": "/e2e", "cmd": "sleep 1000", "cpus": 0.1, "mem": 8, "instances": 1,
                   "portDefinitions": []}  # fmt: skip
            for _ in range(200):  # until marathon leads and answers
                try:
                    r = await c.post(base + "/v2/apps", json=app)
                    if r.status_code in (200, 201):
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"marathon never took the app:\n{log_path.read_text()}")
            run = await agent.next("RUN_TASK", timeout=30)
            fid = run["run_task"]["framework"]["id"]["value"]
            tid = run["run_task"]["task"]["task_id"]["value"]
            await agent.update(fid, tid, "TASK_RUNNING")
            for _ in range(200):
                if [t["state"] for t in await tasks()] == ["TASK_RUNNING"]:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"the task never ran:\n{log_path.read_text()}")
            # The kill reaches the agent, which is cut off before it acts on it.
            r = await c.put(base + "/v2/apps/e2e?force=true", json={"instances": 0})
            assert r.status_code in (200, 201), r.text
            kill = await agent.next("KILL_TASK", timeout=20)
            assert kill["kill_task"]["task_id"]["value"] == tid
            agent.ponging = False
            for _ in range(300):  # TASK_UNREACHABLE: Marathon expunges the instance
                if not await tasks():
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("marathon kept the instance")
            await agent.close()
            back = _returning(agent)
            try:
                await back.register(m.url)
                kill = await back.next("KILL_TASK", timeout=10)
                assert kill["kill_task"]["task_id"]["value"] == tid
            finally:
                await back.close()
    finally:
        await agent.close()
