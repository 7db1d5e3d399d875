"""Placeholder: until this runner exists, such tasks run as plain processes (the old
behaviour), so nothing that worked before breaks."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paddock.agent.daemon import Agent, Task

__all__ = ["run_executor_task"]


async def run_executor_task(agent: Agent, task: Task) -> None:
    from paddock.agent.launcher import run_task_process

    await run_task_process(agent, task)
