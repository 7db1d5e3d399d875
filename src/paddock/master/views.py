"""v1 operator API views of the master's state (GET_AGENTS, GET_FRAMEWORKS, GET_TASKS,
GET_EXECUTORS, GET_STATE) and the objects operator SUBSCRIBE events carry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paddock.master.state import Agent, Framework, vid

if TYPE_CHECKING:
    from paddock.master.base import MasterBase


def _ns(t: float) -> dict[str, int]:
    return {"nanoseconds": int(t * 1e9)}


def agent_entry(m: MasterBase, a: Agent) -> dict[str, Any]:
    return {
        "agent_info": a.to_v1_info(),
        "active": a.connected and a.active,
        "deactivated": not a.active,
        "pid": a.pid(),
        "version": a.version,
        "registered_time": _ns(a.registered_time),
        "total_resources": a.total.to_json(),
        "allocated_resources": a.used().to_json(),
        "offered_resources": m.offered_on(a).to_json(),
    }


def framework_entry(m: MasterBase, f: Framework) -> dict[str, Any]:
    return {
        "framework_info": f.info,
        "active": f.active,
        "connected": f.connected,
        "recovered": False,
        "registered_time": _ns(f.registered_time),
        "offers": [],
        "allocated_resources": [
            r for role, res in f.used_by_role().items() for r in res.to_json(allocation_role=role)
        ],
        "offered_resources": m.offered_to(f).to_json(),
    }


def get_agents(m: MasterBase) -> dict[str, Any]:
    agents = [agent_entry(m, a) for a in m.agents.values()]
    recovered = [
        {"id": vid(aid), "hostname": info.get("hostname", ""), "port": info.get("port", 0)}
        for aid, info in m.recovered_agents.items()
    ]
    return {"agents": agents, "recovered_agents": recovered}


def get_frameworks(m: MasterBase) -> dict[str, Any]:
    return {
        "frameworks": [framework_entry(m, f) for f in m.frameworks.values()],
        "completed_frameworks": [framework_entry(m, f) for f in m.completed_frameworks],
    }


def get_tasks(m: MasterBase) -> dict[str, Any]:
    tasks, unreachable, completed = [], [], []
    for f in m.frameworks.values():
        for t in f.tasks.values():
            if t.state == "TASK_UNREACHABLE":
                unreachable.append(t.to_v1())
            elif t.terminal:
                completed.append(t.to_v1())
            else:
                tasks.append(t.to_v1())
        completed.extend(t.to_v1() for t in f.completed_tasks[-100:])
    return {
        "tasks": tasks,
        "pending_tasks": [],
        "unreachable_tasks": unreachable,
        "completed_tasks": completed,
        "orphan_tasks": [],
    }


def get_executors(m: MasterBase) -> dict[str, Any]:
    executors = [ex.to_v1() for a in m.agents.values() for ex in a.executors.values()]
    return {"executors": executors, "orphan_executors": []}


def get_state(m: MasterBase) -> dict[str, Any]:
    return {
        "get_tasks": get_tasks(m),
        "get_executors": get_executors(m),
        "get_frameworks": get_frameworks(m),
        "get_agents": get_agents(m),
    }
