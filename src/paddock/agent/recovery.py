"""Agent start-up: what an earlier run left in the work dir.

* the agent id (``meta/agent.json``), so the agent re-registers as itself;
* every checkpointed task with its status update stream: streams whose terminal update
  was acknowledged are dropped; tasks that ended are kept until acknowledged;
* tasks that were live when the earlier run died (kill -9, crash): their process was
  started by that run. With ``--recover=reconnect`` a process that is still there (same
  pid *and* start time) is reattached: watched through a pidfd, killable by process
  group, its cgroups kept; as it is not our child, its exit status is unknown when it
  ends. With ``--recover=cleanup``, or when the process is gone, the process group is
  killed and the task reported ``TASK_LOST`` with ``REASON_AGENT_RESTARTED``;
* leftover task cgroups (destroyed unless adopted) and sandboxes (handed to the garbage
  collector).

A graceful stop (SIGTERM) kills the tasks itself, so only crashes leave processes behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

from paddock.agent.containerizers import task_kind
from paddock.agent.daemon import Agent, Task
from paddock.agent.docker_recovery import recover_container_task, remove_orphan_containers
from paddock.agent.recovery_util import proc_start_ticks
from paddock.agent.tasks import AdoptedProcess

log = logging.getLogger(__name__)

__all__ = ["recover_agent"]


async def recover_agent(agent: Agent) -> None:
    """Read the checkpoint: agent id, live tasks (reattached or killed, see the module
    docstring) and update streams."""
    agent.config.work_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(agent.store.empty_trash)
    agent.cgroups.detect(agent.config.cgroups_enabled)
    if not agent.cgroups.available:
        log.warning("cgroups unavailable, tasks run without limits: %s", agent.cgroups.reason)
    else:
        log.info("cgroups: %s under %s", sorted(agent.cgroups.controllers), "paddock")
    saved = agent.store.load_agent()
    if saved and isinstance(saved.get("agent_id"), str):
        agent.agent_id = saved["agent_id"]
        log.info("recovered agent id %s", agent.agent_id)
    adopted: set[str] = set()
    for fw_id, task_id, rec in agent.store.iter_tasks():
        name = await _recover_task(agent, fw_id, task_id, rec)
        if name is not None:
            adopted.add(name)
    await remove_orphan_containers(agent)  # Docker containers no live task owns
    for group in agent.cgroups.leftovers(keep=frozenset(adopted)):
        await asyncio.to_thread(group.destroy)
    agent.gc.scan()


async def _recover_task(
    agent: Agent, fw_id: str, task_id: str, rec: dict[str, Any] | None
) -> str | None:
    """Recover one task; the name of its cgroups when its process was adopted."""
    key = (fw_id, task_id)
    stream = agent.updates.recover(key)
    if rec is None:
        log.warning("task %s of %s: unreadable checkpoint, dropping it", task_id, fw_id)
        agent.updates.remove(key)
        return None
    if agent.updates.is_finished(key):
        agent.updates.remove(key)
        return None
    if isinstance(rec.get("framework"), dict):
        agent.frameworks[fw_id] = rec["framework"]
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
    agent.tasks[key] = task
    if task.terminal:
        return None
    if task_kind(task.info) == "docker":  # a container, not a process: docker_recovery
        await recover_container_task(agent, task, rec)
        return None
    pid, ticks = rec.get("pid"), rec.get("start_ticks")
    alive = isinstance(pid, int) and ticks is not None and proc_start_ticks(pid) == ticks
    if alive and agent.config.recover == "reconnect" and hasattr(os, "pidfd_open"):
        assert isinstance(pid, int)
        return _adopt(agent, task, pid)
    # The process (if any) was started by an earlier run of the agent: stop it.
    if alive:
        assert isinstance(pid, int)
        log.warning("killing task %s's process group %d left by a previous run", task_id, pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    agent.report_status(
        task,
        "TASK_LOST",
        source="SOURCE_AGENT",
        reason="REASON_AGENT_RESTARTED",
        message=(
            f"The agent restarted (--recover={agent.config.recover}) and "
            + ("killed the task's process" if alive else "found the task's process gone")
        ),
    )
    return None


def _adopt(agent: Agent, task: Task, pid: int) -> str:
    """Watch a live process of an earlier run again (``--recover=reconnect``)."""
    from paddock.agent.launcher import watch_adopted

    name = f"{task.framework_id}.{task.task_id}.{task.run_id}"
    group = agent.cgroups.existing(name) if agent.cgroups.available else None
    proc = AdoptedProcess(pid, group if group is not None and group.paths else None)
    task.process = proc
    task.pid = pid
    log.info("reattached to task %s (process group %d)", task.task_id, pid)
    if task.state == "TASK_STARTING":  # it was spawned before TASK_RUNNING was recorded
        agent.report_status(task, "TASK_RUNNING", message="Reattached after an agent restart")
    task.runner = asyncio.create_task(watch_adopted(agent, task, proc), name=f"task-{task.task_id}")
    return name
