"""One task's life on the agent: fetch, launch, (health checks), wait, report.

``TASK_STARTING`` -> fetch ``command.uris`` -> cgroups -> spawn -> ``TASK_RUNNING`` ->
exit -> ``TASK_FINISHED`` / ``TASK_FAILED`` / ``TASK_KILLED``.  Every step that can fail
ends the task with a terminal update naming why; a kill requested at any point is
honoured at the next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from paddock.agent.daemon import Agent, Task
from paddock.agent.fetcher import FetchError, fetch_uris
from paddock.agent.healthcheck import HealthCheck, HealthChecker, parse_health_check
from paddock.agent.recovery_util import proc_start_ticks
from paddock.agent.tasks import (
    AdoptedProcess,
    LaunchError,
    TaskProcess,
    command_spec,
    describe_exit,
    task_environment,
    task_scalar,
)

log = logging.getLogger(__name__)

__all__ = ["run_task_process", "watch_adopted"]


async def _watch_health(
    agent: Agent, task: Task, health: HealthCheck, env: dict[str, str], unhealthy: list[str]
) -> None:
    """Report health changes as TASK_RUNNING updates; kill the task when it fails."""

    def changed(ok: bool, detail: str) -> None:
        if not task.kill_requested:
            agent.report_status(
                task,
                "TASK_RUNNING",
                reason="REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
                message=detail,
                healthy=ok,
            )

    def failed(detail: str) -> None:
        log.warning("task %s is unhealthy: %s; killing it", task.task_id, detail)
        unhealthy.append(detail)
        agent.kill_task(task)

    await HealthChecker(health, env, task.sandbox, changed, failed).run()


async def run_task_process(agent: Agent, task: Task) -> None:
    """The task's whole life on this agent; never raises (a bug ends the task FAILED)."""
    try:
        await _run(agent, task)
    except Exception as exc:  # a bug here must not leave the task without an end
        log.exception("task %s: runner failed", task.task_id)
        if not task.terminal:
            agent.report_status(
                task,
                "TASK_FAILED",
                source="SOURCE_AGENT",
                reason="REASON_EXECUTOR_TERMINATED",
                message=f"agent error while running the task: {exc}",
            )


async def _run(agent: Agent, task: Task) -> None:
    if task.kill_requested:
        agent.report_status(task, "TASK_KILLED", message="Killed before it was launched")
        return
    agent.report_status(task, "TASK_STARTING")
    command = task.info.get("command")
    if isinstance(command, dict) and command.get("uris"):
        try:
            await fetch_uris(command["uris"], task.sandbox)
        except FetchError as exc:
            agent.report_status(
                task,
                "TASK_FAILED",
                reason="REASON_CONTAINER_LAUNCH_FAILED",
                message=f"Failed to fetch URIs: {exc}",
            )
            return
        if task.kill_requested:
            agent.report_status(task, "TASK_KILLED", message="Killed while fetching")
            return
    try:
        health = parse_health_check(task.info.get("health_check"))
    except ValueError as exc:
        agent.report_status(task, "TASK_ERROR", reason="REASON_TASK_INVALID", message=str(exc))
        return
    try:
        spec = command_spec(task.info)
        env = task_environment(
            task_info=task.info,
            framework_id=task.framework_id,
            agent_id=agent.agent_id or "",
            sandbox=task.sandbox,
            agent_endpoint=agent.endpoint,
            hostname=agent.config.hostname,
        )
        cgroup = None
        if agent.cgroups.available:
            cgroup = await asyncio.to_thread(
                agent.cgroups.create,
                f"{task.framework_id}.{task.task_id}.{task.run_id}",
                task_scalar(task.info, "cpus"),
                task_scalar(task.info, "mem"),
            )
        proc = TaskProcess(spec, task.sandbox, env, cgroup)
        task.process = proc
        await proc.start()
    except LaunchError as exc:
        agent.report_status(
            task,
            "TASK_FAILED",
            reason="REASON_COMMAND_EXECUTOR_FAILED",
            message=str(exc),
        )
        if task.process is not None and task.process.cgroup is not None:
            await asyncio.to_thread(task.process.cgroup.destroy)
        return
    task.pid = proc.pid
    assert task.pid is not None
    agent.checkpoint_task(task, pid=task.pid, start_ticks=proc_start_ticks(task.pid))
    checker: asyncio.Task[None] | None = None
    unhealthy: list[str] = []
    if task.kill_requested:
        agent.background(proc.kill(task.kill_grace or 0))
    else:
        agent.report_status(task, "TASK_RUNNING")
        if health is not None:
            checker = asyncio.create_task(_watch_health(agent, task, health, env, unhealthy))
    try:
        rc = await proc.wait()
    finally:
        if checker is not None:
            checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checker
    if unhealthy:
        agent.report_status(
            task,
            "TASK_KILLED",
            reason="REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
            message=f"Task killed after {unhealthy[0]}",
            healthy=False,
        )
        return
    oom = proc.oom_killed
    outcome = describe_exit(rc, killed=proc.kill_requested and not oom, oom=oom)
    source = "SOURCE_AGENT" if outcome.reason == "REASON_CONTAINER_LIMITATION_MEMORY" else None
    agent.report_status(
        task,
        outcome.state,
        source=source or "SOURCE_EXECUTOR",
        reason=outcome.reason,
        message=outcome.message,
    )


async def watch_adopted(agent: Agent, task: Task, proc: AdoptedProcess) -> None:
    """Follow a task whose process an earlier run of the agent started, to its end."""
    try:
        await proc.wait()
        if task.terminal:
            return
        if proc.oom_killed:
            outcome = describe_exit(-9, killed=False, oom=True)
            agent.report_status(
                task,
                outcome.state,
                source="SOURCE_AGENT",
                reason=outcome.reason,
                message=outcome.message,
            )
        elif proc.kill_requested:
            agent.report_status(task, "TASK_KILLED", message="Command terminated by a kill")
        else:
            agent.report_status(
                task,
                "TASK_FAILED",
                reason="REASON_EXECUTOR_TERMINATED",
                message=(
                    "The command exited after the agent restarted and reattached to it; "
                    "its exit status is unknown"
                ),
            )
    except Exception as exc:
        log.exception("task %s: watching the adopted process failed", task.task_id)
        if not task.terminal:
            agent.report_status(
                task,
                "TASK_FAILED",
                source="SOURCE_AGENT",
                reason="REASON_EXECUTOR_TERMINATED",
                message=f"agent error while watching the task: {exc}",
            )
