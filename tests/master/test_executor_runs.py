"""The executor-exit race (Mesos has it too): the exit of an executor's old run must not
free the resources of a new run the agent started for a task the master launched on the
same executor id while the old run was ending.  The agent names runs (``container_id``)
in EXITED_EXECUTOR, in REGISTER ``executors`` and in its tasks' updates
(``container_status.container_id``); the master counts the run last reported
(``paddock.master.executor_runs``).  In-process, as ``test_executor_resources.py``."""

from __future__ import annotations

from . import test_executor_resources
from .test_executor_resources import (
    _accept,
    _agent,
    _executor,
    _exited,
    _framework,
    _offer,
    _res,
    _task,
    _used,
    _views_used,
    drain,
)

master = test_executor_resources.master  # the fixture

EXECUTOR_ONLY = (0.5, 128.0)  # _executor(cpus=0.5, mem=128)


def _update(m, agent, fw_id: str, tid: str, state: str, run: str | None, uuid=None) -> None:
    status: dict = {"task_id": {"value": tid}, "state": state}
    if uuid is not None:  # a reliable update: the task is kept until it is acknowledged
        status["uuid"] = uuid
    if run is not None:
        status["container_status"] = {"container_id": {"value": run}}
    m.agent_update(agent, {"framework_id": {"value": fw_id}, "status": status})


async def _one_finished_task_on_run_r1(m):
    """An agent, a framework, executor ``ex`` (run r1) whose task t1 finished; the rest
    of the agent offered and declined."""
    agent, _ = await _agent(m, cpus=2, mem=1024)
    fw, fstream = _framework(m)
    ex = _executor(cpus=0.5, mem=128)
    _accept(m, fw, _offer(m, fstream), [_task("t1", agent.id, 0.25, 64, ex)])
    _update(m, agent, fw.id, "t1", "TASK_RUNNING", "r1")
    _update(m, agent, fw.id, "t1", "TASK_FINISHED", "r1")
    assert _used(m, agent.id) == EXECUTOR_ONLY
    return agent, fw, fstream, ex


async def test_exit_of_the_old_run_does_not_free_a_run_started_for_a_later_task(master):
    agent, fw, fstream, ex = await _one_finished_task_on_run_r1(master)
    # The master launches t2 on "ex" (r1 is counted: t2 pays only for itself) ...
    _accept(master, fw, _offer(master, fstream), [_task("t2", agent.id, 0.25, 64, ex)])
    assert _used(master, agent.id) == (0.75, 192.0)
    # ... while r1 exits on the agent: its EXITED_EXECUTOR arrives after the launch, and
    # the agent starts run r2 for t2.  t2 may be in r2: the executor stays counted.
    _exited(master, agent, fw.id, run="r1")
    assert [e["type"] for e in drain(fstream) if e["type"] == "FAILURE"] == ["FAILURE"]
    assert _used(master, agent.id) == (0.75, 192.0)
    assert set(_views_used(master, agent.id, fw.id).values()) == {(0.75, 192.0)}
    executor = agent.executors[(fw.id, "ex")]
    assert executor.exit_pending
    # t2's first update names r2: the master counts run r2.
    _update(master, agent, fw.id, "t2", "TASK_RUNNING", "r2")
    assert (executor.run_id, executor.exit_pending) == ("r2", False)
    _update(master, agent, fw.id, "t2", "TASK_FINISHED", "r2")
    assert _used(master, agent.id) == EXECUTOR_ONLY  # r2 still runs, with no task
    # A repeated exit of r1 changes nothing; the exit of r2 frees the executor.
    _exited(master, agent, fw.id, run="r1")
    assert _used(master, agent.id) == EXECUTOR_ONLY
    _exited(master, agent, fw.id, run="r2")
    assert _used(master, agent.id) == (0.0, 0.0)
    assert agent.executors == {} and fw.executors == {}


async def test_new_run_reported_before_the_old_runs_exit(master):
    agent, fw, fstream, ex = await _one_finished_task_on_run_r1(master)
    _accept(master, fw, _offer(master, fstream), [_task("t2", agent.id, 0.25, 64, ex)])
    _update(master, agent, fw.id, "t2", "TASK_RUNNING", "r2")  # overtakes r1's exit
    _exited(master, agent, fw.id, run="r1")
    assert _used(master, agent.id) == (0.75, 192.0)
    assert not agent.executors[(fw.id, "ex")].exit_pending


async def test_a_late_update_of_the_old_run_does_not_make_it_counted_again(master):
    """An update of the old run may arrive after the new run's (held behind an
    unacknowledged one): the new run stays counted, the old run's exit changes nothing."""
    agent, _ = await _agent(master, cpus=2, mem=1024)
    fw, fstream = _framework(master)
    ex = _executor(cpus=0.5, mem=128)
    _accept(master, fw, _offer(master, fstream), [_task("t1", agent.id, 0.25, 64, ex)])
    _update(master, agent, fw.id, "t1", "TASK_RUNNING", "r1", uuid="dTE=")
    _accept(master, fw, _offer(master, fstream), [_task("t2", agent.id, 0.25, 64, ex)])
    _update(master, agent, fw.id, "t2", "TASK_RUNNING", "r2", uuid="dTI=")
    _update(master, agent, fw.id, "t1", "TASK_FAILED", "r1", uuid="dTM=")  # late
    executor = agent.executors[(fw.id, "ex")]
    assert executor.run_id == "r2"
    _exited(master, agent, fw.id, run="r1")
    _update(master, agent, fw.id, "t2", "TASK_FINISHED", "r2", uuid="dTQ=")
    assert _used(master, agent.id) == EXECUTOR_ONLY  # r2 runs on, with no task
    assert executor.task_runs == {}  # ended tasks are not remembered
    _exited(master, agent, fw.id, run="r2")
    assert _used(master, agent.id) == (0.0, 0.0)


async def test_a_task_that_reached_the_old_run_frees_the_executor_when_placed(master):
    """t2 was delivered to r1 just before r1 ended: the agent fails it naming r1, and
    then (no new run) the executor's resources come back."""
    agent, fw, fstream, ex = await _one_finished_task_on_run_r1(master)
    _accept(master, fw, _offer(master, fstream), [_task("t2", agent.id, 0.25, 64, ex)])
    _exited(master, agent, fw.id, run="r1")
    assert _used(master, agent.id) == (0.75, 192.0)
    _update(master, agent, fw.id, "t2", "TASK_FAILED", "r1")
    assert _used(master, agent.id) == (0.0, 0.0)
    assert agent.executors == {}


async def test_an_unplaced_task_that_ends_frees_the_pending_executor(master):
    """A task never placed in a run (e.g. killed before any run got it; or an agent that
    does not name runs) ends: nothing can run for it, so the executor is freed."""
    agent, fw, fstream, ex = await _one_finished_task_on_run_r1(master)
    _accept(master, fw, _offer(master, fstream), [_task("t2", agent.id, 0.25, 64, ex)])
    _exited(master, agent, fw.id, run="r1")
    _update(master, agent, fw.id, "t2", "TASK_KILLED", None)
    assert _used(master, agent.id) == (0.0, 0.0)


async def test_exit_of_an_executor_whose_tasks_are_placed_frees_it_at_once(master):
    agent, fw, fstream, ex = await _one_finished_task_on_run_r1(master)
    _accept(master, fw, _offer(master, fstream), [_task("t2", agent.id, 0.25, 64, ex)])
    _update(master, agent, fw.id, "t2", "TASK_RUNNING", "r1")  # t2 reached r1
    _exited(master, agent, fw.id, run="r1")  # its TASK_FAILED is still on the way
    assert _used(master, agent.id) == (0.25, 64.0)  # only t2, until its end arrives
    assert agent.executors == {}


async def test_reregistration_names_the_counted_run(master):
    agent, _ = await _agent(master, cpus=2, mem=1024)
    fw, _ = _framework(master)
    stream = type(agent.stream)("agent", "")
    ex = {**_executor(cpus=0.5, mem=128), "framework_id": {"value": fw.id}}
    register = {"type": "REGISTER", "register": {
        "agent_info": {"hostname": "a1", "resources": _res(2, 1024), "id": {"value": agent.id}},
        "executors": [{**ex, "container_id": {"value": "r7"}}],
        "frameworks": [{**fw.info, "id": {"value": fw.id}}]}}  # fmt: skip
    agent = await master.register_agent(register, stream)
    executor = agent.executors[(fw.id, "ex")]
    assert executor.run_id == "r7"
    assert "container_id" not in executor.info  # the run is not part of the ExecutorInfo
    assert _used(master, agent.id) == EXECUTOR_ONLY
    _exited(master, agent, fw.id, run="r6")  # an older run: ignored
    assert _used(master, agent.id) == EXECUTOR_ONLY
    _exited(master, agent, fw.id, run="r7")
    assert _used(master, agent.id) == (0.0, 0.0)
