"""Which runner takes a task: a custom executor, the Docker containerizer, or a process.

Mesos decides the same way: a ``TaskInfo`` with an ``executor`` runs under that
executor (which speaks the v1 executor HTTP API to the agent); a ``container`` of type
``DOCKER`` runs through the Docker Engine API; anything else is a command run as a
process (Mesos's command executor). Each runner owns the task's whole life on this agent
and never raises.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paddock.agent.daemon import Agent, Task

__all__ = ["task_kind", "task_runner"]


def task_kind(info: dict[str, Any]) -> str:
    """``"executor"``, ``"docker"`` or ``"process"`` for a TaskInfo."""
    if isinstance(info.get("executor"), dict):
        return "executor"
    container = info.get("container")
    if isinstance(container, dict) and container.get("type") == "DOCKER":
        return "docker"
    return "process"


def task_runner(agent: Agent, task: Task) -> Coroutine[Any, Any, None]:
    """The coroutine that runs ``task`` from launch to its terminal update."""
    kind = task_kind(task.info)
    if kind == "executor":
        from paddock.agent.custom_executor import run_executor_task

        return run_executor_task(agent, task)
    if kind == "docker":
        from paddock.agent.docker_containerizer import run_docker_task

        return run_docker_task(agent, task)
    from paddock.agent.launcher import run_task_process

    return run_task_process(agent, task)
