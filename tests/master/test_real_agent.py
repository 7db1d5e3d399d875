"""Three masters with a real ``paddock agent``: tasks run as processes, updates flow both
ways, and a running task survives kill -9 of the leading master."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

from .clients import AgentProcess, Scheduler, await_until, elected, wait_until
from .conftest import start_or_skip

pytestmark = pytest.mark.timeout(150)


def _command_task(offer, task_id: str, command: str) -> dict:
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
        ],
        "command": {"value": command, "shell": True},
    }


async def _ack(sched: Scheduler, status: dict) -> None:
    if "uuid" in status:
        await sched.call(
            "ACKNOWLEDGE",
            agent_id=status["agent_id"],
            task_id=status["task_id"],
            uuid=status["uuid"],
        )


async def _state_of(sched: Scheduler, task_id: str, state: str, timeout: float = 20) -> dict:
    def match(e):
        st = e["update"]["status"]
        return st["task_id"]["value"] == task_id and st["state"] == state

    ev = await sched.next("UPDATE", timeout=timeout, pred=match)
    return ev["update"]["status"]


async def test_real_agent_runs_tasks_across_master_failover(masters, tmp_path):
    ens = start_or_skip("zookeeper", 1, tick_ms=500)
    masters.cleanups.append(ens.stop)
    zk_url = f"zk://{ens.hosts}/mesos"
    ms = [
        masters.start(zk_url, 2, f"m{i}", "--allocation-interval", "0.1s",
                      "--zk-session-timeout", "2s")
        for i in range(3)
    ]  # fmt: skip
    leader = wait_until(lambda: elected(ms), 60, "a leader")[0]
    agent = AgentProcess(zk_url, tmp_path / "agent")
    masters.cleanups.insert(0, agent.kill)
    agent.start()
    sched = Scheduler("real", failover_timeout=60)
    sched.auto_ack = True  # the agent forwards a task's next update only after an ACK
    try:
        await sched.subscribe(leader.url)
        offer = (await sched.next("OFFERS", timeout=30))["offers"]["offers"][0]
        assert offer["hostname"] == "127.0.0.1"
        assert {"name": "rack", "type": "TEXT", "text": {"value": "r1"}} in offer["attributes"]
        tasks = [
            _command_task(offer, "quick", "echo hello"),
            _command_task(offer, "long", "sleep 60"),
        ]
        code = await sched.call(
            "ACCEPT",
            offer_ids=[offer["id"]],
            operations=[{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
        )
        assert code == 202
        await _state_of(sched, "quick", "TASK_RUNNING")
        await _state_of(sched, "quick", "TASK_FINISHED")
        await _state_of(sched, "long", "TASK_RUNNING")
        async with httpx.AsyncClient() as c:
            agent_state = (await c.get(f"http://127.0.0.1:{agent.port}/state")).json()
        assert agent_state  # the agent answers its own state endpoint

        # kill -9 the leader: the agent re-registers with the new leader with its task.
        leader.kill(signal.SIGKILL)
        others = [m for m in ms if m is not leader]
        new = (await await_until(lambda: elected(others), 30, "a new leader"))[0]
        await await_until(lambda: sched.closed.is_set(), 10, "old stream ends")
        sched.events.clear()
        sched._consumed.clear()
        await sched.subscribe(new.url)

        async def long_running_on_new_leader():
            async with httpx.AsyncClient() as c:
                st = (await c.get(new.url + "/master/state")).json()
            for fw in st["frameworks"]:
                for t in fw["tasks"]:
                    if t["id"] == "long" and t["state"] == "TASK_RUNNING":
                        return True
            return False

        for _ in range(200):
            if await long_running_on_new_leader():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the new leader does not know the running task")
        assert await sched.call("KILL", task_id={"value": "long"}) == 202
        await _state_of(sched, "long", "TASK_KILLED", timeout=30)
    finally:
        await sched.close()
        print(agent.log_tail())
