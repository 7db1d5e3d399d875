"""Which run of a custom executor the master counts (the executor-exit race).

The master allocates an executor's resources once per (framework, executor id) on an
agent, and frees them on the agent's ``EXITED_EXECUTOR``.  Mesos (and paddock before
this) has a race: when the executor's process ends just as the master launches another
task on the same executor id, the agent starts a *new* run of the executor for that task
while the ``EXITED_EXECUTOR`` of the old run is on its way; the master then frees the
resources of an executor that runs again, and does not count the new run until it exits
or the agent re-registers.

The agent names each run (``container_id``, Mesos's ContainerID of an executor run) in
``EXITED_EXECUTOR``, in the REGISTER ``executors`` and in the ``container_status`` of
every update of the run's tasks (``docs/agent-protocol.md``).  The master:

* counts the run the agent last reported (``Executor.run_id``; None before the first
  report, and for an agent that does not name runs);
* ignores an ``EXITED_EXECUTOR`` of a run it is not counting (an older run);
* on the exit of the counted run, frees the executor only when none of its live tasks
  may be in a later run: a live task the agent has not yet placed in a run (one launched
  while the old run was ending) keeps the executor counted, "exit pending", until an
  update places it — in a new run, which is then counted, or in an ended run — or it
  ends.

Pure bookkeeping on :class:`~paddock.master.state.Executor`; the master
(:mod:`paddock.master.agents`) calls it and frees the resources.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from paddock.master.state import Executor, Task

log = logging.getLogger(__name__)

__all__ = ["exit_applies", "note_exit", "note_task_run", "pending_tasks", "run_of_status"]


def _value(obj: Any) -> str | None:
    value = obj.get("value") if isinstance(obj, dict) else None
    return value if isinstance(value, str) and value else None


def run_of_status(status: dict[str, Any]) -> str | None:
    """The executor run an agent's TaskStatus names (``container_status.container_id``)."""
    container_status = status.get("container_status")
    if not isinstance(container_status, dict):
        return None
    return _value(container_status.get("container_id"))


def note_task_run(executor: Executor, task_id: str, run_id: str) -> None:
    """An update placed ``task_id`` in run ``run_id``; a run the master has not seen end
    becomes the counted one (a new run, started for a task launched on the id).  The
    agent runs one run of an executor id at a time, so the run counted until then has
    ended (a late update naming it does not make it counted again)."""
    executor.task_runs[task_id] = run_id
    if run_id in executor.exited_runs or run_id == executor.run_id:
        return
    if executor.run_id is not None:
        executor.exited_runs.add(executor.run_id)
    log.info(
        "executor %s of %s: counting its run %s (was %s)",
        executor.id,
        executor.framework_id,
        run_id,
        executor.run_id,
    )
    executor.run_id = run_id
    executor.exit_pending = False


def exit_applies(executor: Executor, run_id: str | None) -> bool:
    """Whether an exit of ``run_id`` (None: not named) ends the run the master counts."""
    return executor.run_id is None or executor.run_id == run_id


def note_exit(executor: Executor, run_id: str | None) -> None:
    """The counted run ended (:func:`exit_applies` said so)."""
    if run_id is not None:
        executor.exited_runs.add(run_id)
    executor.run_id = None
    executor.exit_pending = True


def pending_tasks(executor: Executor, tasks: Iterable[Task]) -> list[str]:
    """Live tasks of ``executor`` (among an agent's ``tasks``) that no update placed in an
    ended run: they may be in a run the agent has not reported yet."""
    out = []
    live = set()
    for task in tasks:
        if task.framework_id != executor.framework_id or task.terminal:
            continue
        if _task_executor(task) != executor.id:
            continue
        live.add(task.id)
        if executor.task_runs.get(task.id) not in executor.exited_runs:
            out.append(task.id)
    for gone in set(executor.task_runs) - live:  # ended tasks need no memory
        del executor.task_runs[gone]
    return out


def _task_executor(task: Task) -> str | None:
    ex = task.info.get("executor")
    if isinstance(ex, dict):
        return _value(ex.get("executor_id"))
    return _value(task.info.get("executor_id"))
