"""The leading master's in-memory view: agents, frameworks, tasks, offers, and their JSON.

Only the registry (``registry.py``) is replicated; everything here is rebuilt by a
new leader from agents re-registering and frameworks re-subscribing. The render
functions produce Mesos-shaped JSON: v1 objects (``{"value": ...}`` ids) for the
scheduler/operator APIs, and the classic ``/master/state`` shape for operators.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from paddock.master.resources import Resources
from paddock.master.streams import EventStream

TERMINAL_STATES = frozenset(
    {
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_ERROR",
        "TASK_LOST",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
    }
)


def vid(value: str) -> dict[str, str]:
    return {"value": value}


@dataclass
class Task:
    framework_id: str
    agent_id: str
    info: dict[str, Any]  # v1 TaskInfo as given by the framework (or agent)
    resources: Resources
    state: str = "TASK_STAGING"
    statuses: list[dict[str, Any]] = field(default_factory=list)
    latest_status: dict[str, Any] | None = None
    resources_recovered: bool = False
    role: str = "*"

    @property
    def id(self) -> str:
        return str(self.info.get("task_id", {}).get("value", ""))

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def to_v1(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.info.get("name", ""),
            "task_id": vid(self.id),
            "framework_id": vid(self.framework_id),
            "agent_id": vid(self.agent_id),
            "state": self.state,
            "resources": self.resources.to_json(),
            "statuses": self.statuses[-10:],
        }
        for key in ("labels", "discovery", "container", "health_check", "executor"):
            if key in self.info:
                out[key] = self.info[key]
        executor = self.info.get("executor")
        if isinstance(executor, dict) and "executor_id" in executor:
            out["executor_id"] = executor["executor_id"]
        return out

    def to_classic(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.info.get("name", ""),
            "framework_id": self.framework_id,
            "executor_id": "",
            "slave_id": self.agent_id,
            "state": self.state,
            "resources": scalar_summary(self.resources),
            "role": self.role,
            "statuses": [
                {"state": s.get("state"), "timestamp": s.get("timestamp", 0.0)}
                for s in self.statuses[-10:]
            ],
            **_classic_labels(self.info.get("labels")),
        }


@dataclass
class Executor:
    """A custom executor the master accounts on an agent (Mesos's ``Slave::executors``).

    Its resources (``ExecutorInfo.resources``) are allocated once, when the first task
    naming it is launched, and recovered when the agent reports that it exited or the
    framework is removed; its tasks' resources are accounted separately (``Task``)."""

    framework_id: str
    agent_id: str
    info: dict[str, Any]  # v1 ExecutorInfo (with framework_id)
    resources: Resources
    role: str = "*"
    #: The run the master counts (the agent's ``container_id``; None: not reported
    #: yet), the runs the agent reported ended, and which run each live task is in
    #: (``paddock.master.executor_runs``).
    run_id: str | None = None
    exited_runs: set[str] = field(default_factory=set)
    task_runs: dict[str, str] = field(default_factory=dict)
    #: The counted run ended while a task may be in a run not reported yet: still counted.
    exit_pending: bool = False

    @property
    def id(self) -> str:
        return str((self.info.get("executor_id") or {}).get("value", ""))

    @property
    def key(self) -> tuple[str, str]:
        """Its key in ``Agent.executors``."""
        return (self.framework_id, self.id)

    def to_v1(self) -> dict[str, Any]:
        """GET_EXECUTORS entry."""
        return {"executor_info": self.info, "agent_id": vid(self.agent_id)}

    def to_classic(self) -> dict[str, Any]:
        """``/master/state`` form (Mesos ``json(ExecutorInfo)`` plus ``slave_id``)."""
        return {
            "executor_id": self.id,
            "name": self.info.get("name", ""),
            "framework_id": self.framework_id,
            "command": self.info.get("command") or {},
            "resources": scalar_summary(self.resources),
            "role": self.role,
            "slave_id": self.agent_id,
            **_classic_labels(self.info.get("labels")),
        }


@dataclass
class OfferRecord:
    id: str
    framework_id: str
    agent_id: str
    resources: Resources
    role: str
    created: float


@dataclass
class Agent:
    id: str
    info: dict[str, Any]  # v1 AgentInfo (with our id)
    total: Resources
    attributes: list[dict[str, Any]]
    registered_time: float
    stream: EventStream | None = None
    connected: bool = False
    active: bool = True
    missed_pings: int = 0
    pong_since_ping: bool = True
    tasks: dict[tuple[str, str], Task] = field(default_factory=dict)  # (fw id, task id)
    executors: dict[tuple[str, str], Executor] = field(default_factory=dict)  # (fw, executor)
    offers: set[str] = field(default_factory=set)
    version: str = ""

    @property
    def hostname(self) -> str:
        return str(self.info.get("hostname", ""))

    @property
    def port(self) -> int:
        return int(self.info.get("port", 5051))

    def used(self) -> Resources:
        """Allocated to tasks and executors (each executor counted once)."""
        total = Resources()
        for t in self.tasks.values():
            if not t.terminal and t.state != "TASK_UNREACHABLE":
                total = total + t.resources
        for ex in self.executors.values():
            total = total + ex.resources
        return total

    def pid(self) -> str:
        return f"slave(1)@{self.hostname}:{self.port}"

    def to_v1_info(self) -> dict[str, Any]:
        out = dict(self.info)
        out["id"] = vid(self.id)
        out["resources"] = self.total.to_json()
        out["attributes"] = self.attributes
        return out

    def to_classic(self, offered: Resources) -> dict[str, Any]:
        used = self.used()
        return {
            "id": self.id,
            "pid": self.pid(),
            "hostname": self.hostname,
            "port": self.port,
            "registered_time": self.registered_time,
            "resources": scalar_summary(self.total),
            "used_resources": scalar_summary(used),
            "offered_resources": scalar_summary(offered),
            "unreserved_resources": scalar_summary(self.total.unreserved()),
            "attributes": classic_attributes(self.attributes),
            "active": self.active and self.connected,
            "version": self.version,
            "capabilities": [],
        }


@dataclass
class Framework:
    id: str
    info: dict[str, Any]  # v1 FrameworkInfo (with our id)
    roles: list[str]
    stream: EventStream | None = None
    stream_id: str | None = None
    connected: bool = False
    active: bool = False
    registered_time: float = field(default_factory=time.time)
    reregistered_time: float | None = None
    unregistered_time: float | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    completed_tasks: list[Task] = field(default_factory=list)
    offers: set[str] = field(default_factory=set)
    executors: dict[tuple[str, str], Executor] = field(default_factory=dict)  # (agent, executor)
    failover_handle: Any = None
    suppressed: bool = False

    @property
    def name(self) -> str:
        return str(self.info.get("name", ""))

    @property
    def failover_timeout(self) -> float:
        try:
            return max(0.0, float(self.info.get("failover_timeout", 0.0)))
        except (TypeError, ValueError):
            return 0.0

    @property
    def partition_aware(self) -> bool:
        caps = self.info.get("capabilities") or []
        return any(isinstance(c, dict) and c.get("type") == "PARTITION_AWARE" for c in caps)

    def used_by_role(self) -> dict[str, Resources]:
        """Allocated to its live tasks and its executors (each once), per role."""
        out: dict[str, Resources] = {}
        for t in self.tasks.values():
            if not t.terminal and t.state != "TASK_UNREACHABLE":
                out[t.role] = out.get(t.role, Resources()) + t.resources
        for ex in self.executors.values():
            out[ex.role] = out.get(ex.role, Resources()) + ex.resources
        return out

    def to_classic(self, offered: Resources) -> dict[str, Any]:
        used = Resources()
        for res in self.used_by_role().values():
            used = used + res
        return {
            "id": self.id,
            "name": self.name,
            "pid": "",
            "user": self.info.get("user", ""),
            "hostname": self.info.get("hostname", ""),
            "principal": self.info.get("principal", ""),
            "role": self.roles[0] if self.roles else "*",
            "roles": self.roles,
            "active": self.active,
            "connected": self.connected,
            "recovered": False,
            "failover_timeout": self.failover_timeout,
            "checkpoint": bool(self.info.get("checkpoint", False)),
            "capabilities": [
                c.get("type") for c in self.info.get("capabilities") or [] if isinstance(c, dict)
            ],
            "registered_time": self.registered_time,
            "reregistered_time": self.reregistered_time or self.registered_time,
            "unregistered_time": self.unregistered_time or 0,
            "resources": scalar_summary(used + offered),
            "used_resources": scalar_summary(used),
            "offered_resources": scalar_summary(offered),
            "tasks": [t.to_classic() for t in self.tasks.values()],
            "completed_tasks": [t.to_classic() for t in self.completed_tasks[-100:]],
            "unreachable_tasks": [],
            "offers": [],
            "executors": [ex.to_classic() for ex in self.executors.values()],
            "webui_url": self.info.get("webui_url", ""),
        }


def _classic_labels(labels: Any) -> dict[str, Any]:
    if isinstance(labels, dict) and isinstance(labels.get("labels"), list):
        return {"labels": labels["labels"]}
    return {}


def scalar_summary(res: Resources) -> dict[str, Any]:
    """Classic endpoint form: ``{"cpus": 1.0, "mem": 128.0, "disk": 0, "gpus": 0, "ports":
    "[31000-32000]"}`` (quantities summed over roles)."""
    out: dict[str, Any] = {"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0}
    for name, qty in res.quantities().items():
        if name == "ports":
            continue
        out[name] = qty
    ports = res.get_ranges("ports")
    if ports:
        out["ports"] = "[" + ",".join(f"{b}-{e}" for b, e in ports) + "]"
    return out


def classic_attributes(attrs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in attrs:
        name = a.get("name")
        if not isinstance(name, str):
            continue
        t = a.get("type")
        if t == "SCALAR":
            out[name] = a.get("scalar", {}).get("value")
        elif t == "TEXT":
            out[name] = a.get("text", {}).get("value")
        elif t == "RANGES":
            rs = a.get("ranges", {}).get("range", [])
            out[name] = "[" + ",".join(f"{r.get('begin')}-{r.get('end')}" for r in rs) + "]"
        elif t == "SET":
            out[name] = "{" + ",".join(a.get("set", {}).get("item", [])) + "}"
    return out
