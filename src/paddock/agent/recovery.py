"""Agent start-up: what an earlier run left in the work dir.

* the agent id (``meta/agent.json``), so the agent re-registers as itself;
* every checkpointed task with its status update stream: streams whose terminal update
  was acknowledged are dropped; tasks that ended are kept until acknowledged; tasks that
  were live had their process started by the earlier run, which nothing supervises now:
  the process group is killed (if the recorded pid still names the same process) and the
  task reported ``TASK_LOST`` with ``REASON_AGENT_RESTARTED``. Reattaching to such
  processes (per-task supervisors that outlive the agent) is the planned next step; the
  checkpoint already records what it needs (pid, start time, sandbox, TaskInfo);
* leftover task cgroups (destroyed) and sandboxes (handed to the garbage collector).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

from paddock.agent.daemon import Agent, Task
from paddock.agent.recovery_util import proc_start_ticks

log = logging.getLogger(__name__)

__all__ = ["recover_agent"]


async def recover_agent(self: Agent) -> None:
    """Read the checkpoint: agent id, live tasks (whose processes a previous run
    left: killed, since reattaching is not implemented yet) and update streams."""
    self.config.work_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(self.store.empty_trash)
    self.cgroups.detect(self.config.cgroups_enabled)
    if not self.cgroups.available:
        log.warning("cgroups unavailable, tasks run without limits: %s", self.cgroups.reason)
    else:
        log.info("cgroups: %s under %s", sorted(self.cgroups.controllers), "paddock")
    saved = self.store.load_agent()
    if saved and isinstance(saved.get("agent_id"), str):
        self.agent_id = saved["agent_id"]
        log.info("recovered agent id %s", self.agent_id)
    for fw_id, task_id, rec in self.store.iter_tasks():
        await _recover_task(self, fw_id, task_id, rec)
    for group in self.cgroups.leftovers():
        await asyncio.to_thread(group.destroy)
    self.gc.scan()


async def _recover_task(self: Agent, fw_id: str, task_id: str, rec: dict[str, Any] | None) -> None:
    key = (fw_id, task_id)
    stream = self.updates.recover(key)
    if rec is None:
        log.warning("task %s of %s: unreadable checkpoint, dropping it", task_id, fw_id)
        self.updates.remove(key)
        return
    if self.updates.is_finished(key):
        self.updates.remove(key)
        return
    if isinstance(rec.get("framework"), dict):
        self.frameworks[fw_id] = rec["framework"]
    task = Task(
        fw_id,
        task_id,
        rec.get("task") or {"task_id": {"value": task_id}},
        str(rec.get("run_id", "")),
        Path(str(rec.get("sandbox", ""))),
        statuses=list(stream.history),
    )
    task.pid = rec.get("pid")
    task.state = stream.history[-1]["state"] if stream.history else "TASK_STAGING"
    self.tasks[key] = task
    if task.terminal:
        return
    # The process (if any) was started by an earlier run of the agent: stop it.
    pid, ticks = rec.get("pid"), rec.get("start_ticks")
    if isinstance(pid, int) and ticks is not None and proc_start_ticks(pid) == ticks:
        log.warning("killing task %s's process group %d left by a previous run", task_id, pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    self.report_status(
        task,
        "TASK_LOST",
        source="SOURCE_AGENT",
        reason="REASON_AGENT_RESTARTED",
        message=(
            "The agent restarted (--recover="
            f"{self.config.recover}) and killed the task's process: "
            "reattaching to running tasks is not implemented"
        ),
    )
