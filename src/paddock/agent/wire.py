"""What the agent tells the master about itself: AgentInfo, v1 Task and the REGISTER
body (``docs/agent-protocol.md``)."""

from __future__ import annotations

from typing import Any

from paddock import __version__
from paddock.agent.daemon import Agent, Task

__all__ = ["agent_info", "register_body", "task_json"]


def agent_info(agent: Agent) -> dict[str, Any]:
    info: dict[str, Any] = {
        "hostname": agent.config.hostname,
        "port": agent.config.port,
        "resources": agent.config.resources.to_json(),
        "attributes": agent.config.attributes_json(),
    }
    if agent.agent_id:
        info["id"] = {"value": agent.agent_id}
    return info


def task_json(agent: Agent, task: Task) -> dict[str, Any]:
    """A v1 ``Task``."""
    out: dict[str, Any] = {
        "name": task.info.get("name", task.task_id),
        "task_id": {"value": task.task_id},
        "framework_id": {"value": task.framework_id},
        "executor_id": {"value": task.executor_id},
        "agent_id": {"value": agent.agent_id or ""},
        "state": task.state,
        "resources": task.info.get("resources") or [],
        "statuses": task.statuses,
    }
    for k in ("labels", "discovery", "container", "health_check", "kill_policy"):
        if k in task.info:
            out[k] = task.info[k]
    stream = agent.updates.streams.get(task.key)
    if stream is not None and stream.head is not None:
        out["status_update_state"] = stream.head["state"]
        out["status_update_uuid"] = stream.head["uuid"]
    return out


def register_body(agent: Agent) -> dict[str, Any]:
    # The custom executors that run (ExecutorInfo with framework_id, plus the run's
    # container_id): the master counts their resources once each, and forgets the ones
    # not listed (an exit it missed).
    executors = [
        {**run.info, "container_id": {"value": run.container_id}}
        for run in agent.executors.runs.values()
    ]
    fw_ids = sorted(
        {t.framework_id for t in agent.tasks.values()}
        | {run.framework_id for run in agent.executors.runs.values()}
    )
    return {
        "agent_info": agent_info(agent),
        "tasks": [task_json(agent, t) for t in agent.tasks.values()],
        "executors": executors,
        "frameworks": [agent.frameworks.get(f, {"id": {"value": f}}) for f in fw_ids],
        "unacknowledged_updates": agent.updates.unacknowledged(),
        "version": f"paddock {__version__}",
        **({"credential": agent.config.credential} if agent.config.credential else {}),
    }
