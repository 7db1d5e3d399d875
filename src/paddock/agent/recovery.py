"""Agent start-up: what an earlier run left in the work dir.

* the agent id (``meta/agent.json``), so the agent re-registers as itself;
* every checkpointed task with its status update stream: streams whose terminal update
  was acknowledged are dropped; tasks that ended are kept until acknowledged;
* tasks that were live when the earlier run died (kill -9, crash).  Each runs under its
  own supervisor (:mod:`paddock.agent.supervisor`), which outlives the agent.  With
  ``--recover=reconnect`` a supervisor that is still there (same pid *and* start time)
  is reconnected to: the task stays RUNNING, is killable, and its real exit status is
  reported when it ends; its cgroups are kept.  A task that ended while the agent was
  down is reported with the outcome its supervisor recorded.  With
  ``--recover=cleanup`` the task's process group is killed and the task reported
  ``TASK_LOST`` with ``REASON_AGENT_RESTARTED``; so is a task whose supervisor vanished
  without recording an outcome.  (Checkpoints of agents before supervisors, with only a
  pid, are reattached through a pidfd, exit status unknown.)
* leftover task cgroups (destroyed unless adopted) and sandboxes (handed to the garbage
  collector).

A graceful stop (SIGTERM) kills the tasks itself, so only crashes leave processes behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

from paddock.agent.containerizers import task_kind
from paddock.agent.daemon import Agent, Task
from paddock.agent.docker_recovery import recover_container_task, remove_orphan_containers
from paddock.agent.recovery_util import proc_start_ticks
from paddock.agent.supervised import SupervisedTask
from paddock.agent.task_outcome import agent_restarted_end
from paddock.agent.tasks import AdoptedProcess, signal_group
from paddock.agent.zygote import ZygoteError

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
    from paddock.agent.launcher import zygote_for

    try:
        zygote_for(agent).start()  # forks the task supervisors (see supervisor)
    except ZygoteError as exc:  # each launch tries again and fails the task with this
        log.error("cannot start the task zygote: %s", exc)
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
    # Only cgroups of runs this work dir knows: other agents on the machine (tests run
    # many) share the cgroup root, and their tasks are not ours to kill.
    ours = await asyncio.to_thread(_run_ids, agent.config.work_dir)
    for group in agent.cgroups.leftovers(keep=frozenset(adopted), runs=ours):
        await asyncio.to_thread(group.destroy)
    agent.gc.scan()


def _run_ids(work_dir: Path) -> frozenset[str]:
    """The run ids of every sandbox under ``work_dir`` (a task's cgroup is named
    ``<framework>.<task>.<run id>`` and its sandbox exists before it gets a process)."""
    runs = work_dir.glob("slaves/*/frameworks/*/executors/*/runs/*")
    return frozenset(p.name for p in runs if p.name != "latest")


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
    if isinstance(rec.get("supervisor_pid"), int) and isinstance(rec.get("outcome"), str):
        return _recover_supervised(agent, task, rec)
    # A checkpoint of an older agent (the process was its child; no supervisor).
    pid, ticks = rec.get("pid"), rec.get("start_ticks")
    alive = isinstance(pid, int) and ticks is not None and proc_start_ticks(pid) == ticks
    if alive and agent.config.recover == "reconnect" and hasattr(os, "pidfd_open"):
        assert isinstance(pid, int)
        return _adopt(agent, task, pid)
    # The process (if any) was started by an earlier run of the agent: stop it.
    if alive:
        assert isinstance(pid, int)
        log.warning("killing task %s's process group %d left by a previous run", task_id, pid)
        signal_group(pid, signal.SIGKILL)
    agent_restarted_end(
        f"(--recover={agent.config.recover}) and "
        + ("killed the task's process" if alive else "found the task's process gone")
    ).report(agent, task)
    return None


def _recover_supervised(agent: Agent, task: Task, rec: dict[str, Any]) -> str | None:
    """A task run by its own supervisor: reconnect to it, report how it ended while the
    agent was down, or (``--recover=cleanup``) kill it; the cgroup name when kept."""
    from paddock.agent.launcher import report_outcome, watch_supervised

    name = f"{task.framework_id}.{task.task_id}.{task.run_id}"
    group = agent.cgroups.existing(name) if agent.cgroups.available else None
    proc = SupervisedTask.reattach(rec, task.sandbox, group if group and group.paths else None)
    outcome = proc.load_outcome()
    if outcome.problem is None:  # it ended while the agent was down
        # (its supervisor may still be exiting: the recorded end is the truth, and
        # reconnecting would report it RUNNING first)
        log.info(
            "task %s ended while the agent was down (status %s)", task.task_id, proc.returncode
        )
        report_outcome(agent, task, proc)
        return None
    if proc.supervisor_alive():
        if agent.config.recover == "reconnect":
            task.process = proc
            task.pid = proc.pid
            log.info(
                "reconnected to task %s (supervisor %s, process group %s)",
                task.task_id,
                proc.supervisor_pid,
                proc.pid,
            )
            if task.state == "TASK_STARTING":  # spawned before TASK_RUNNING was recorded
                agent.report_status(
                    task, "TASK_RUNNING", message="Reconnected after an agent restart"
                )
            task.runner = asyncio.create_task(
                watch_supervised(agent, task, proc), name=f"task-{task.task_id}"
            )
            if proc.kill_requested:  # the earlier run was killing it: finish that
                task.kill_requested = True
                task.kill_grace = agent.grace_for(task)
                agent.background(proc.kill(task.kill_grace))
            return name
        log.warning(
            "killing task %s's process group %s left by a previous run", task.task_id, proc.pid
        )
        proc.kill_now()  # its supervisor records the end and exits
        agent_restarted_end("(--recover=cleanup) and killed the task's process").report(agent, task)
        return None
    outcome = proc.load_outcome()  # again: the supervisor may have ended since
    if outcome.problem is None:
        report_outcome(agent, task, proc)
        return None
    proc.kill_now()  # no supervisor any more: nobody would report it
    agent_restarted_end(f"and found the task's supervisor gone; {outcome.problem}").report(
        agent, task
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
