"""Ending a custom executor's tasks and the executor itself.

``KILL_TASK`` becomes a ``KILL`` event (a task not yet delivered is ``TASK_KILLED`` by
the agent); if the executor has not ended the task within the kill grace period plus
:data:`~paddock.agent.executor_run.KILL_ESCALATION_SLACK`, the agent shuts the executor
down.  Shutdown (of the executor, its framework or the agent) sends ``SHUTDOWN`` and
kills the process group after the executor's shutdown grace period.  What its tasks
then become is decided when the process ends
(:func:`~paddock.agent.task_outcome.executor_task_end`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from paddock.agent.executor_base import ExecutorManagerBase
from paddock.agent.executor_run import RUNNING, TERMINATED, TERMINATING, ExecutorRun, executor_id_of

if TYPE_CHECKING:
    from paddock.agent.daemon import Task

log = logging.getLogger(__name__)

__all__ = ["ExecutorShutdown"]


class ExecutorShutdown(ExecutorManagerBase):
    """Kill an executor's task, shut an executor (or all) down (a mixin)."""

    def kill(self, task: Task, grace: float) -> None:
        """``KILL_TASK`` for a task of one of our executors (``Agent.kill_task`` hook)."""
        ex = executor_id_of(task.info) or ""
        run = self.runs.get((task.framework_id, ex))
        if run is None:
            return
        if task.task_id in run.queued:
            self._agent_status(
                run,
                task,
                "TASK_KILLED",
                "REASON_TASK_KILLED_DURING_LAUNCH",
                "Killed before it was delivered to its executor",
            )
            if not run.queued and not run.ever_sent_task and not run.launched:
                self.shutdown(run, "all its tasks were killed before delivery")
            return
        if run.state != RUNNING or task.task_id not in run.launched:
            # Terminating (the end of the process settles it), already ended, or not
            # re-subscribed yet after an agent restart (the KILL goes out on SUBSCRIBE).
            return
        self._send_kill(run, task, grace)

    def _send_kill(self, run: ExecutorRun, task: Task, grace: float | None) -> None:
        body: dict[str, Any] = {"task_id": {"value": task.task_id}}
        if grace is not None:
            body["kill_policy"] = {"grace_period": {"nanoseconds": int(grace * 1e9)}}
        run.send({"type": "KILL", "kill": body})
        self._timer(run, self._escalate_kill(run, task, grace or 0.0))

    async def _escalate_kill(self, run: ExecutorRun, task: Task, grace: float) -> None:
        await asyncio.sleep(grace + self.kill_escalation_slack)
        if task.terminal or run.state != RUNNING or self.runs.get(run.key) is not run:
            return
        log.warning(
            "executor %s did not end task %s within %gs of the kill; shutting it down",
            run.executor_id,
            task.task_id,
            grace + self.kill_escalation_slack,
        )
        self.shutdown(run, f"it did not kill task {task.task_id} in time")

    def shutdown(self, run: ExecutorRun, why: str) -> None:
        """SHUTDOWN the executor; kill its process group after its grace period."""
        if run.state in (TERMINATING, TERMINATED):
            return
        log.info("shutting down executor %s of %s: %s", run.executor_id, run.framework_id, why)
        for task in run.tasks():
            task.kill_requested = True
        was = run.state
        run.state = TERMINATING
        if run.termination is None:
            run.termination = (
                "TASK_FAILED",
                "REASON_EXECUTOR_TERMINATED",
                f"Executor shut down: {why}",
            )
        if was == RUNNING and run.send({"type": "SHUTDOWN"}):
            self._timer(run, self._destroy_after_grace(run, run.shutdown_grace))
        elif run.process is not None:
            self._timer(run, self._destroy_after_grace(run, 0.0))
        # else (LAUNCHING): _spawn sees TERMINATING and destroys it once started.

    async def _destroy_after_grace(self, run: ExecutorRun, grace: float) -> None:
        if grace > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await run.exited.wait()
        if not run.exited.is_set() and run.process is not None:
            await run.process.kill(0)

    def shutdown_framework(self, framework_id: str) -> None:
        for run in list(self.runs.values()):
            if run.framework_id == framework_id:
                self.shutdown(run, f"framework {framework_id} is shutting down")

    def shutdown_every(self, why: str) -> None:
        for run in list(self.runs.values()):
            self.shutdown(run, why)

    async def shutdown_all(self, timeout: float) -> None:
        """Agent shutdown: SHUTDOWN every executor and wait (bounded) for them to end."""
        runs = list(self.runs.values())
        for run in runs:
            self.shutdown(run, "the agent is shutting down")
        waits = [asyncio.ensure_future(r.exited.wait()) for r in runs if r.process is not None]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=timeout)
            for w in pending:
                w.cancel()
