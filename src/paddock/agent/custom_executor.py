"""Custom executors: a task whose TaskInfo carries an ``executor`` runs under it.

Mesos semantics (``src/slave/slave.cpp``), kept where they matter to a framework:

* The agent starts one executor per (framework, ``executor_id``), in its own sandbox
  ``.../frameworks/<fw>/executors/<executor_id>/runs/<run>/`` (``stdout``/``stderr``
  there), as a process group, with Mesos's environment (``MESOS_AGENT_ENDPOINT``,
  ``MESOS_FRAMEWORK_ID``, ``MESOS_EXECUTOR_ID``, ``MESOS_DIRECTORY``/``MESOS_SANDBOX``,
  ``MESOS_CHECKPOINT``, ``MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD``, ...).  Its tasks share
  that sandbox.
* The executor subscribes through ``POST /api/v1/executor``
  (:mod:`paddock.agent.executor_api`).  Until then its tasks are queued and stay
  ``TASK_STAGING``; on SUBSCRIBE it gets ``SUBSCRIBED`` then one ``LAUNCH`` per queued
  task; later tasks for the same executor are sent as ``LAUNCH`` at once.
* Its ``UPDATE`` calls enter the agent's reliable status update streams with the
  executor's own uuid; when the framework acknowledges one, the executor gets
  ``ACKNOWLEDGED``.
* ``KILL_TASK`` becomes a ``KILL`` event (a task not yet delivered is ``TASK_KILLED``
  by the agent).  If the executor has not ended the task within the kill grace period
  plus :data:`KILL_ESCALATION_SLACK`, the agent shuts the executor down.
* Shutdown (framework or agent) sends ``SHUTDOWN`` and kills the process group after
  the executor's shutdown grace period (``ExecutorInfo.shutdown_grace_period``, 5 s
  by default).  An executor that does not subscribe within
  :data:`EXECUTOR_REGISTRATION_TIMEOUT` is killed.
* When the executor process ends, every task it had not ended gets an agent-made
  terminal update: ``TASK_FAILED`` ``REASON_EXECUTOR_TERMINATED`` (``TASK_KILLED`` for
  tasks whose kill had been asked; ``REASON_EXECUTOR_REGISTRATION_TIMEOUT`` after a
  registration timeout).
* The executor runs as its ``ExecutorInfo.command.user`` when the agent is root and
  ``--switch-user`` is on (the rules of :mod:`paddock.agent.task_user`, no fallback to
  ``FrameworkInfo.user``), in a sandbox handed to that user
  (:mod:`paddock.agent.executor_process`); a user it cannot run as fails its tasks
  (``TASK_FAILED`` ``REASON_CONTAINER_LAUNCH_FAILED``) without starting it.

Framework messages go both ways through the master (``FRAMEWORK_MESSAGE`` in
``docs/agent-protocol.md``), unreliably as in Mesos.  After an agent restart
(``--recover=reconnect``) an executor that is still running keeps its tasks if it
re-subscribes within :data:`~paddock.agent.executor_run.EXECUTOR_REREGISTRATION_TIMEOUT`.

Where: this module launches an executor and settles its tasks when its process ends
(the statuses they get: :mod:`paddock.agent.task_outcome`);
:mod:`~paddock.agent.executor_protocol` is the conversation with a subscribed executor,
:mod:`~paddock.agent.executor_shutdown` kill and shutdown,
:mod:`~paddock.agent.executor_recovery` agent restarts, :mod:`~paddock.agent.executor_base`
the state they share, :mod:`~paddock.agent.executor_run` one run's record.

Not done: cgroup limits for executors, LAUNCH_GROUP, protobuf.
"""

from __future__ import annotations

import asyncio
import logging
import uuid as uuidlib
from typing import TYPE_CHECKING, Any

from paddock.agent.checkpoint import validate_id
from paddock.agent.executor_process import ExecutorProcess
from paddock.agent.executor_protocol import ExecutorProtocol
from paddock.agent.executor_recovery import ExecutorRecovery
from paddock.agent.executor_run import (
    DEFAULT_SHUTDOWN_GRACE,
    LAUNCHING,
    REGISTERING,
    RUNNING,
    TERMINATED,
    TERMINATING,
    ExecutorRun,
    duration_seconds,
    executor_environment,
    executor_id_of,
    mesos_duration,
    partition_aware,
    run_container_status,
)
from paddock.agent.executor_shutdown import ExecutorShutdown
from paddock.agent.fetcher import FetchError, fetch_uris
from paddock.agent.recovery_util import proc_start_ticks
from paddock.agent.task_outcome import executor_exit_message, executor_task_end
from paddock.agent.task_runners import end_on_error
from paddock.agent.task_user import TaskUserError, resolve_task_user
from paddock.agent.tasks import AdoptedProcess, LaunchError, TaskProcess, command_spec

if TYPE_CHECKING:
    from paddock.agent.daemon import Agent, Task

log = logging.getLogger(__name__)

__all__ = ["ExecutorManager", "executor_id_of", "run_executor_task"]


class ExecutorManager(ExecutorProtocol, ExecutorShutdown, ExecutorRecovery):
    """The agent's custom executors: launch, subscription, updates, kill, shutdown."""

    async def run_task(self, task: Task) -> None:
        """Hand ``task`` to its executor (starting it if needed); return when it ends."""
        done = self._task_done.setdefault(task.key, asyncio.Event())
        try:
            new_run = self._launch(task)
            if new_run is not None:
                await self._spawn(new_run)
            await done.wait()
        finally:
            self._task_done.pop(task.key, None)

    def _launch(self, task: Task) -> ExecutorRun | None:
        """Queue or deliver ``task``; the new run when its executor must be started."""
        agent = self.agent
        info = task.info.get("executor")
        try:
            if not isinstance(info, dict):
                raise ValueError("'executor' must be an ExecutorInfo object")
            ex_id = executor_id_of(task.info)
            validate_id(ex_id, "executor id")
            if not isinstance(info.get("command"), dict):
                raise ValueError("the ExecutorInfo has no command")
        except ValueError as exc:
            self._agent_status(None, task, "TASK_ERROR", "REASON_TASK_INVALID", str(exc))
            return None
        assert isinstance(ex_id, str)
        key = (task.framework_id, ex_id)
        if task.kill_requested:
            self._agent_status(
                None,
                task,
                "TASK_KILLED",
                "REASON_TASK_KILLED_DURING_LAUNCH",
                "Killed before it was delivered to its executor",
            )
            if key not in self.runs:  # never started: the master frees its resources
                self._report_exited(task.framework_id, ex_id, None)
            return None
        run = self.runs.get(key)
        if run is not None and run.state == TERMINATING:
            self._agent_status(
                None,
                task,
                "TASK_LOST" if not partition_aware(agent, task) else "TASK_DROPPED",
                "REASON_EXECUTOR_TERMINATED",
                f"Executor {ex_id} is shutting down",
            )
            return None
        new_run = None
        if run is None:
            run = new_run = self._new_run(task, info, ex_id)
            self.runs[key] = run
        task.sandbox = run.sandbox
        if run.state == RUNNING:
            run.launched[task.task_id] = task
            self._checkpoint(run, task)
            self._deliver(run, task)
        else:
            run.queued[task.task_id] = task
            self._checkpoint(run, task)
        log.info("task %s given to executor %s of %s", task.task_id, ex_id, task.framework_id)
        return new_run

    def _new_run(self, task: Task, info: dict[str, Any], ex_id: str) -> ExecutorRun:
        agent = self.agent
        info = dict(info)
        info["framework_id"] = {"value": task.framework_id}
        info.setdefault("type", "CUSTOM")
        run_id = str(uuidlib.uuid4())
        sandbox = (
            agent.config.work_dir
            / "slaves"
            / (agent.agent_id or "unregistered")
            / "frameworks"
            / task.framework_id
            / "executors"
            / ex_id
            / "runs"
            / run_id
        )
        grace = duration_seconds(info.get("shutdown_grace_period"))
        return ExecutorRun(
            task.framework_id,
            ex_id,
            info,
            run_id,
            sandbox,
            DEFAULT_SHUTDOWN_GRACE if grace is None else grace,
        )

    def _checkpoint(self, run: ExecutorRun, task: Task) -> None:
        extra: dict[str, Any] = {"executor_run": run.run_id}
        if run.pid is not None:
            extra["pid"] = run.pid
            extra["start_ticks"] = proc_start_ticks(run.pid)
        self.agent.checkpoint_task(task, **extra)

    async def _spawn(self, run: ExecutorRun) -> None:
        agent = self.agent
        command = run.info["command"]
        try:  # ExecutorInfo.command.user (Mesos: --switch_user), before anything runs
            user = resolve_task_user(
                run.info,
                switch_user=agent.config.switch_user,
                what=f"executor {run.executor_id!r}",
            )
        except TaskUserError as exc:
            log.warning("executor %s of %s: %s", run.executor_id, run.framework_id, exc)
            run.termination = ("TASK_FAILED", "REASON_CONTAINER_LAUNCH_FAILED", str(exc))
            self._terminated(run)
            return
        try:
            run.sandbox.mkdir(parents=True, exist_ok=True)
            if command.get("uris"):
                await fetch_uris(command["uris"], run.sandbox)
            spec = command_spec({"command": command})
            framework = agent.frameworks.get(run.framework_id, {})
            env = executor_environment(
                executor_info=run.info,
                framework_id=run.framework_id,
                agent_id=agent.agent_id or "",
                agent_endpoint=agent.endpoint,
                sandbox=run.sandbox,
                checkpoint=bool(framework.get("checkpoint", False)),
                shutdown_grace=run.shutdown_grace,
                hostname=agent.config.hostname,
            )
            proc = ExecutorProcess(spec, run.sandbox, env, None, user=user)
            await proc.start()
        except (FetchError, LaunchError, OSError) as exc:
            log.warning(
                "executor %s of %s failed to start: %s", run.executor_id, run.framework_id, exc
            )
            run.termination = (
                "TASK_FAILED",
                "REASON_CONTAINER_LAUNCH_FAILED",
                f"Failed to launch executor {run.executor_id}: {exc}",
            )
            self._terminated(run)
            return
        run.process = proc
        if run.state == LAUNCHING:
            run.state = REGISTERING
        log.info(
            "executor %s of %s started (pid %s) in %s",
            run.executor_id,
            run.framework_id,
            proc.pid,
            run.sandbox,
        )
        self._save_record(run)
        for task in run.tasks():
            self._checkpoint(run, task)
        self._timer(run, self._watch(run, proc))
        self._timer(run, self._registration_timeout(run))
        if run.state == TERMINATING:  # shut down while it was being spawned
            self._timer(run, self._destroy_after_grace(run, 0.0))

    async def _registration_timeout(self, run: ExecutorRun) -> None:
        await self._kill_unless_subscribed(
            run,
            self.registration_timeout,
            "subscribe",
            lambda: (
                "TASK_FAILED",
                "REASON_EXECUTOR_REGISTRATION_TIMEOUT",
                f"Executor did not register within {mesos_duration(self.registration_timeout)}",
            ),
        )

    async def _watch(self, run: ExecutorRun, proc: TaskProcess | AdoptedProcess) -> None:
        rc: int | None = None  # unknown when waiting failed
        try:
            rc = await proc.wait()
            run.exit_message = executor_exit_message(rc, killed=proc.kill_requested)
        except Exception as exc:  # the watcher must always settle the tasks
            log.exception("executor %s: waiting for its process failed", run.executor_id)
            run.exit_message = f"agent error while watching the executor: {exc}".replace(
                "Command", "Executor", 1
            )
        log.info("executor %s of %s ended: %s", run.executor_id, run.framework_id, run.exit_message)
        self._terminated(run, rc)

    def _report_exited(
        self, framework_id: str, executor_id: str, rc: int | None, run_id: str | None = None
    ) -> None:
        """Tell the master the executor is gone, so it recovers the executor's resources
        (Mesos ``ExitedExecutorMessage``; ``status`` a wait status, -1 when unknown;
        ``container_id`` the run that ended, absent when none was started).
        Unreliable as in Mesos: the next REGISTER lists the executors that still run."""
        status = -1 if rc is None else (-rc if rc < 0 else rc << 8)
        body: dict[str, Any] = {
            "framework_id": {"value": framework_id},
            "executor_id": {"value": executor_id},
            "status": status,
        }
        if run_id is not None:
            body["container_id"] = {"value": run_id}
        self.agent.send_call({"type": "EXITED_EXECUTOR", "exited_executor": body})

    def _terminated(self, run: ExecutorRun, rc: int | None = None) -> None:
        """The process is gone: end the stream, fail what is left, forget the run."""
        run.state = TERMINATED
        run.exited.set()
        if run.stream is not None:
            run.stream.close()
            run.stream = None
        for t in list(run.timers):
            if t is not asyncio.current_task():
                t.cancel()
        for task in run.tasks():
            if not task.terminal:
                end = executor_task_end(
                    run.termination, run.exit_message, killed=task.kill_requested
                )
                self.agent.report_status(
                    task,
                    end.state,
                    source=end.source,
                    reason=end.reason,
                    message=end.message,
                    healthy=end.healthy,
                    container_status=run_container_status(run),
                )
            self._end_task(run, task)
        if self.runs.get(run.key) is run:
            del self.runs[run.key]
        self._drop_record(run)
        self._report_exited(run.framework_id, run.executor_id, rc, run.run_id)
        self.completed.append(run)
        del self.completed[:-50]


async def run_executor_task(agent: Agent, task: Task) -> None:
    """The runner for a task with an ExecutorInfo (see the module docstring)."""
    await end_on_error(
        agent,
        task,
        agent.executors.run_task(task),
        doing="running the task's executor",
        failed="executor runner",
        logger=log,
    )
