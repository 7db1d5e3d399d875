"""Agent start-up for Docker container tasks (placeholder until implemented)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paddock.agent.daemon import Agent, Task

__all__ = ["recover_container_task", "remove_orphan_containers"]


async def recover_container_task(agent: Agent, task: Task, rec: dict[str, Any]) -> None:
    agent.report_status(
        task,
        "TASK_LOST",
        source="SOURCE_AGENT",
        reason="REASON_AGENT_RESTARTED",
        message="The agent restarted and does not reattach to containers yet",
    )


async def remove_orphan_containers(agent: Agent) -> None:
    return None
