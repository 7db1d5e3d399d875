"""One task's life on the agent: fetch, launch, (health checks), wait, report.

``TASK_STARTING`` -> fetch ``command.uris`` -> cgroups -> spawn (by the task's own
supervisor, forked by the agent's zygote: :mod:`paddock.agent.supervisor`) ->
``TASK_RUNNING`` -> exit (the supervisor's outcome file) -> ``TASK_FINISHED`` /
``TASK_FAILED`` / ``TASK_KILLED``.  Every step that can fail
ends the task with a terminal update naming why; a kill requested at any point is
honoured at the next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from pathlib import Path

from paddock.agent.daemon import Agent, Task
from paddock.agent.fetcher import FetchError, fetch_uris
from paddock.agent.healthcheck import parse_health_check
from paddock.agent.supervised import SupervisedTask
from paddock.agent.task_outcome import (
    EXECUTOR_TERMINATED,
    SOURCE_AGENT,
    TaskEnd,
    command_end,
    health_kill_end,
)
from paddock.agent.task_runners import agent_task_environment, end_on_error, watch_health
from paddock.agent.task_user import TaskUserError, check_runner, resolve_task_user
from paddock.agent.tasks import (
    AdoptedProcess,
    LaunchError,
    command_spec,
    task_scalar,
)
from paddock.agent.zygote import Zygote

log = logging.getLogger(__name__)

__all__ = [
    "close_zygote",
    "outcome_path",
    "report_outcome",
    "run_task_process",
    "watch_adopted",
    "watch_supervised",
    "zygote_for",
]

_zygotes: weakref.WeakKeyDictionary[Agent, Zygote] = weakref.WeakKeyDictionary()


def zygote_for(agent: Agent) -> Zygote:
    """The agent's task zygote (started on first use, restarted when it died)."""
    zygote = _zygotes.get(agent)
    if zygote is None:
        zygote = _zygotes[agent] = Zygote()
    return zygote


def close_zygote(agent: Agent) -> None:
    """Stop the agent's zygote (at shutdown); supervisors and tasks are not affected."""
    zygote = _zygotes.pop(agent, None)
    if zygote is not None:
        zygote.close()


def outcome_path(agent: Agent, task: Task) -> Path:
    """Where the task's supervisor records how it ended (next to its checkpoint)."""
    return agent.store.task_dir(task.framework_id, task.task_id) / f"outcome-{task.run_id}.json"


async def run_task_process(agent: Agent, task: Task) -> None:
    """The task's whole life on this agent; never raises (a bug ends the task FAILED)."""
    await end_on_error(
        agent, task, _run(agent, task), doing="running the task", failed="runner", logger=log
    )


async def _run(agent: Agent, task: Task) -> None:
    if task.kill_requested:
        agent.report_status(task, "TASK_KILLED", message="Killed before it was launched")
        return
    agent.report_status(task, "TASK_STARTING")
    try:  # command.user (Mesos: --switch_user), checked before anything runs
        user = resolve_task_user(task.info, switch_user=agent.config.switch_user)
    except TaskUserError as exc:
        agent.report_status(
            task,
            "TASK_FAILED",
            source="SOURCE_AGENT",
            reason="REASON_CONTAINER_LAUNCH_FAILED",
            message=str(exc),
        )
        return
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
        env = agent_task_environment(agent, task)
        cgroup = None
        if agent.cgroups.available:
            cgroup = await asyncio.to_thread(
                agent.cgroups.create,
                f"{task.framework_id}.{task.task_id}.{task.run_id}",
                task_scalar(task.info, "cpus"),
                task_scalar(task.info, "mem"),
            )
        proc = SupervisedTask(
            spec, task.sandbox, env, outcome_path(agent, task), cgroup, zygote_for(agent)
        )
        proc.user = user
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
    agent.checkpoint_task(task, **proc.checkpoint_fields())
    checker: asyncio.Task[None] | None = None
    unhealthy: list[str] = []
    if task.kill_requested:
        agent.background(proc.kill(task.kill_grace or 0))
    else:
        agent.report_status(task, "TASK_RUNNING")
        if health is not None:
            as_user = check_runner(user, env, task.sandbox)
            checker = asyncio.create_task(
                watch_health(agent, task, health, env, unhealthy, as_user)
            )
    try:
        await proc.wait()
    finally:
        if checker is not None:
            checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checker
    if unhealthy:
        health_kill_end(unhealthy[0]).report(agent, task)
        return
    report_outcome(agent, task, proc)


def report_outcome(agent: Agent, task: Task, proc: SupervisedTask) -> None:
    """The terminal update for a supervised task whose supervisor has ended."""
    if task.terminal:
        return
    outcome = proc.outcome
    problem = outcome.problem if outcome is not None else None
    command_end(
        proc.returncode,
        killed=proc.kill_requested,
        oom=proc.oom_killed,
        memory=outcome.memory if outcome is not None else None,
        unknown=TaskEnd(
            "TASK_FAILED",
            f"The task's outcome is unknown: {problem or 'no outcome'}",
            EXECUTOR_TERMINATED,
            SOURCE_AGENT,
        ),
    ).report(agent, task)


async def watch_supervised(agent: Agent, task: Task, proc: SupervisedTask) -> None:
    """Follow a task an earlier run of the agent launched (its supervisor is still
    there, or has already recorded the outcome) to its end."""

    async def follow() -> None:
        await proc.wait()
        report_outcome(agent, task, proc)

    await end_on_error(
        agent,
        task,
        follow(),
        doing="watching the task",
        failed="watching the supervised task",
        logger=log,
    )


#: The end of an adopted process that no kill or OOM explains: not our child, so its
#: exit status is unknown.
ADOPTED_EXIT_UNKNOWN = TaskEnd(
    "TASK_FAILED",
    "The command exited after the agent restarted and reattached to it; its exit status is unknown",
    EXECUTOR_TERMINATED,
)


async def watch_adopted(agent: Agent, task: Task, proc: AdoptedProcess) -> None:
    """Follow a task whose process an earlier run of the agent started, to its end."""

    async def follow() -> None:
        await proc.wait()
        if task.terminal:
            return
        command_end(
            None,
            killed=proc.kill_requested,
            oom=proc.oom_killed,
            unknown=ADOPTED_EXIT_UNKNOWN,
        ).report(agent, task)

    await end_on_error(
        agent,
        task,
        follow(),
        doing="watching the task",
        failed="watching the adopted process",
        logger=log,
    )
