"""Which runner takes a task: a custom executor, the Docker containerizer, or a process.

Mesos decides the same way: a ``TaskInfo`` with an ``executor`` runs under that
executor (which speaks the v1 executor HTTP API to the agent); a ``container`` of type
``DOCKER`` runs through the Docker Engine API; anything else is a command run as a
process (Mesos's command executor). A ``MESOS`` container that names an image (Mesos's
unified containerizer) fails at once: running its command on the host without the image
would look like success. Each runner owns the task's whole life on this agent and never
raises.
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


def mesos_image(info: dict[str, Any]) -> str | None:
    """The image a ``MESOS`` container asks for (``mesos.image``), if any."""
    container = info.get("container")
    if not isinstance(container, dict) or container.get("type", "MESOS") != "MESOS":
        return None
    image = (container.get("mesos") or {}).get("image")
    if not isinstance(image, dict):
        return None
    spec = image.get("docker") or image.get("appc") or {}
    return str(spec.get("name") or "an image") if isinstance(spec, dict) else "an image"


async def _refuse_image(agent: Agent, task: Task, image: str) -> None:
    agent.report_status(
        task,
        "TASK_FAILED",
        source="SOURCE_AGENT",
        reason="REASON_CONTAINER_LAUNCH_FAILED",
        message=f"Container image {image} needs Mesos's unified containerizer, which "
        "this agent does not have; run the image as a DOCKER container",
    )


def task_runner(agent: Agent, task: Task) -> Coroutine[Any, Any, None]:
    """The coroutine that runs ``task`` from launch to its terminal update."""
    kind = task_kind(task.info)
    image = mesos_image(task.info) if kind == "process" else None
    if image is not None:
        return _refuse_image(agent, task, image)
    if kind == "executor":
        from paddock.agent.custom_executor import run_executor_task

        return run_executor_task(agent, task)
    if kind == "docker":
        from paddock.agent.docker_containerizer import run_docker_task

        return run_docker_task(agent, task)
    from paddock.agent.launcher import run_task_process

    return run_task_process(agent, task)
