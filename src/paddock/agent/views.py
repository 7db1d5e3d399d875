"""JSON views of the agent for its HTTP endpoints: Mesos-shaped ``/state`` and metrics.

The classic ``/state`` (``src/slave/http.cpp``) shows resources as a flat map
(``{"cpus": 4.0, "mem": 4096.0, "ports": "[31000-32000]"}``), attributes as a map of
values, and each framework with its executors and their tasks; a command task's executor
id is the task id.  We add ``cgroups`` (whether limits are enforced and why not).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from paddock import __version__
from paddock.agent.daemon import Agent, Task
from paddock.master.resources import Resources

__all__ = ["flat_resources", "metrics_snapshot", "state_json"]

MESOS_COMPAT_VERSION = "1.11.0"

TASK_STATES = (
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
)


def flat_resources(res: Resources) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, _role, kind, _value in res:
        if name in out:
            continue
        if kind == "SCALAR":
            out[name] = res.get_scalar(name)
        elif kind == "RANGES":
            out[name] = "[" + ",".join(f"{b}-{e}" for b, e in res.get_ranges(name)) + "]"
        else:
            out[name] = "{" + ",".join(res.get_set(name)) + "}"
    return out


def task_resources(task: Task) -> Resources:
    try:
        return Resources.from_json(task.info.get("resources") or [])
    except ValueError:
        return Resources()


def used_resources(agent: Agent) -> Resources:
    total = Resources()
    for task in agent.tasks.values():
        if not task.terminal:
            total = total + task_resources(task)
    for run in agent.executors.runs.values():  # a custom executor's own resources
        total = total + _executor_resources(run.info)
    return total


def _classic_task(agent: Agent, task: Task) -> dict[str, Any]:
    return {
        "id": task.task_id,
        "name": task.info.get("name", task.task_id),
        "framework_id": task.framework_id,
        "executor_id": task.executor_id,
        "slave_id": agent.agent_id or "",
        "state": task.state,
        "resources": flat_resources(task_resources(task)),
        "statuses": [
            {k: s[k] for k in ("state", "timestamp", "message", "reason", "healthy") if k in s}
            for s in task.statuses
        ],
        "directory": str(task.sandbox),
    }


def _attributes_map(agent: Agent) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in agent.config.attributes:
        if attr.type == "RANGES":
            assert isinstance(attr.value, tuple)
            out[attr.name] = "[" + ",".join(f"{b}-{e}" for b, e in attr.value) + "]"
        else:
            out[attr.name] = attr.value
    return out


def state_json(agent: Agent) -> dict[str, Any]:
    cfg = agent.config
    frameworks: dict[str, dict[str, Any]] = {}

    def fw_entry(fw_id: str) -> dict[str, Any]:
        if fw_id not in frameworks:
            info = agent.frameworks.get(fw_id, {})
            frameworks[fw_id] = {
                "id": fw_id,
                "name": info.get("name", ""),
                "user": info.get("user", ""),
                "hostname": info.get("hostname", ""),
                "role": info.get("role", "*"),
                "checkpoint": bool(info.get("checkpoint", False)),
                "executors": [],
                "completed_executors": [],
            }
        return frameworks[fw_id]

    def executor(task: Task) -> dict[str, Any]:
        ct = _classic_task(agent, task)
        return {
            "id": task.task_id,
            "name": f"Command Executor (Task: {task.task_id})",
            "source": task.task_id,
            "framework_id": task.framework_id,
            "directory": str(task.sandbox),
            "resources": ct["resources"],
            "tasks": [ct] if not task.terminal else [],
            "queued_tasks": [],
            "completed_tasks": [ct] if task.terminal else [],
            "pid": task.pid,
        }

    custom = _custom_executors(agent)
    for task in agent.tasks.values():
        if _in_custom(agent, custom, task):
            continue
        fw_entry(task.framework_id)["executors"].append(executor(task))
    for task in agent.completed:
        if _in_custom(agent, custom, task):
            continue
        fw_entry(task.framework_id)["completed_executors"].append(executor(task))
    for entry, running in custom.values():
        del entry["_queued"]
        fw_entry(entry["framework_id"])["executors" if running else "completed_executors"].append(
            entry
        )
    live = [fw for fw in frameworks.values() if fw["executors"]]
    completed = [fw for fw in frameworks.values() if not fw["executors"]]
    return {
        "version": MESOS_COMPAT_VERSION,
        "paddock_version": __version__,
        "id": agent.agent_id or "",
        "pid": f"slave(1)@{agent.endpoint}",
        "hostname": cfg.hostname,
        "start_time": agent.start_time,
        "registered": agent.registered,
        "master_hostname": agent.master[0] if agent.master else "",
        "master": f"{agent.master[0]}:{agent.master[1]}" if agent.master else "",
        "resources": flat_resources(cfg.resources),
        "used_resources": flat_resources(used_resources(agent)),
        "unreserved_resources": flat_resources(cfg.resources.unreserved()),
        "reserved_resources": {
            role: flat_resources(cfg.resources.reserved(role))
            for role in cfg.resources.roles()
            if role != "*"
        },
        "attributes": _attributes_map(agent),
        "flags": cfg.flags_json(),
        "cgroups": agent.cgroups.describe(),
        "frameworks": live,
        "completed_frameworks": completed,
    }


def _custom_executors(agent: Agent) -> dict[Path, tuple[dict[str, Any], bool]]:
    """Custom executor runs (running and recently ended), keyed by sandbox, with their
    tasks filled in later; the flag says whether the executor still runs."""
    out: dict[Path, tuple[dict[str, Any], bool]] = {}
    manager = agent.executors
    runs = [(r, False) for r in manager.completed] + [(r, True) for r in manager.runs.values()]
    for run, running in runs:
        entry = {
            "id": run.executor_id,
            "name": run.info.get("name", ""),
            "source": run.info.get("source", ""),
            "framework_id": run.framework_id,
            "container": run.container_id,
            "directory": str(run.sandbox),
            "resources": flat_resources(_executor_resources(run.info)),
            "tasks": [],
            "queued_tasks": [],
            "completed_tasks": [],
            "pid": run.pid,
            "state": run.state,
            "_queued": set(run.queued),
        }
        out[run.sandbox] = (entry, running)
    return out


def _in_custom(agent: Agent, custom: dict[Path, tuple[dict[str, Any], bool]], task: Task) -> bool:
    """Put ``task`` under its custom executor's entry if it has one; whether it did."""
    found = custom.get(task.sandbox)
    if found is None or found[0]["id"] != task.executor_id:
        return False
    entry = found[0]
    if task.terminal:
        kind = "completed_tasks"
    else:
        kind = "queued_tasks" if task.task_id in entry["_queued"] else "tasks"
    entry[kind].append(_classic_task(agent, task))
    return True


def _executor_resources(info: dict[str, Any]) -> Resources:
    try:
        return Resources.from_json(info.get("resources") or [])
    except ValueError:
        return Resources()


def metrics_snapshot(agent: Agent) -> dict[str, float]:
    counts = dict.fromkeys(TASK_STATES, 0)
    for task in agent.tasks.values():
        if task.state in counts:
            counts[task.state] += 1
    total = agent.config.resources
    used = used_resources(agent)
    c = agent.counters
    u = agent.updates.counters
    out: dict[str, float] = {
        "slave/registered": 1.0 if agent.registered else 0.0,
        "slave/uptime_secs": time.time() - agent.start_time,
        "slave/tasks_staging": counts["TASK_STAGING"],
        "slave/tasks_starting": counts["TASK_STARTING"],
        "slave/tasks_running": counts["TASK_RUNNING"],
        "slave/tasks_killing": counts["TASK_KILLING"],
        "slave/tasks_finished": c["tasks_finished"],
        "slave/tasks_failed": c["tasks_failed"],
        "slave/tasks_killed": c["tasks_killed"],
        "slave/tasks_lost": c["tasks_lost"],
        "slave/tasks_error": c["tasks_error"],
        "slave/tasks_launched": c["tasks_launched"],
        "slave/executors_running": sum(
            1 for t in agent.tasks.values() if t.process is not None and not t.terminal
        )
        + len(agent.executors.runs),
        "slave/frameworks_active": len({t.framework_id for t in agent.tasks.values()}),
        "slave/valid_status_update_acknowledgements": u["valid_acks"],
        "slave/invalid_status_update_acknowledgements": u["invalid_acks"],
        "slave/status_updates_sent": u["sent"],
        "slave/status_updates_retried": u["retried"],
        "slave/status_updates_pending": agent.updates.pending_count(),
        "slave/registrations": c["registrations"],
        "slave/invalid_events": c["invalid_events"],
        "slave/pings": c["pings"],
        "slave/cgroups_available": 1.0 if agent.cgroups.available else 0.0,
    }
    for name in ("cpus", "mem", "disk", "ports"):
        tq = total.quantities().get(name, 0.0)
        uq = used.quantities().get(name, 0.0)
        out[f"slave/{name}_total"] = tq
        out[f"slave/{name}_used"] = uq
        out[f"slave/{name}_percent"] = uq / tq if tq else 0.0
    return {k: float(v) for k, v in out.items()}
