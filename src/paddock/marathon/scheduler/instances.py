"""What the scheduler knows about each task: task states, the immutable rendered task,
and the per-instance and per-deployment bookkeeping of the core."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from paddock.marathon.models import Task
from paddock.marathon.planner import DeploymentPlan

TERMINAL = frozenset(
    {
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_LOST",
        "TASK_ERROR",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
        "TASK_UNKNOWN",
    }
)
FAILURES = frozenset(TERMINAL - {"TASK_KILLED", "TASK_FINISHED"})
BACKOFF_STATES = frozenset({"TASK_FAILED", "TASK_FINISHED", "TASK_ERROR"})


class TrackedTask(Task):
    """A Task that renders its JSON once: the core never mutates one, it replaces it
    (:func:`changed_task`), so the rendering stays valid. ``GET /v2/apps?embed=apps.tasks``
    over 10,000 tasks would otherwise spend most of its time in pydantic serialisation."""

    __slots__ = ("_encoded", "_rendered")  # not fields, not copied by model_copy

    def to_json(self) -> dict[str, Any]:
        try:
            rendered: dict[str, Any] = object.__getattribute__(self, "_rendered")
        except AttributeError:
            rendered = super().to_json()
            object.__setattr__(self, "_rendered", rendered)
        return dict(rendered)  # a shallow copy: callers may add keys

    def json_bytes(self) -> bytes:
        try:
            encoded: bytes = object.__getattribute__(self, "_encoded")
        except AttributeError:
            encoded = orjson.dumps(self.to_json())
            object.__setattr__(self, "_encoded", encoded)
        return encoded


def tracked(task: Task) -> TrackedTask:
    if isinstance(task, TrackedTask):
        return task
    return TrackedTask.model_construct(_fields_set=task.model_fields_set, **dict(task))


def changed_task(task: Task, **changes: Any) -> TrackedTask:
    return tracked(task).model_copy(update=changes)


@dataclass
class Instance:
    """One task this marathon launched (or learned from the store)."""

    task: Task
    agent_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    killing: bool = False
    kill_sent: float = 0.0
    mesos_healthy: bool | None = None  # from status updates (agent-run checks)
    started_mono: float | None = None
    unreachable_since: float | None = None
    launched_mono: float = 0.0
    status_stamp: float = 0.0  # agent timestamp of the last status update applied

    @property
    def unreachable(self) -> bool:
        """Its agent is known to be unreachable (also when loaded from the store so)."""
        return self.unreachable_since is not None or self.task.state == "TASK_UNREACHABLE"


@dataclass
class PlanRun:
    plan: DeploymentPlan
    step: int = 0  # 0-based index of the current step
    announced: int = -1  # last step index announced through the hooks
