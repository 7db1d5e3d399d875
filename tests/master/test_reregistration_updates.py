"""An agent the master had marked unreachable (or did not know) re-registers with its tasks:
the master tells each framework the tasks' current state (reason REASON_AGENT_REREGISTERED),
as Mesos >= 1.5 does in ``Master::_reregisterSlave``. Without it a framework that forgot
those tasks (Marathon expunging unreachable instances) only hears of them at its next
reconciliation, and they keep running meanwhile (docs/reliability.md, Findings 5)."""

from __future__ import annotations

import signal

import httpx
import pytest

from .clients import FakeAgent, Scheduler

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


async def test_non_partition_aware_framework_hears_task_running_then_it_is_killed(zk, masters):
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
