"""How a task's life ends: the one place that turns "how it ended" into its terminal
TaskStatus (state, reason, message, source), for every kind of task runner.

Why one place: a process task (:mod:`paddock.agent.launcher`, through its supervisor
or adopted after an agent restart), a DOCKER container
(:mod:`paddock.agent.docker_containerizer`) and the tasks of a custom executor
(:mod:`paddock.agent.custom_executor`) all end the same few ways: killed by a failing
health check, killed by the memory limit, killed on request, exited with a status, lost
track of (also across an agent restart, :mod:`paddock.agent.recovery`), or the agent's
own bug.  The precedence between those and the strings a
framework sees are Mesos's API; written once here they cannot drift apart.

Pure functions of what the runner observed; nothing here does I/O.  A runner reports the
result with :meth:`TaskEnd.report`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paddock.agent.tasks import describe_exit, memory_limit_message

if TYPE_CHECKING:
    from paddock.agent.daemon import Agent, Task

__all__ = [
    "TaskEnd",
    "agent_error_end",
    "agent_restarted_end",
    "command_end",
    "container_end",
    "executor_exit_message",
    "executor_task_end",
    "health_kill_end",
]

#: The ``source`` of an update the agent makes about a task (not its executor).
SOURCE_AGENT = "SOURCE_AGENT"
#: ``Agent.report_status``'s default source: the (built-in) executor speaks.
SOURCE_EXECUTOR = "SOURCE_EXECUTOR"
EXECUTOR_TERMINATED = "REASON_EXECUTOR_TERMINATED"
LIMITATION_MEMORY = "REASON_CONTAINER_LIMITATION_MEMORY"
HEALTH_CHECK = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
AGENT_RESTARTED = "REASON_AGENT_RESTARTED"


@dataclass(frozen=True)
class TaskEnd:
    """A terminal TaskStatus to report (the arguments of ``Agent.report_status``)."""

    state: str
    message: str | None = None
    reason: str | None = None
    source: str = SOURCE_EXECUTOR
    healthy: bool | None = None

    def report(self, agent: Agent, task: Task) -> None:
        """Report it as the task's next status update."""
        agent.report_status(
            task,
            self.state,
            source=self.source,
            reason=self.reason,
            message=self.message,
            healthy=self.healthy,
        )


def health_kill_end(detail: str) -> TaskEnd:
    """The task was killed because its health check failed (``detail`` says how)."""
    return TaskEnd(
        "TASK_KILLED", f"Task killed after {detail}", HEALTH_CHECK, SOURCE_EXECUTOR, False
    )


def agent_error_end(doing: str, exc: BaseException) -> TaskEnd:
    """A bug in the agent while ``doing`` (e.g. "running the task"): the task must still
    end, and the message names the error."""
    return TaskEnd(
        "TASK_FAILED", f"agent error while {doing}: {exc}", EXECUTOR_TERMINATED, SOURCE_AGENT
    )


def agent_restarted_end(how: str) -> TaskEnd:
    """A restarted agent could not (or, with ``--recover=cleanup``, would not) take a
    task of its earlier run back: Mesos reports it ``TASK_LOST`` with
    ``REASON_AGENT_RESTARTED``.  ``how`` completes "The agent restarted ..."."""
    return TaskEnd("TASK_LOST", f"The agent restarted {how}", AGENT_RESTARTED, SOURCE_AGENT)


def memory_limit_end(memory: Mapping[str, Any] | None = None, *, what: str = "task") -> TaskEnd:
    """The memory limit's OOM killer ended it (Mesos's memory limitation); ``memory``
    (limit, peak, stat counters) makes the message say by how much where it is known."""
    if what == "task":
        message = memory_limit_message(memory)
    else:
        message = f"Memory limit exceeded: the {what} was killed by the OOM killer"
    return TaskEnd("TASK_FAILED", message, LIMITATION_MEMORY, SOURCE_AGENT)


def command_end(
    returncode: int | None,
    *,
    killed: bool,
    oom: bool,
    unknown: TaskEnd,
    memory: Mapping[str, Any] | None = None,
) -> TaskEnd:
    """The end of a process task: ``returncode`` as ``subprocess`` gives it (negative: a
    signal), None when the agent cannot know it; ``killed`` when a kill was asked;
    ``oom`` when the memory cgroup's OOM killer acted.  ``unknown`` is the end of a task
    whose status is unknown and that no kill or OOM explains.

    Precedence: the memory limit, then a kill, then the exit status."""
    if oom:
        return memory_limit_end(memory)
    if returncode is None:
        return TaskEnd("TASK_KILLED", "Command terminated by a kill") if killed else unknown
    ended = describe_exit(returncode, killed=killed)
    return TaskEnd(ended.state, ended.message, ended.reason)


def container_end(code: int, *, name: str, killed: bool, oom: bool, vanished: bool) -> TaskEnd:
    """The end of a DOCKER task's container: the engine's exit ``code``; ``vanished``
    when the container was removed behind the agent's back (then nothing else is known).

    Precedence: vanished, the memory limit, a kill, then the exit status."""
    if vanished:
        return TaskEnd(
            "TASK_FAILED",
            f"Container {name} disappeared: removed outside the agent",
            EXECUTOR_TERMINATED,
            SOURCE_AGENT,
        )
    if oom:
        return memory_limit_end(what="container")
    if killed:
        return TaskEnd("TASK_KILLED", f"Container stopped by a kill (status {code})")
    state = "TASK_FINISHED" if code == 0 else "TASK_FAILED"
    return TaskEnd(state, f"Container exited with status {code}")


def executor_exit_message(returncode: int | None, *, killed: bool) -> str:
    """How a custom executor's process ended, for its tasks' messages (None: it was
    adopted after an agent restart, so not our child and its status is unknown)."""
    if returncode is None:
        return "Executor exited (exit status unknown after an agent restart)"
    return describe_exit(returncode, killed=killed).message.replace("Command", "Executor", 1)


def executor_task_end(
    termination: tuple[str, str, str] | None, exit_message: str, *, killed: bool
) -> TaskEnd:
    """The end of a task its custom executor had not ended when the executor's process
    did (Mesos: the agent fails it).  ``termination`` is (state, reason, message) when
    the agent ended the executor on purpose (shutdown, registration timeout, launch
    failure); ``killed`` when the task's kill was asked; ``exit_message`` how the
    process ended (:func:`executor_exit_message`)."""
    if termination is not None:
        state, reason, message = termination
        if killed and state == "TASK_FAILED":
            state = "TASK_KILLED"
    elif killed:
        state, reason, message = "TASK_KILLED", EXECUTOR_TERMINATED, ""
    else:
        state, reason, message = "TASK_FAILED", EXECUTOR_TERMINATED, ""
    detail = "; ".join(m for m in (message, exit_message) if m) or "Executor terminated"
    return TaskEnd(state, detail, reason, SOURCE_AGENT)
