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
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from paddock.agent.executor_run import (
    EXECUTOR_REGISTRATION_TIMEOUT,
    EXECUTOR_REREGISTRATION_TIMEOUT,
    HEARTBEAT_INTERVAL,
    KILL_ESCALATION_SLACK,
    REGISTERING,
    TERMINATING,
    ExecutorKey,
    ExecutorRun,
    executor_id_of,
    run_container_status,
)
from paddock.agent.status_updates import TERMINAL_STATES

if TYPE_CHECKING:
    from paddock.agent.daemon import Agent, Task
    from paddock.agent.tasks import AdoptedProcess, TaskProcess

log = logging.getLogger(__name__)

__all__ = ["ExecutorManagerBase"]


class ExecutorManagerBase:
    """The runs of this agent's executors, their timers, and the agent's own updates
    for their tasks."""

    if TYPE_CHECKING:  # what one part calls on another

        async def _watch(self, run: ExecutorRun, proc: TaskProcess | AdoptedProcess) -> None: ...

        def _send_kill(self, run: ExecutorRun, task: Task, grace: float | None) -> None: ...

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
        self.agent.report_status(
            task,
            state,
            source="SOURCE_AGENT",
            reason=reason,
            message=message,
            container_status=run_container_status(run),
        )
        if state in TERMINAL_STATES:
            self._end_task(run, task)

    async def _kill_unless_subscribed(
        self,
        run: ExecutorRun,
        timeout: float,
        verb: str,
        termination: Callable[[], tuple[str, str, str]],
    ) -> None:
        """After ``timeout`` seconds, kill the executor if it still has not done ``verb``
        (subscribe, re-subscribe); its tasks get ``termination()`` (state, reason,
        message) when its process has ended."""
        await asyncio.sleep(timeout)
        if run.state != REGISTERING:
            return
        log.warning(
            "executor %s of %s did not %s within %gs; killing it",
            run.executor_id,
            run.framework_id,
            verb,
            timeout,
        )
        run.termination = termination()
        run.state = TERMINATING
        if run.process is not None:
            await run.process.kill(0)
