"""The conversation with a subscribed custom executor (the executor half of the v1
executor API; the HTTP layer is :mod:`paddock.agent.executor_api`).

Events out: ``SUBSCRIBED`` (then the ``LAUNCH`` of every queued task, and again of a
launched task whose LAUNCH was lost with an old connection), ``HEARTBEAT``,
``ACKNOWLEDGED`` (when the framework acknowledged one of the executor's updates, or a
resent update that was acknowledged already) and ``MESSAGE`` (from the scheduler,
unreliably).  Calls in: ``UPDATE`` (into the agent's reliable status update streams,
with the executor's own uuid) and ``MESSAGE`` (to the scheduler, through the master).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from typing import TYPE_CHECKING, Any

from paddock.agent.executor_base import ExecutorManagerBase
from paddock.agent.executor_run import (
    RUNNING,
    TERMINATING,
    ExecutorRun,
    executor_id_of,
    run_container_status,
)
from paddock.master.streams import EventStream

if TYPE_CHECKING:
    from paddock.agent.daemon import Task

log = logging.getLogger(__name__)

__all__ = ["ExecutorProtocol"]

#: Acknowledged uuids remembered per executor (to re-acknowledge a resent update).
MAX_REMEMBERED_ACKS = 1000


class ExecutorProtocol(ExecutorManagerBase):
    """Subscription, task delivery, updates and messages of an executor (a mixin)."""

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
        container_status = run_container_status(run, out.get("container_status"))
        if container_status is not None:
            out["container_status"] = container_status
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


def valid_uuid(value: str) -> bool:
    """A base64-encoded 16-byte UUID, as TaskStatus.uuid must be."""
    try:
        return len(base64.b64decode(value, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False
