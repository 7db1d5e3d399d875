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

Framework messages go both ways through the master (``FRAMEWORK_MESSAGE`` in
``docs/agent-protocol.md``), unreliably as in Mesos.  After an agent restart
(``--recover=reconnect``) an executor that is still running keeps its tasks if it
re-subscribes within :data:`~paddock.agent.executor_run.EXECUTOR_REREGISTRATION_TIMEOUT`.

Not done: cgroup limits for executors, LAUNCH_GROUP, protobuf.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid as uuidlib
from typing import TYPE_CHECKING, Any

from paddock.agent.checkpoint import validate_id
from paddock.agent.executor_recovery import ExecutorRecovery
from paddock.agent.executor_run import (
    DEFAULT_SHUTDOWN_GRACE,
    EXECUTOR_REGISTRATION_TIMEOUT,
    EXECUTOR_REREGISTRATION_TIMEOUT,
    HEARTBEAT_INTERVAL,
    KILL_ESCALATION_SLACK,
    LAUNCHING,
    MAX_REMEMBERED_ACKS,
    REGISTERING,
    RUNNING,
    TERMINATED,
    TERMINATING,
    ExecutorKey,
    ExecutorRun,
    duration_seconds,
    executor_environment,
    executor_id_of,
    mesos_duration,
    partition_aware,
    valid_uuid,
)
from paddock.agent.fetcher import FetchError, fetch_uris
from paddock.agent.recovery_util import proc_start_ticks
from paddock.agent.status_updates import TERMINAL_STATES
from paddock.agent.tasks import (
    AdoptedProcess,
    LaunchError,
    TaskProcess,
    command_spec,
    describe_exit,
)
from paddock.master.streams import EventStream

if TYPE_CHECKING:
    from paddock.agent.daemon import Agent, Task

log = logging.getLogger(__name__)

__all__ = ["ExecutorManager", "executor_id_of", "run_executor_task"]


class ExecutorManager(ExecutorRecovery):
    """The agent's custom executors: launch, subscription, updates, kill, shutdown."""

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

    # ------------------------------------------------------------------ helpers
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

    # ------------------------------------------------------------------ launch
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
            proc = TaskProcess(spec, run.sandbox, env, None)
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
        await asyncio.sleep(self.registration_timeout)
        if run.state != REGISTERING:
            return
        log.warning(
            "executor %s of %s did not subscribe within %gs; killing it",
            run.executor_id,
            run.framework_id,
            self.registration_timeout,
        )
        run.termination = (
            "TASK_FAILED",
            "REASON_EXECUTOR_REGISTRATION_TIMEOUT",
            f"Executor did not register within {mesos_duration(self.registration_timeout)}",
        )
        run.state = TERMINATING
        if run.process is not None:
            await run.process.kill(0)

    async def _watch(self, run: ExecutorRun, proc: TaskProcess | AdoptedProcess) -> None:
        try:
            rc = await proc.wait()
            if rc is None:  # adopted after an agent restart: not our child
                run.exit_message = "Executor exited (exit status unknown after an agent restart)"
            else:
                run.exit_message = describe_exit(rc, killed=proc.kill_requested).message
        except Exception as exc:  # the watcher must always settle the tasks
            log.exception("executor %s: waiting for its process failed", run.executor_id)
            run.exit_message = f"agent error while watching the executor: {exc}"
        run.exit_message = run.exit_message.replace("Command", "Executor", 1)
        log.info("executor %s of %s ended: %s", run.executor_id, run.framework_id, run.exit_message)
        self._terminated(run, rc)

    def _report_exited(self, framework_id: str, executor_id: str, rc: int | None) -> None:
        """Tell the master the executor is gone, so it recovers the executor's resources
        (Mesos ``ExitedExecutorMessage``; ``status`` a wait status, -1 when unknown).
        Unreliable as in Mesos: the next REGISTER lists the executors that still run."""
        status = -1 if rc is None else (-rc if rc < 0 else rc << 8)
        self.agent.send_call(
            {
                "type": "EXITED_EXECUTOR",
                "exited_executor": {
                    "framework_id": {"value": framework_id},
                    "executor_id": {"value": executor_id},
                    "status": status,
                },
            }
        )

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
            if run.termination is not None:
                state, reason, message = run.termination
                if task.kill_requested and state == "TASK_FAILED":
                    state = "TASK_KILLED"
            elif task.kill_requested:
                state, reason, message = "TASK_KILLED", "REASON_EXECUTOR_TERMINATED", ""
            else:
                state, reason, message = "TASK_FAILED", "REASON_EXECUTOR_TERMINATED", ""
            detail = "; ".join(m for m in (message, run.exit_message) if m) or "Executor terminated"
            self._agent_status(run, task, state, reason, detail)
            self._end_task(run, task)
        if self.runs.get(run.key) is run:
            del self.runs[run.key]
        self._drop_record(run)
        self._report_exited(run.framework_id, run.executor_id, rc)
        self.completed.append(run)
        del self.completed[:-50]

    # ------------------------------------------------------------------ subscription
    def subscribe(
        self, run: ExecutorRun, unacked_tasks: list[Any], unacked_updates: list[Any]
    ) -> EventStream:
        """Attach the executor's event stream; replay what it must get (SUBSCRIBE)."""
        stream = EventStream("executor", f"{run.framework_id}/{run.executor_id}")
        if run.stream is not None:
            run.stream.close()  # a newer subscription replaces the old connection
        run.stream = stream

        def closed(s: EventStream) -> None:
            if run.stream is s:
                run.stream = None
                log.info("executor %s of %s disconnected", run.executor_id, run.framework_id)

        stream.on_closed = closed
        if run.state == TERMINATING:
            stream.send({"type": "SHUTDOWN"})
            return stream
        resubscribe = run.subscriptions > 0
        run.subscriptions += 1
        run.state = RUNNING
        from paddock.agent.wire import agent_info

        framework = dict(self.agent.frameworks.get(run.framework_id, {}))
        framework["id"] = {"value": run.framework_id}
        stream.send(
            {
                "type": "SUBSCRIBED",
                "subscribed": {
                    "executor_info": run.info,
                    "framework_info": framework,
                    "agent_info": agent_info(self.agent),
                    "container_id": {"value": run.container_id},
                },
            }
        )
        log.info(
            "executor %s of %s %ssubscribed",
            run.executor_id,
            run.framework_id,
            "re-" if resubscribe else "",
        )
        for update in unacked_updates:
            status = update.get("status") if isinstance(update, dict) else None
            if isinstance(status, dict):
                err = self.update(run, status)
                if err is not None:
                    log.warning("executor %s: ignoring a resent update: %s", run.executor_id, err)
        # Launched tasks the executor does not know and never reported on: their LAUNCH
        # was lost with the old connection, so send it again.
        known = {
            (t.get("task_id") or {}).get("value") for t in unacked_tasks if isinstance(t, dict)
        }
        for task in list(run.launched.values()):
            if task.task_id not in known and task.state == "TASK_STAGING" and not task.terminal:
                self._send_launch(run, task)
            if task.kill_requested and not task.terminal:  # asked while it was away
                self._send_kill(run, task, task.kill_grace)
        while run.queued:
            _, task = run.queued.popitem(last=False)
            run.launched[task.task_id] = task
            self._deliver(run, task)
        self._timer(run, self._heartbeats(run, stream))
        return stream

    def _deliver(self, run: ExecutorRun, task: Task) -> None:
        self._send_launch(run, task)
        run.ever_sent_task = True
        if task.kill_requested:
            self._send_kill(run, task, task.kill_grace)

    def _send_launch(self, run: ExecutorRun, task: Task) -> None:
        framework = dict(self.agent.frameworks.get(run.framework_id, {}))
        framework["id"] = {"value": run.framework_id}
        run.send({"type": "LAUNCH", "launch": {"framework_info": framework, "task": task.info}})

    async def _heartbeats(self, run: ExecutorRun, stream: EventStream) -> None:
        while not stream.closed:
            await asyncio.sleep(self.heartbeat_interval)
            stream.send({"type": "HEARTBEAT"})

    # ------------------------------------------------------------------ updates
    def update(self, run: ExecutorRun, status: dict[str, Any]) -> str | None:
        """Apply an executor's UPDATE; an error message for a 400, or None."""
        tid = status.get("task_id")
        task_id = tid.get("value") if isinstance(tid, dict) else None
        if not isinstance(task_id, str) or not task_id:
            return "Expecting 'status.task_id.value' to be present"
        state = status.get("state")
        if not isinstance(state, str) or not state.startswith("TASK_"):
            return "Expecting 'status.state' to be a TaskState"
        if state == "TASK_STAGING":
            return "An executor cannot send TASK_STAGING"
        uuid = status.get("uuid")
        if not isinstance(uuid, str) or not valid_uuid(uuid):
            return "Expecting 'status.uuid' to be a base64-encoded 16-byte UUID"
        ex = status.get("executor_id")
        if isinstance(ex, dict) and ex.get("value") not in (None, run.executor_id):
            return f"status.executor_id {ex.get('value')!r} is not the calling executor"
        if uuid in run.acked:  # a resend of an update already acknowledged: say so again
            run.send(
                {
                    "type": "ACKNOWLEDGED",
                    "acknowledged": {"task_id": {"value": task_id}, "uuid": uuid},
                }
            )
            return None
        task = run.launched.get(task_id) or run.queued.get(task_id)
        if task is None:
            return f"Task {task_id} is not a live task of executor {run.executor_id}"
        stream = self.agent.updates.streams.get(task.key)
        if stream is not None and any(s.get("uuid") == uuid for s in stream.history):
            if uuid in stream.acked:  # acknowledged, but the executor did not hear it
                self.acknowledged(task, uuid)
            return None  # a duplicate of an update in flight
        if task.terminal:
            log.warning(
                "task %s: ignoring %s from executor %s after the terminal %s",
                task_id,
                state,
                run.executor_id,
                task.state,
            )
            return None
        out = dict(status)
        out["task_id"] = {"value": task_id}
        out["agent_id"] = {"value": self.agent.agent_id or ""}
        out["executor_id"] = {"value": run.executor_id}
        out.setdefault("source", "SOURCE_EXECUTOR")
        ts = out.get("timestamp")
        if not isinstance(ts, int | float) or isinstance(ts, bool):
            out["timestamp"] = time.time()
        else:
            out["timestamp"] = float(ts)
        self.agent.record_status(task, out)
        if task.terminal:
            self._end_task(run, task)
        return None

    def acknowledged(self, task: Task, uuid: str) -> None:
        """The framework acknowledged ``uuid``: tell the executor that sent it."""
        run = self.runs.get((task.framework_id, executor_id_of(task.info) or ""))
        if run is None:
            return
        sent = next((s for s in reversed(task.statuses) if s.get("uuid") == uuid), None)
        if sent is None or sent.get("source") == "SOURCE_AGENT":
            return  # the agent's own update (e.g. the executor's end): nothing to tell
        run.acked[uuid] = task.task_id
        while len(run.acked) > MAX_REMEMBERED_ACKS:
            run.acked.popitem(last=False)
        run.send(
            {
                "type": "ACKNOWLEDGED",
                "acknowledged": {"task_id": {"value": task.task_id}, "uuid": uuid},
            }
        )

    def message(self, run: ExecutorRun, data: str) -> None:
        """Executor -> scheduler (through the master; no delivery guarantee)."""
        self.agent.send_call(
            {
                "type": "FRAMEWORK_MESSAGE",
                "framework_message": {
                    "framework_id": {"value": run.framework_id},
                    "executor_id": {"value": run.executor_id},
                    "data": data,
                },
            }
        )

    def framework_message(self, body: dict[str, Any]) -> None:
        """Scheduler -> executor (``MESSAGE`` event); dropped if it is not subscribed."""
        fw = (body.get("framework_id") or {}).get("value")
        ex = (body.get("executor_id") or {}).get("value")
        data = body.get("data")
        run = self.runs.get((str(fw), str(ex)))
        if (
            not isinstance(data, str)
            or run is None
            or not run.send({"type": "MESSAGE", "message": {"data": data}})
        ):
            log.info("dropping a framework message for executor %s of %s", ex, fw)

    # ------------------------------------------------------------------ kill / shutdown
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


async def run_executor_task(agent: Agent, task: Task) -> None:
    """The runner for a task with an ExecutorInfo (see the module docstring)."""
    try:
        await agent.executors.run_task(task)
    except Exception as exc:  # a bug here must not leave the task without an end
        log.exception("task %s: executor runner failed", task.task_id)
        if not task.terminal:
            agent.report_status(
                task,
                "TASK_FAILED",
                source="SOURCE_AGENT",
                reason="REASON_EXECUTOR_TERMINATED",
                message=f"agent error while running the task's executor: {exc}",
            )
