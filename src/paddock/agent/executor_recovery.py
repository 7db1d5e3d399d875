"""Custom executors across an agent restart (the ``recovered`` half of
:class:`~paddock.agent.custom_executor.ExecutorManager`).

Each executor run is checkpointed as ``meta/frameworks/<fw>/executors/<id>/executor.json``
(ExecutorInfo, run id, sandbox, pid and process start time) from its start until its
process ends, so a restarted agent finds every executor of the earlier run, with live
tasks or without.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paddock.agent.checkpoint import atomic_write_json, read_json
from paddock.agent.executor_base import ExecutorManagerBase
from paddock.agent.executor_run import (
    DEFAULT_SHUTDOWN_GRACE,
    REGISTERING,
    ExecutorKey,
    ExecutorRun,
    duration_seconds,
    executor_id_of,
    mesos_duration,
    partition_aware,
)
from paddock.agent.recovery_util import proc_start_ticks
from paddock.agent.tasks import AdoptedProcess

if TYPE_CHECKING:
    from paddock.agent.daemon import Task

log = logging.getLogger(__name__)

__all__ = ["ExecutorRecovery"]


class ExecutorRecovery(ExecutorManagerBase):
    """Checkpoint records of executor runs and their recovery (a mixin)."""

    def _record_path(self, framework_id: str, executor_id: str) -> Path:
        return (
            self.agent.store.root / "frameworks" / framework_id / "executors" / executor_id
        ) / "executor.json"

    def _save_record(self, run: ExecutorRun) -> None:
        """Checkpoint the run (ExecutorInfo, sandbox, process), so a restarted agent can
        find the executor even when it has no live task."""
        assert run.pid is not None
        record = {
            "info": run.info,
            "run_id": run.run_id,
            "sandbox": str(run.sandbox),
            "pid": run.pid,
            "start_ticks": proc_start_ticks(run.pid),
        }
        atomic_write_json(
            self._record_path(run.framework_id, run.executor_id), record, self.agent.store.deferred
        )

    def _drop_record(self, run: ExecutorRun) -> None:
        path = self._record_path(run.framework_id, run.executor_id)
        with contextlib.suppress(OSError):
            record = read_json(path)
            if isinstance(record, dict) and record.get("run_id") == run.run_id:
                path.unlink()

    def _saved_records(self) -> list[tuple[ExecutorKey, dict[str, Any]]]:
        out: list[tuple[ExecutorKey, dict[str, Any]]] = []
        base = self.agent.store.root / "frameworks"
        for path in sorted(base.glob("*/executors/*/executor.json")):
            record = read_json(path)
            key = (path.parent.parent.parent.name, path.parent.name)
            if isinstance(record, dict) and isinstance(record.get("info"), dict):
                out.append((key, record))
            else:
                log.warning("dropping unreadable executor checkpoint %s", path)
                with contextlib.suppress(OSError):
                    path.unlink()
        return out

    def recovered(self) -> None:
        """After the agent's recovery: take over the executors that survived it.

        Every executor checkpointed by the earlier run whose process is still there
        (same pid and start time) gets, with ``--recover=reconnect``,
        :attr:`reregistration_timeout` to SUBSCRIBE again and keeps its live tasks
        (``recovery`` reattached them to the executor's process; we take them over).
        After that it is killed and its tasks become ``TASK_LOST`` (``TASK_GONE`` for
        partition-aware frameworks) with ``REASON_EXECUTOR_REREGISTRATION_TIMEOUT``.
        With ``--recover=cleanup`` a surviving executor is killed (``recovery`` already
        reported its tasks ``TASK_LOST``).
        """
        live: dict[ExecutorKey, list[Task]] = {}
        for task in self.agent.tasks.values():
            ex = executor_id_of(task.info)
            if ex is not None and not task.terminal:
                live.setdefault((task.framework_id, ex), []).append(task)
        reconnect = self.agent.config.recover == "reconnect"
        for key, record in self._saved_records():
            pid, ticks = record.get("pid"), record.get("start_ticks")
            alive = isinstance(pid, int) and ticks is not None and proc_start_ticks(pid) == ticks
            path = self._record_path(*key)
            if not alive or not reconnect:
                if alive:
                    assert isinstance(pid, int)
                    log.warning("killing executor %s of %s left by a previous run", key[1], key[0])
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            assert isinstance(pid, int)
            self._adopt(key, record, pid, live.get(key, []))

    def _adopt(self, key: ExecutorKey, record: dict[str, Any], pid: int, tasks: list[Task]) -> None:
        fw_id, ex_id = key
        info = dict(record["info"])
        grace = duration_seconds(info.get("shutdown_grace_period"))
        run = ExecutorRun(
            fw_id,
            ex_id,
            info,
            str(record.get("run_id", "")),
            Path(str(record.get("sandbox", ""))),
            DEFAULT_SHUTDOWN_GRACE if grace is None else grace,
        )
        run.process = AdoptedProcess(pid)
        run.state = REGISTERING
        run.subscriptions = 1  # its next SUBSCRIBE is a re-subscription
        run.ever_sent_task = True
        for task in tasks:
            if task.runner is not None:
                task.runner.cancel()  # the process watcher recovery started
            task.process = None
            run.launched[task.task_id] = task
            task.runner = asyncio.create_task(self._await_task(task), name=f"task-{task.task_id}")
        self.runs[run.key] = run
        log.info(
            "executor %s of %s (pid %d, %d live tasks) survived the agent restart; "
            "waiting %gs for it to re-subscribe",
            ex_id,
            fw_id,
            pid,
            len(tasks),
            self.reregistration_timeout,
        )
        self._timer(run, self._watch(run, run.process))
        self._timer(run, self._reregistration_timeout(run))

    async def _await_task(self, task: Task) -> None:
        done = self._task_done.setdefault(task.key, asyncio.Event())
        try:
            if not task.terminal:
                await done.wait()
        finally:
            self._task_done.pop(task.key, None)

    async def _reregistration_timeout(self, run: ExecutorRun) -> None:
        def termination() -> tuple[str, str, str]:
            task = next(iter(run.launched.values()), None)
            gone = task is not None and partition_aware(self.agent, task)
            return (
                "TASK_GONE" if gone else "TASK_LOST",
                "REASON_EXECUTOR_REREGISTRATION_TIMEOUT",
                f"Executor did not reregister within {mesos_duration(self.reregistration_timeout)}",
            )

        await self._kill_unless_subscribed(
            run, self.reregistration_timeout, "re-subscribe", termination
        )
