"""End to end with a real ``paddock agent``: a custom executor's resources are allocated
once for its two tasks, and when the executor process exits the agent reports it
(``EXITED_EXECUTOR`` in docs/agent-protocol.md), the framework gets a ``FAILURE`` naming
the executor, and the whole agent is offered again."""

from __future__ import annotations

import httpx
import pytest

from .clients import AgentProcess, Scheduler, elected, wait_until

pytestmark = pytest.mark.timeout(120)


def _res(cpus: float, mem: float) -> list[dict]:
    return [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
    ]


def _scalars(resources: list[dict]) -> tuple[float, float]:
    out = {r["name"]: r["scalar"]["value"] for r in resources if r.get("type") == "SCALAR"}
    return out.get("cpus", 0.0), out.get("mem", 0.0)


async def _used(m, agent_id: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """(agent's used_resources in /master/state, cpus/mem used in /metrics/snapshot)."""
    async with httpx.AsyncClient() as c:
        state = (await c.get(m.url + "/master/state")).json()
        metrics = (await c.get(m.url + "/metrics/snapshot")).json()
    (slave,) = [s for s in state["slaves"] if s["id"] == agent_id]
    used = slave["used_resources"]
    return (used["cpus"], used["mem"]), (metrics["master/cpus_used"], metrics["master/mem_used"])


async def test_executor_resources_once_and_back_after_it_exits(zk, masters, tmp_path):
    m = masters.start(f"zk://{zk.hosts}/exres", 1, "m1", "--allocation-interval", "0.1s")
    wait_until(lambda: elected([m]), 60, "a leader")
    agent = AgentProcess(f"zk://{zk.hosts}/exres", tmp_path / "agent", "cpus:2;mem:1024")
    masters.cleanups.insert(0, agent.kill)
    agent.start()
    stop = tmp_path / "stop-executor"
    executor = {
        "executor_id": {"value": "waiter"},
        "name": "waits for a file, never subscribes",
        "command": {"value": f"while [ ! -e {stop} ]; do sleep 0.05; done", "shell": True},
        "resources": _res(0.5, 128),
    }
    sched = Scheduler("executor-resources")
    sched.auto_ack = True
    try:
        await sched.subscribe(m.url)
        offer = (await sched.next("OFFERS", timeout=30))["offers"]["offers"][0]
        agent_id = offer["agent_id"]["value"]
        tasks = [
            {"name": t, "task_id": {"value": t}, "agent_id": offer["agent_id"],
             "resources": _res(0.1, 32), "executor": executor}
            for t in ("on-exec-1", "on-exec-2")
        ]  # fmt: skip
        code = await sched.call(
            "ACCEPT",
            offer_ids=[offer["id"]],
            operations=[{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
            filters={"refuse_seconds": 600},  # the rest is not offered until REVIVE
        )
        assert code == 202
        # Executor 0.5/128 once, plus 2 x 0.1/32 (0.7 cpus, not 1.2).
        assert await _used(m, agent_id) == ((0.7, 192.0), (0.7, 192.0))

        stop.touch()  # the executor exits: its tasks fail, its resources come back
        failure = await sched.next("FAILURE", timeout=30)
        assert failure["failure"]["executor_id"] == {"value": "waiter"}
        assert failure["failure"]["agent_id"] == {"value": agent_id}
        assert failure["failure"]["status"] == 0
        for _ in tasks:
            upd = await sched.next("UPDATE", timeout=30)
            assert upd["update"]["status"]["state"] == "TASK_FAILED"
            assert upd["update"]["status"]["reason"] == "REASON_EXECUTOR_TERMINATED"
        assert await _used(m, agent_id) == ((0.0, 0.0), (0.0, 0.0))
        # Resources came back piecewise (each task's end, then the executor's), some in
        # offers made meanwhile: decline those until the whole agent is offered as one.
        assert await sched.call("REVIVE") == 202
        seen = []
        while True:
            (offer,) = (await sched.next("OFFERS", timeout=30))["offers"]["offers"]
            seen.append(_scalars(offer["resources"]))
            if seen[-1] == (2.0, 1024.0):
                break
            assert len(seen) < 10, seen
            await sched.call("DECLINE", offer_ids=[offer["id"]], filters={"refuse_seconds": 0})
    finally:
        await sched.close()
        print(agent.log_tail())
