"""A KILL for a task the master does not know is an explicit reconciliation of that task,
as in Mesos (``Master::kill`` -> ``_reconcileTasks``): silent while its agent is one a
new leader still expects to re-register, TASK_UNKNOWN (TASK_LOST for frameworks that
are not partition-aware) otherwise, TASK_UNREACHABLE for an unreachable agent.

Found by the chaos lab (3 hosts, seed 3): a marathon scaled an app to 0 right after a
whole-cluster kill; the new leading master, still waiting for the task's agent to
re-register, answered the kill with TASK_UNKNOWN at once; Marathon took the task for
gone and expunged it, and the agent re-registered (as expected, so no
REASON_AGENT_REREGISTERED update) with the task still running: an orphan task nobody
would kill and an app running one instance too many.
"""

from __future__ import annotations

from pathlib import Path

from paddock.master.config import MasterConfig
from paddock.master.core import Master
from paddock.master.election import ZkUrl
from paddock.master.streams import EventStream

from .test_core import FakeRegistry, _framework, _res, drain


def _updates(stream: EventStream) -> list[dict]:
    return [e["update"]["status"] for e in drain(stream) if e.get("type") == "UPDATE"]


async def test_kill_of_an_unknown_task_is_a_reconciliation():
    cfg = MasterConfig(
        zk=ZkUrl("h:1", "/m"), quorum=1, work_dir=Path("/nonexistent"),
        agent_reregister_timeout=60,
    )  # fmt: skip
    reg = FakeRegistry()
    for aid in ("A", "U"):
        reg.state.apply_command({"op": "admit", "agent_id": aid, "info": {"hostname": aid}})
    reg.state.apply_command({"op": "unreachable", "agent_id": "U", "time": 1.0})
    m = Master(cfg, {"id": "M2", "hostname": "h", "address": {}}, reg)  # type: ignore[arg-type]
    m.start_acting()
    try:
        assert "A" in m.recovered_agents  # admitted, awaited after the failover
        fw, stream = _framework(m, "aware", capabilities=[{"type": "PARTITION_AWARE"}])
        drain(stream)

        def kill(tid: str, aid: str | None) -> list[dict]:
            body: dict = {"task_id": {"value": tid}}
            if aid is not None:
                body["agent_id"] = {"value": aid}
            m.kill(fw, body)
            return _updates(stream)

        assert kill("t1", "A") == []  # its agent may still re-register with it
        [st] = kill("t2", "U")
        assert st["state"] == "TASK_UNREACHABLE"
        [st] = kill("t3", "nobody-knows")
        assert st["state"] == "TASK_UNKNOWN" and st["task_id"] == {"value": "t3"}
        [st] = kill("t4", None)
        assert st["state"] == "TASK_UNKNOWN"

        old, old_stream = _framework(m, "old")  # not partition-aware: TASK_LOST
        drain(old_stream)
        m.kill(old, {"task_id": {"value": "t5"}, "agent_id": {"value": "A"}})
        assert _updates(old_stream) == []
        m.kill(old, {"task_id": {"value": "t6"}})
        assert [s["state"] for s in _updates(old_stream)] == ["TASK_LOST"]

        # once the agent is back, a kill of a task it runs goes to it
        agent_stream = EventStream("agent", "")
        call = {"type": "REGISTER", "register": {"agent_info": {
            "hostname": "A", "id": {"value": "A"}, "resources": _res(1, 64)}}}  # fmt: skip
        await m.register_agent(call, agent_stream)
        assert "A" not in m.recovered_agents
        assert [s["state"] for s in kill("t1", "A")] == ["TASK_UNKNOWN"]  # A did not list it
    finally:
        await m.stop()
