"""One run of a custom executor on the agent: its record, states, environment, and the
small helpers the executor manager (:mod:`paddock.agent.custom_executor`) and the HTTP
layer (:mod:`paddock.agent.executor_api`) share."""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paddock.agent.tasks import AdoptedProcess, TaskProcess
from paddock.master.streams import EventStream

if TYPE_CHECKING:
    from paddock.agent.daemon import Agent, Task

__all__ = [
    "EXECUTOR_REGISTRATION_TIMEOUT",
    "EXECUTOR_REREGISTRATION_TIMEOUT",
    "ExecutorRun",
    "duration_seconds",
    "executor_environment",
    "executor_id_of",
    "mesos_duration",
    "run_container_status",
]

EXECUTOR_REGISTRATION_TIMEOUT = 60.0
#: How long an executor found running after an agent restart has to re-subscribe
#: (Mesos's ``MAX_EXECUTOR_REREGISTRATION_TIMEOUT``: its default of 2 s is shorter than
#: the 2-15 s reconnection backoff of pymesos's driver).
EXECUTOR_REREGISTRATION_TIMEOUT = 15.0
#: Mesos's ``DEFAULT_EXECUTOR_SHUTDOWN_GRACE_PERIOD``.
DEFAULT_SHUTDOWN_GRACE = 5.0
#: Mesos's ``DEFAULT_EXECUTOR_HEARTBEAT_INTERVAL``.
HEARTBEAT_INTERVAL = 30 * 60.0
#: How long past a task's kill grace period the agent waits for the executor to end
#: the task before it shuts the executor down.
KILL_ESCALATION_SLACK = 5.0

ExecutorKey = tuple[str, str]  # (framework id, executor id)

# Executor run states, as Mesos's ``Executor::State`` (plus LAUNCHING: being spawned).
LAUNCHING = "LAUNCHING"
REGISTERING = "REGISTERING"
RUNNING = "RUNNING"
TERMINATING = "TERMINATING"
TERMINATED = "TERMINATED"


def executor_id_of(task_info: dict[str, Any]) -> str | None:
    ex = task_info.get("executor")
    if not isinstance(ex, dict):
        return None
    eid = ex.get("executor_id")
    value = eid.get("value") if isinstance(eid, dict) else None
    return value if isinstance(value, str) else None


def duration_seconds(value: Any) -> float | None:
    """A v1 ``DurationInfo`` (``{"nanoseconds": N}``) in seconds, or None."""
    if isinstance(value, dict):
        ns = value.get("nanoseconds")
        if isinstance(ns, int | float) and not isinstance(ns, bool) and ns >= 0:
            return float(ns) / 1e9
    return None


def mesos_duration(seconds: float) -> str:
    """Seconds as Mesos's ``stringify(Duration)`` writes them (``5secs``, ``500ms``)."""
    if seconds >= 1 or seconds == 0:
        return f"{seconds:g}secs"
    return f"{seconds * 1000:g}ms"


def executor_environment(
    *,
    executor_info: dict[str, Any],
    framework_id: str,
    agent_id: str,
    agent_endpoint: str,
    sandbox: Path,
    checkpoint: bool,
    shutdown_grace: float,
    hostname: str,
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """What Mesos's ``executorEnvironment`` gives an executor, then the command's own."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "MESOS_FRAMEWORK_ID": framework_id,
            "MESOS_EXECUTOR_ID": str(executor_info["executor_id"]["value"]),
            "MESOS_AGENT_ID": agent_id,
            "MESOS_SLAVE_ID": agent_id,
            "MESOS_AGENT_ENDPOINT": agent_endpoint,
            "MESOS_SLAVE_PID": f"slave(1)@{agent_endpoint}",
            "MESOS_DIRECTORY": str(sandbox),
            "MESOS_SANDBOX": str(sandbox),
            "MESOS_CHECKPOINT": "1" if checkpoint else "0",
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": mesos_duration(shutdown_grace),
            "MESOS_HTTP_COMMAND_EXECUTOR": "0",
            "HOST": hostname,
        }
    )
    if checkpoint:
        env["MESOS_RECOVERY_TIMEOUT"] = "15mins"
        env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = "2secs"
    command = executor_info.get("command")
    if isinstance(command, dict):
        for var in (command.get("environment") or {}).get("variables") or []:
            if isinstance(var, dict) and isinstance(var.get("name"), str):
                value = var.get("value")
                if isinstance(value, str):
                    env[var["name"]] = value
    return env


@dataclass
class ExecutorRun:
    """One run of one executor on this agent."""

    framework_id: str
    executor_id: str
    info: dict[str, Any]
    run_id: str
    sandbox: Path
    shutdown_grace: float
    state: str = LAUNCHING
    process: TaskProcess | AdoptedProcess | None = None
    #: Tasks not yet delivered (the executor has not subscribed yet), in launch order.
    queued: OrderedDict[str, Task] = field(default_factory=OrderedDict)
    #: Tasks sent to the executor in a LAUNCH event and not ended yet.
    launched: dict[str, Task] = field(default_factory=dict)
    stream: EventStream | None = None
    ever_sent_task: bool = False
    #: (state, reason, message) for the tasks left when the process ends.
    termination: tuple[str, str, str] | None = None
    #: Updates the framework acknowledged (uuid -> task id), to answer a resent one.
    acked: OrderedDict[str, str] = field(default_factory=OrderedDict)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    exit_message: str = ""
    timers: set[asyncio.Task[Any]] = field(default_factory=set)
    subscriptions: int = 0

    @property
    def key(self) -> ExecutorKey:
        return (self.framework_id, self.executor_id)

    @property
    def container_id(self) -> str:
        return self.run_id

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def tasks(self) -> list[Task]:
        return [*self.queued.values(), *self.launched.values()]

    def send(self, event: dict[str, Any]) -> bool:
        return self.stream is not None and self.stream.send(event)


def run_container_status(run: ExecutorRun | None, given: Any = None) -> dict[str, Any] | None:
    """``container_status`` for an update of a task of ``run``: ``container_id`` is the
    run's id (as Mesos puts the executor's ContainerID there), so the master learns which
    run of the executor holds the task (``docs/agent-protocol.md``, executor runs); an
    executor's own ``container_status`` (``given``) is kept otherwise."""
    out = dict(given) if isinstance(given, dict) else {}
    if run is not None:
        out["container_id"] = {"value": run.container_id}
    return out or None


def partition_aware(agent: Agent, task: Task) -> bool:
    caps = agent.frameworks.get(task.framework_id, {}).get("capabilities") or []
    return any(isinstance(c, dict) and c.get("type") == "PARTITION_AWARE" for c in caps)
