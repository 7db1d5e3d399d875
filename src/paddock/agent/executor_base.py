"""The state of the agent's custom executors and the helpers every part of
:class:`~paddock.agent.custom_executor.ExecutorManager` uses.

The manager is split by responsibility (launch and process end in
:mod:`~paddock.agent.custom_executor`, the conversation with a subscribed executor in
:mod:`~paddock.agent.executor_protocol`, kill and shutdown in
:mod:`~paddock.agent.executor_shutdown`, agent restarts in
:mod:`~paddock.agent.executor_recovery`); each part is a mixin on this base, so they
share one table of runs without passing it around.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from paddock.agent.executor_run import (
    EXECUTOR_REGISTRATION_TIMEOUT,
    EXECUTOR_REREGISTRATION_TIMEOUT,
    HEARTBEAT_INTERVAL,
    KILL_ESCALATION_SLACK,
    ExecutorKey,
    ExecutorRun,
    executor_id_of,
)
from paddock.agent.status_updates import TERMINAL_STATES

if TYPE_CHECKING:
    from paddock.agent.daemon import Agent, Task

__all__ = ["ExecutorManagerBase"]


class ExecutorManagerBase:
    """The runs of this agent's executors, their timers, and the agent's own updates
    for their tasks."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.runs: dict[ExecutorKey, ExecutorRun] = {}
        #: Recently ended runs, for ``/state``.
        self.completed: list[ExecutorRun] = []
        self._task_done: dict[tuple[str, str], asyncio.Event] = {}
        self.registration_timeout = float(
            os.environ.get("PADDOCK_EXECUTOR_REGISTRATION_TIMEOUT", EXECUTOR_REGISTRATION_TIMEOUT)
        )
        self.reregistration_timeout = float(
            os.environ.get(
                "PADDOCK_EXECUTOR_REREGISTRATION_TIMEOUT", EXECUTOR_REREGISTRATION_TIMEOUT
            )
        )
        self.kill_escalation_slack = KILL_ESCALATION_SLACK
        self.heartbeat_interval = HEARTBEAT_INTERVAL

    def owns(self, task: Task) -> bool:
        """Whether ``task`` is (still) handled by one of our executor runs."""
        ex = executor_id_of(task.info)
        if ex is None:
            return False
        run = self.runs.get((task.framework_id, ex))
        return run is not None and task.task_id in run.queued | run.launched

    def lookup(self, framework_id: str, executor_id: str) -> ExecutorRun | None:
        return self.runs.get((framework_id, executor_id))

    def _timer(self, run: ExecutorRun, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        run.timers.add(t)
        t.add_done_callback(run.timers.discard)

    def _end_task(self, run: ExecutorRun | None, task: Task) -> None:
        if run is not None:
            run.queued.pop(task.task_id, None)
            run.launched.pop(task.task_id, None)
        done = self._task_done.get(task.key)
        if done is not None:
            done.set()

    def _agent_status(
        self, run: ExecutorRun | None, task: Task, state: str, reason: str, message: str
    ) -> None:
        """An update the agent makes for an executor's task (never sent to the executor)."""
        if task.terminal:
            return
        self.agent.report_status(task, state, source="SOURCE_AGENT", reason=reason, message=message)
        if state in TERMINAL_STATES:
            self._end_task(run, task)
