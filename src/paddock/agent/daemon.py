"""The agent's state and behaviour: tasks, frameworks, status updates, master events.

:class:`Agent` owns everything the agent knows.  The master connection
(:mod:`paddock.agent.master_link`) hands it events and carries the calls it makes; the
HTTP API (:mod:`paddock.agent.http_api`) reads it.  Durable state lives under the work
dir (:mod:`paddock.agent.checkpoint`): the agent id, each live task's TaskInfo and run
(pid, sandbox), and each task's status update stream.

Task life: ``RUN_TASK`` -> ``TASK_STAGING`` (checkpointed) -> ``TASK_STARTING`` ->
process spawned -> ``TASK_RUNNING`` -> exit -> ``TASK_FINISHED``/``TASK_FAILED``/
``TASK_KILLED``.  A task leaves the agent's live set once its terminal update is
acknowledged; it is then kept (in memory) among the completed tasks for ``/state``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import uuid as uuidlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paddock.agent.cgroups import CgroupManager
from paddock.agent.checkpoint import CheckpointStore, validate_id
from paddock.agent.config import AgentConfig
from paddock.agent.custom_executor import ExecutorManager, executor_id_of
from paddock.agent.gc import SandboxGC
from paddock.agent.status_updates import (
    TERMINAL_STATES,
    FileUpdateLog,
    StatusUpdateManager,
    TaskKey,
)
from paddock.agent.supervised import SupervisedTask
from paddock.agent.tasks import AdoptedProcess, TaskProcess

log = logging.getLogger(__name__)

__all__ = ["Agent", "Task"]

MAX_COMPLETED_TASKS = 1000


def new_uuid() -> str:
    return base64.b64encode(uuidlib.uuid4().bytes).decode()


@dataclass
class Task:
    framework_id: str
    task_id: str
    info: dict[str, Any]
    run_id: str
    sandbox: Path
    state: str = "TASK_STAGING"
    statuses: list[dict[str, Any]] = field(default_factory=list)
    process: SupervisedTask | TaskProcess | AdoptedProcess | None = None
    runner: asyncio.Task[None] | None = None
    pid: int | None = None
    kill_requested: bool = False
    kill_grace: float | None = None

    @property
    def key(self) -> TaskKey:
        return (self.framework_id, self.task_id)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def executor_id(self) -> str:
        """The ExecutorInfo's id for a custom executor's task; else the task id (Mesos's
        command executor is named after its task)."""
        return executor_id_of(self.info) or self.task_id


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.store = CheckpointStore(config.work_dir)
        self.updates = StatusUpdateManager(
            FileUpdateLog(self.store.updates_file, self.store.remove_task, self.store.deferred),
            retry_min=config.status_retry_min,
            retry_max=config.status_retry_max,
        )
        self.cgroups = CgroupManager(config.cgroups_root)
        self.gc = SandboxGC(config.work_dir, config.gc_delay, self._sandbox_is_live)
        self.agent_id: str | None = None
        self.frameworks: dict[str, dict[str, Any]] = {}
        self.tasks: dict[TaskKey, Task] = {}
        self.completed: deque[Task] = deque(maxlen=MAX_COMPLETED_TASKS)
        self.start_time = time.time()
        self.registered = False
        self.master: tuple[str, int] | None = None
        self.master_info: dict[str, Any] | None = None
        self.ping_interval = 15.0
        #: Sends one call to the master if connected (installed by the master link).
        self.send_call: Callable[[dict[str, Any]], None] = lambda call: None
        #: Wakes the retry timer (installed by the master link).
        self.wake_retries: Callable[[], None] = lambda: None
        self.counters: dict[str, int] = {
            "tasks_launched": 0,
            "tasks_finished": 0,
            "tasks_failed": 0,
            "tasks_killed": 0,
            "tasks_lost": 0,
            "tasks_error": 0,
            "registrations": 0,
            "events": 0,
            "invalid_events": 0,
            "pings": 0,
        }
        self._background: set[asyncio.Task[Any]] = set()
        #: Custom executors (``POST /api/v1/executor``), see ``custom_executor``.
        self.executors = ExecutorManager(self)

    def _sandbox_is_live(self, sandbox: Path) -> bool:
        return any(t.sandbox == sandbox for t in self.tasks.values())

    @property
    def endpoint(self) -> str:
        return f"{self.config.ip}:{self.config.port}"

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    # ---------------------------------------------------------------- recovery
    async def recover(self) -> None:
        """Read the checkpoint (see :mod:`paddock.agent.recovery`)."""
        from paddock.agent.recovery import recover_agent

        await recover_agent(self)
        self.executors.recovered()  # executors that survived get to re-subscribe

    def save_agent(self) -> None:
        self.store.save_agent(
            {
                "agent_id": self.agent_id,
                "hostname": self.config.hostname,
                "port": self.config.port,
                "saved_at": time.time(),
            }
        )

    # ---------------------------------------------------------------- status updates
    def report_status(
        self,
        task: Task,
        state: str,
        *,
        source: str = "SOURCE_EXECUTOR",
        reason: str | None = None,
        message: str | None = None,
        healthy: bool | None = None,
        container_status: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Make a reliable update: record it on the task, checkpoint, send if head."""
        status: dict[str, Any] = {
            "task_id": {"value": task.task_id},
            "state": state,
            "source": source,
            "timestamp": time.time(),
            "uuid": new_uuid(),
            "agent_id": {"value": self.agent_id or ""},
            "executor_id": {"value": task.executor_id},
        }
        if reason:
            status["reason"] = reason
        if message:
            status["message"] = message
        if healthy is not None:
            status["healthy"] = healthy
        if container_status:
            status["container_status"] = container_status
        self.record_status(task, status)
        return status

    def record_status(self, task: Task, status: dict[str, Any]) -> None:
        """Put a complete TaskStatus (with its uuid) into the task's reliable stream."""
        state = status["state"]
        message = status.get("message")
        task.state = state
        task.statuses.append(status)
        counter = {
            "TASK_FINISHED": "tasks_finished",
            "TASK_FAILED": "tasks_failed",
            "TASK_KILLED": "tasks_killed",
            "TASK_LOST": "tasks_lost",
            "TASK_ERROR": "tasks_error",
        }.get(state)
        if counter:
            self.counters[counter] += 1
        log.info("task %s of %s: %s %s", task.task_id, task.framework_id, state, message or "")
        for s in self.updates.update(task.key, status, self.now()):
            self._send_update(task.framework_id, s)
        self.wake_retries()

    def _send_update(self, framework_id: str, status: dict[str, Any]) -> None:
        self.send_call(
            {
                "type": "UPDATE",
                "update": {"framework_id": {"value": framework_id}, "status": status},
            }
        )

    def send_due_updates(self) -> None:
        """Called by the retry timer."""
        for key, status in self.updates.due(self.now()):
            self._send_update(key[0], status)

    def _unreliable_status(
        self,
        framework_id: str,
        task_id: str,
        state: str,
        reason: str,
        message: str,
    ) -> None:
        """A status without uuid (reconciliation, kill of an unknown task): not
        checkpointed, not retried, needs no acknowledgement."""
        status = {
            "task_id": {"value": task_id},
            "state": state,
            "source": "SOURCE_AGENT",
            "reason": reason,
            "message": message,
            "timestamp": time.time(),
            "agent_id": {"value": self.agent_id or ""},
        }
        self._send_update(framework_id, status)

    # ---------------------------------------------------------------- connection
    def on_registered(self, body: dict[str, Any]) -> None:
        agent_id = (body.get("agent_id") or {}).get("value")
        if not isinstance(agent_id, str) or not agent_id:
            log.error("REGISTERED without an agent id: %r", body)
            return
        if self.agent_id and agent_id != self.agent_id:
            # The master did not accept our old identity (e.g. we were marked gone):
            # our tasks are no longer known to it, so they cannot go on running here.
            log.warning("master gave a new agent id %s (was %s)", agent_id, self.agent_id)
            self.executors.shutdown_every("the master does not know this agent any more")
            for task in list(self.tasks.values()):
                if not task.terminal:
                    self.kill_task(task, grace=0)
                self.updates.remove(task.key)
                self.tasks.pop(task.key, None)
        if agent_id != self.agent_id:
            self.agent_id = agent_id
            self.save_agent()
        self.master_info = body.get("master_info")
        interval = body.get("ping_interval_seconds")
        if isinstance(interval, int | float) and interval > 0:
            self.ping_interval = float(interval)
        self.registered = True
        self.counters["registrations"] += 1
        log.info("registered with master %s as %s", self.master, agent_id)
        for key, status in self.updates.connected(self.now()):
            self._send_update(key[0], status)
        self.wake_retries()

    def on_disconnected(self) -> None:
        self.registered = False
        self.updates.disconnected()

    def handle_event(self, event: Any) -> bool:
        """Apply one master event; False when it ends the stream (ERROR)."""
        self.counters["events"] += 1
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            self.counters["invalid_events"] += 1
            log.warning("ignoring malformed event %r", event)
            return True
        kind = event["type"]
        body = event.get(kind.lower()) or {}
        if not isinstance(body, dict):
            body = {}
        try:
            if kind == "REGISTERED":
                self.on_registered(body)
            elif kind == "PING":
                self.counters["pings"] += 1
                self.send_call({"type": "PONG", "pong": {}})
            elif kind == "RUN_TASK":
                self.run_task(body.get("framework") or {}, body.get("task") or {})
            elif kind == "KILL_TASK":
                self.on_kill_task(body)
            elif kind == "ACKNOWLEDGE":
                self.on_acknowledge(body)
            elif kind == "SHUTDOWN_FRAMEWORK":
                fw = (body.get("framework_id") or {}).get("value")
                self.shutdown_framework(str(fw))
            elif kind == "FRAMEWORK_MESSAGE":
                self.executors.framework_message(body)
            elif kind == "RECONCILE":
                self.reconcile(body.get("tasks") or [])
            elif kind == "ERROR":
                log.error("master error: %s", body.get("message", body))
                return False
            else:
                self.counters["invalid_events"] += 1
                log.warning("ignoring unknown event type %s", kind)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.counters["invalid_events"] += 1
            log.warning("ignoring bad %s event: %s", kind, exc)
        return True

    # ---------------------------------------------------------------- events
    def run_task(self, framework: dict[str, Any], info: dict[str, Any]) -> None:
        fw_id = (framework.get("id") or {}).get("value")
        task_id = (info.get("task_id") or {}).get("value")
        try:
            validate_id(fw_id, "framework id")
            validate_id(task_id, "task id")
        except ValueError as exc:
            log.warning("refusing RUN_TASK: %s", exc)
            if isinstance(fw_id, str) and isinstance(task_id, str):
                self._unreliable_status(
                    fw_id, task_id, "TASK_ERROR", "REASON_TASK_INVALID", str(exc)
                )
            return
        assert isinstance(fw_id, str) and isinstance(task_id, str)
        key = (fw_id, task_id)
        existing = self.tasks.get(key)
        if existing is not None:
            log.warning("ignoring RUN_TASK for task %s: already known here", task_id)
            return
        if self.updates.streams.get(key) is not None:
            self.updates.remove(key)  # an old finished stream of a reused id
        self.frameworks[fw_id] = framework
        run_id = str(uuidlib.uuid4())
        sandbox = (
            self.config.work_dir
            / "slaves"
            / (self.agent_id or "unregistered")
            / "frameworks"
            / fw_id
            / "executors"
            / task_id
            / "runs"
            / run_id
        )
        task = Task(fw_id, task_id, info, run_id, sandbox)
        self.tasks[key] = task
        self.counters["tasks_launched"] += 1
        self.checkpoint_task(task)
        from paddock.agent.containerizers import task_runner

        task.runner = asyncio.create_task(task_runner(self, task), name=f"task-{task_id}")

    def checkpoint_task(self, task: Task, **extra: Any) -> None:
        record = {
            "framework": self.frameworks.get(task.framework_id, {}),
            "task": task.info,
            "run_id": task.run_id,
            "sandbox": str(task.sandbox),
            **extra,
        }
        self.store.save_task(task.framework_id, task.task_id, record)

    def background(self, coro: Any) -> None:
        """Run ``coro`` without waiting for it (kept referenced until it ends)."""
        t = asyncio.ensure_future(coro)
        self._background.add(t)
        t.add_done_callback(self._background.discard)

    def grace_for(self, task: Task, kill_policy: Any = None) -> float:
        for policy in (kill_policy, task.info.get("kill_policy")):
            if isinstance(policy, dict):
                ns = (policy.get("grace_period") or {}).get("nanoseconds")
                if isinstance(ns, int | float) and ns >= 0:
                    return float(ns) / 1e9
        return self.config.default_kill_grace

    def kill_task(self, task: Task, grace: float | None = None) -> None:
        if task.terminal:
            return
        first = not task.kill_requested
        task.kill_requested = True
        task.kill_grace = self.grace_for(task) if grace is None else grace
        if self.executors.owns(task):
            self.executors.kill(task, task.kill_grace)
            return
        if task.process is not None and task.process.process is not None:
            if first and task.state == "TASK_RUNNING" and self._wants_killing_state(task):
                self.report_status(task, "TASK_KILLING", message="Killing the task")
            self.background(task.process.kill(task.kill_grace))
        # else: the runner sees kill_requested before or right after spawning.

    def _wants_killing_state(self, task: Task) -> bool:
        """Frameworks opt in to TASK_KILLING with the TASK_KILLING_STATE capability."""
        caps = self.frameworks.get(task.framework_id, {}).get("capabilities") or []
        return any(isinstance(c, dict) and c.get("type") == "TASK_KILLING_STATE" for c in caps)

    def on_kill_task(self, body: dict[str, Any]) -> None:
        fw_id = str((body.get("framework_id") or {}).get("value"))
        task_id = str((body.get("task_id") or {}).get("value"))
        task = self.tasks.get((fw_id, task_id))
        if task is None:
            self._unreliable_status(
                fw_id,
                task_id,
                "TASK_LOST",
                "REASON_TASK_UNKNOWN",
                "Attempted to kill a task unknown to the agent",
            )
            return
        grace = self.grace_for(task, body.get("kill_policy"))
        self.kill_task(task, grace)

    def on_acknowledge(self, body: dict[str, Any]) -> None:
        fw_id = str((body.get("framework_id") or {}).get("value"))
        task_id = str((body.get("task_id") or {}).get("value"))
        uuid = body.get("uuid")
        if not isinstance(uuid, str):
            raise ValueError("ACKNOWLEDGE without a uuid")
        key = (fw_id, task_id)
        valid, to_send = self.updates.acknowledge(key, uuid, self.now())
        if not valid:
            log.info("ignoring acknowledgement %s for task %s (not the head)", uuid, task_id)
            return
        if key in self.tasks:
            self.executors.acknowledged(self.tasks[key], uuid)
        for status in to_send:
            self._send_update(fw_id, status)
        self.wake_retries()
        if self.updates.is_finished(key):
            task = self.tasks.pop(key, None)
            self.updates.remove(key)
            if task is not None:
                task.process = None
                self.completed.append(task)
                self.gc.schedule(task.sandbox)

    def shutdown_framework(self, fw_id: str) -> None:
        log.info("shutting down framework %s", fw_id)
        self.executors.shutdown_framework(fw_id)
        for task in list(self.tasks.values()):
            if task.framework_id == fw_id and not self.executors.owns(task):
                self.kill_task(task)

    def reconcile(self, wanted: list[Any]) -> None:
        """Re-send the latest state of the named tasks (all live ones when empty)."""
        pairs: list[TaskKey] = []
        if not wanted:
            pairs = list(self.tasks)
        for item in wanted:
            if isinstance(item, dict):
                fw = str((item.get("framework_id") or {}).get("value"))
                tid = str((item.get("task_id") or {}).get("value"))
                pairs.append((fw, tid))
        for fw, tid in pairs:
            task = self.tasks.get((fw, tid))
            if task is None:
                task = next(
                    (t for t in reversed(self.completed) if t.key == (fw, tid)),
                    None,
                )
            if task is None:
                self._unreliable_status(
                    fw, tid, "TASK_LOST", "REASON_RECONCILIATION", "Task is unknown to the agent"
                )
                continue
            latest = task.statuses[-1] if task.statuses else {}
            status = {
                "task_id": {"value": tid},
                "state": task.state,
                "source": "SOURCE_AGENT",
                "reason": "REASON_RECONCILIATION",
                "message": latest.get("message", "Reconciliation: latest task state"),
                "timestamp": time.time(),
                "agent_id": {"value": self.agent_id or ""},
                "executor_id": {"value": task.executor_id},
            }
            self._send_update(fw, status)

    # ---------------------------------------------------------------- shutdown
    async def kill_all(self, timeout: float = 10.0) -> None:
        """Kill every live task and wait (bounded) for their runners to report the end."""
        runners = []
        executors = asyncio.ensure_future(self.executors.shutdown_all(timeout))
        for task in self.tasks.values():
            if self.executors.owns(task):
                if task.runner is not None and not task.runner.done():
                    runners.append(task.runner)
                continue
            if not task.terminal:
                self.kill_task(task)
            if task.runner is not None and not task.runner.done():
                runners.append(task.runner)
        if runners:
            await asyncio.wait(runners, timeout=timeout)
        await executors

    def forget_identity(self) -> None:
        """After UNREGISTER: the next start registers as a new agent."""
        for key in list(self.updates.streams):
            self.updates.remove(key)
        self.tasks.clear()
        with contextlib.suppress(FileNotFoundError):
            self.store.agent_file.unlink()
        self.agent_id = None
