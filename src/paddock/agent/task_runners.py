"""What every task runner (process, DOCKER container, custom executor) does the same way
around a task's life: never let an agent bug leave a task without an end, and watch
its health check.  The ends themselves are :mod:`paddock.agent.task_outcome`'s."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from paddock.agent.healthcheck import CommandRunner, HealthCheck, HealthChecker
from paddock.agent.task_outcome import HEALTH_CHECK, agent_error_end
from paddock.agent.tasks import task_environment

if TYPE_CHECKING:
    from paddock.agent.daemon import Agent, Task

__all__ = ["agent_task_environment", "end_on_error", "watch_health"]

log = logging.getLogger(__name__)


async def end_on_error(
    agent: Agent,
    task: Task,
    body: Awaitable[None],
    *,
    doing: str,
    failed: str,
    logger: logging.Logger,
) -> None:
    """Await ``body`` (a runner's work); if it raises, log it (``failed`` names what
    failed, in the runner's own ``logger``) and end the task ``TASK_FAILED`` with an
    "agent error while ``doing``" message, unless it has ended already.  Never raises
    (but for cancellation)."""
    try:
        await body
    except Exception as exc:  # a bug here must not leave the task without an end
        logger.exception("task %s: %s failed", task.task_id, failed)
        if not task.terminal:
            agent_error_end(doing, exc).report(agent, task)


async def watch_health(
    agent: Agent,
    task: Task,
    health: HealthCheck,
    env: dict[str, str],
    unhealthy: list[str],
    run_command: CommandRunner | None = None,
) -> None:
    """Report health changes as TASK_RUNNING updates; kill the task when the check
    fails, appending why to ``unhealthy`` (the runner then ends it with
    :func:`~paddock.agent.task_outcome.health_kill_end`).  ``run_command`` runs a
    COMMAND check elsewhere than on the host (inside a DOCKER task's container); a check
    it could not run (its engine unreachable) neither counts nor changes the health."""

    def changed(ok: bool, detail: str) -> None:
        if not task.kill_requested:
            agent.report_status(
                task, "TASK_RUNNING", reason=HEALTH_CHECK, message=detail, healthy=ok
            )

    def failed(detail: str) -> None:
        log.warning("task %s is unhealthy: %s; killing it", task.task_id, detail)
        unhealthy.append(detail)
        agent.kill_task(task)

    checker = HealthChecker(
        health, env, task.sandbox, changed, failed, run_command, name=f"task {task.task_id}"
    )
    await checker.run()


def agent_task_environment(
    agent: Agent, task: Task, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment this agent gives ``task`` (Mesos's, on top of ``base``: the
    agent's own environment for a process task, nothing for a container)."""
    return task_environment(
        task_info=task.info,
        framework_id=task.framework_id,
        agent_id=agent.agent_id or "",
        sandbox=task.sandbox,
        agent_endpoint=agent.endpoint,
        hostname=agent.config.hostname,
        base=base,
    )
