"""Custom executors' resources (``ExecutorInfo.resources``) are allocated once per executor
on an agent, as in Mesos: when the first task naming the executor is launched there; they
stay allocated while the executor runs (also with no task left) and come back when the
agent reports the executor's exit (``EXITED_EXECUTOR``), the agent no longer lists it
when it re-registers, or the framework is removed. The master core in-process, as
``test_core.py``; ``test_executor_resources_real_agent.py`` runs a real agent."""

from __future__ import annotations

import pytest

from paddock.master.base import CallError
from paddock.master.core import Master
from paddock.master.streams import EventStream
from paddock.master.views import get_executors, get_state

from .test_core import _res, drain
from .test_core import master as master  # the in-process master fixture


def _register_call(host: str, cpus: float, mem: float, agent_id: str | None = None) -> dict:
    info: dict = {"hostname": host, "resources": _res(cpus, mem)}
    if agent_id is not None:
        info["id"] = {"value": agent_id}
    return {"type": "REGISTER", "register": {"agent_info": info}}


async def _agent(m: Master, cpus: float = 2, mem: float = 1024):
    stream = EventStream("agent", "")
    agent = await m.register_agent(_register_call("a1", cpus, mem), stream)
    return agent, stream


def _framework(m: Master, name: str = "fw", **info):
    fw, _ = m.subscribe(
        {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": name, **info}}},
        None,
    )
    stream = EventStream("framework", fw.id)
    m.attach_stream(fw, stream)
    return fw, stream


def _executor(eid: str = "ex", cpus: float = 0.5, mem: float = 128, **extra) -> dict:
    return {"executor_id": {"value": eid}, "command": {"value": "run-executor"},
            "resources": _res(cpus, mem), **extra}  # fmt: skip


def _task(tid: str, agent_id: str, cpus: float, mem: float, executor: dict | None) -> dict:
    task = {"task_id": {"value": tid}, "agent_id": {"value": agent_id}, "name": tid,
            "resources": _res(cpus, mem)}  # fmt: skip
    if executor is not None:
        task["executor"] = executor
    return task


def _offer(m: Master, stream: EventStream) -> dict:
    m.allocate()
    offers = [o for e in drain(stream) if e["type"] == "OFFERS" for o in e["offers"]["offers"]]
    assert len(offers) == 1, offers
    return offers[0]


def _scalars(resources: list[dict]) -> tuple[float, float]:
    out = {r["name"]: r["scalar"]["value"] for r in resources if r.get("type") == "SCALAR"}
    return out.get("cpus", 0.0), out.get("mem", 0.0)


def _accept(m: Master, fw, offer: dict, tasks: list[dict]) -> None:
    """ACCEPT with refuse_seconds 0 (the rest is offered again at once)."""
    call = {"type": "ACCEPT", "accept": {
        "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0},
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}]}}  # fmt: skip
    m.scheduler_call(fw, call)


def _used(m: Master, agent_id: str) -> tuple[float, float]:
    """What the allocator holds as used on the agent, summed over frameworks."""
    cpus = mem = 0.0
    for res in m.allocator.used(agent_id).values():
        cpus += res.get_scalar("cpus")
        mem += res.get_scalar("mem")
    return round(cpus, 3), round(mem, 3)


def _views_used(m: Master, agent_id: str, fw_id: str) -> dict[str, tuple[float, float]]:
    """Used cpus/mem as /master/state (agent and framework), /metrics/snapshot and the
    agent's v1 GET_AGENTS entry report them."""
    state = m.state_json(None)
    slave = next(s for s in state["slaves"] if s["id"] == agent_id)
    fw = next(f for f in state["frameworks"] if f["id"] == fw_id)
    metrics = m.metrics_snapshot(True)
    v1 = get_state(m)
    (v1_agent,) = v1["get_agents"]["agents"]
    (v1_fw,) = [
        f for f in v1["get_frameworks"]["frameworks"] if f["framework_info"]["id"]["value"] == fw_id
    ]
    return {
        "slave": (slave["used_resources"]["cpus"], slave["used_resources"]["mem"]),
        "framework": (fw["used_resources"]["cpus"], fw["used_resources"]["mem"]),
        "metrics": (metrics["master/cpus_used"], metrics["master/mem_used"]),
        "v1_agent": _scalars(v1_agent["allocated_resources"]),
        "v1_framework": _scalars(v1_fw["allocated_resources"]),
    }


def _exited(
    m: Master, agent, fw_id: str, eid: str = "ex", status: int = 0, run: str | None = None
) -> None:
    body = {"framework_id": {"value": fw_id}, "executor_id": {"value": eid}, "status": status}
    if run is not None:  # the executor run that ended (its container_id)
        body["container_id"] = {"value": run}
    m.agent_call(agent, {"type": "EXITED_EXECUTOR", "exited_executor": body})


async def test_two_tasks_on_one_executor_count_its_resources_once(master):
    agent, astream = await _agent(master, cpus=2, mem=1024)
    fw, fstream = _framework(master)
    offer = _offer(master, fstream)
    ex = _executor(cpus=0.5, mem=128)
    _accept(master, fw, offer, [
        _task("t1", agent.id, 0.25, 64, ex), _task("t2", agent.id, 0.25, 64, ex)])  # fmt: skip
    assert [e["type"] for e in drain(astream) if e["type"] == "RUN_TASK"] == ["RUN_TASK"] * 2
    assert not [e for e in drain(fstream) if e["type"] == "UPDATE"]  # both launched
    want = (1.0, 256.0)  # executor 0.5/128 once + 2 x 0.25/64
    assert _used(master, agent.id) == want
    assert set(_views_used(master, agent.id, fw.id).values()) == {want}
    # The rest of the agent is offered again at once: exactly what is not used; the offer
    # names the framework's executor there.
    offer = _offer(master, fstream)
    assert _scalars(offer["resources"]) == (1.0, 768.0)
    assert offer["executor_ids"] == [{"value": "ex"}]
    # The executor is listed once, with its own resources; tasks carry only theirs.
    (entry,) = get_executors(master)["executors"]
    assert entry["agent_id"] == {"value": agent.id}
    assert entry["executor_info"]["executor_id"] == {"value": "ex"}
    assert entry["executor_info"]["framework_id"] == {"value": fw.id}
    (classic,) = master.state_json(None)["frameworks"][0]["executors"]
    assert (classic["executor_id"], classic["slave_id"]) == ("ex", agent.id)
    assert (classic["resources"]["cpus"], classic["resources"]["mem"]) == (0.5, 128.0)
    assert [_scalars(t.to_v1()["resources"]) for t in fw.tasks.values()] == [(0.25, 64.0)] * 2


async def test_a_later_task_on_a_running_executor_pays_only_for_itself(master):
    agent, _ = await _agent(master, cpus=1, mem=512)
    fw, fstream = _framework(master)
    ex = _executor(cpus=0.5, mem=128)
    _accept(master, fw, _offer(master, fstream), [_task("t1", agent.id, 0.25, 64, ex)])
    offer = _offer(master, fstream)
    assert _scalars(offer["resources"]) == (0.25, 320.0)
    # 0.25 cpus left: enough for a task on the running executor, as it is not charged again.
    _accept(master, fw, offer, [_task("t2", agent.id, 0.25, 64, ex)])
    assert not [e for e in drain(fstream) if e["type"] == "UPDATE"]
    assert _used(master, agent.id) == (1.0, 256.0)


async def test_an_offer_must_hold_the_new_executor_too(master):
    agent, _ = await _agent(master, cpus=1, mem=512)
    fw, fstream = _framework(master)
    big = _executor(cpus=0.75, mem=64)
    _accept(master, fw, _offer(master, fstream), [_task("t1", agent.id, 0.5, 64, big)])
    (upd,) = [e["update"]["status"] for e in drain(fstream) if e["type"] == "UPDATE"]
    assert (upd["state"], upd["reason"]) == ("TASK_ERROR", "REASON_TASK_INVALID")
    assert "more resources" in upd["message"]
    assert _used(master, agent.id) == (0.0, 0.0)
    assert agent.executors == {}  # a refused task launches no executor


async def test_executor_stays_allocated_without_tasks_until_it_exits(master):
    agent, _ = await _agent(master, cpus=2, mem=1024)
    fw, fstream = _framework(master)
    ex = _executor(cpus=0.5, mem=128)
    _accept(master, fw, _offer(master, fstream), [_task("t1", agent.id, 0.25, 64, ex)])
    drain(fstream)
    master.agent_update(agent, {"framework_id": {"value": fw.id}, "status": {
        "task_id": {"value": "t1"}, "state": "TASK_FINISHED"}})  # fmt: skip
    assert fw.tasks == {}
    # No task left, the executor still runs: its resources stay allocated.
    assert _used(master, agent.id) == (0.5, 128.0)
    assert set(_views_used(master, agent.id, fw.id).values()) == {(0.5, 128.0)}
    assert _scalars(_offer(master, fstream)["resources"]) == (1.5, 896.0)
    master.scheduler_call(fw, {"type": "DECLINE", "decline": {"offer_ids": [
        {"value": o} for o in list(fw.offers)], "filters": {"refuse_seconds": 0}}})  # fmt: skip

    _exited(master, agent, fw.id, status=256)
    failure = [e for e in drain(fstream) if e["type"] == "FAILURE"]
    assert failure == [{"type": "FAILURE", "failure": {
        "agent_id": {"value": agent.id}, "executor_id": {"value": "ex"},
        "status": 256}}]  # fmt: skip
    assert _used(master, agent.id) == (0.0, 0.0)
    assert set(_views_used(master, agent.id, fw.id).values()) == {(0.0, 0.0)}
    assert get_executors(master)["executors"] == []
    assert master.metrics_snapshot(True)["master/messages_exited_executor"] == 1.0
    # The whole agent comes back in the next offer.
    assert _scalars(_offer(master, fstream)["resources"]) == (2.0, 1024.0)
    # A repeated (or unknown) exit changes nothing.
    _exited(master, agent, fw.id)
    _exited(master, agent, fw.id, "never-launched")
    assert _used(master, agent.id) == (0.0, 0.0)


async def test_exited_executor_call_is_validated(master):
    agent, _ = await _agent(master)
    for body in (None, {"framework_id": {"value": "f"}}, {"framework_id": {"value": "f"},
                 "executor_id": {"value": "e"}, "status": "x"}):  # fmt: skip
        with pytest.raises(CallError) as err:
            master.agent_call(agent, {"type": "EXITED_EXECUTOR", "exited_executor": body})
        assert err.value.status == 400


async def test_a_new_executor_after_the_exit_is_charged_again(master):
    agent, _ = await _agent(master, cpus=2, mem=1024)
    fw, fstream = _framework(master)
    ex = _executor(cpus=0.5, mem=128)
    _accept(master, fw, _offer(master, fstream), [_task("t1", agent.id, 0.25, 64, ex)])
    # t1 runs in run r1 of the executor (its updates name the run), which exits: a task
    # not yet placed in a run would keep the executor counted (test_executor_runs.py).
    master.agent_update(agent, {"framework_id": {"value": fw.id}, "status": {
        "task_id": {"value": "t1"}, "state": "TASK_RUNNING",
        "container_status": {"container_id": {"value": "r1"}}}})  # fmt: skip
    _exited(master, agent, fw.id, run="r1")
    assert _used(master, agent.id) == (0.25, 64.0)  # t1's end comes from the agent
    _accept(master, fw, _offer(master, fstream), [_task("t2", agent.id, 0.25, 64, ex)])
    assert _used(master, agent.id) == (1.0, 256.0)


async def test_incompatible_executor_info_for_the_same_id_is_refused(master):
    agent, _ = await _agent(master, cpus=2, mem=1024)
    fw, fstream = _framework(master)
    _accept(master, fw, _offer(master, fstream), [_task("t1", agent.id, 0.25, 64, _executor())])
    other = _executor(cpus=0.1, mem=32)  # same id, other resources
    bad = [_task("t2", agent.id, 0.25, 64, other),
           _task("t3", agent.id, 0.25, 64, {"executor_id": {"value": "x/y"}, "command": {}}),
           _task("t4", agent.id, 0.25, 64, {"executor_id": {"value": "nocmd"}})]  # fmt: skip
    _accept(master, fw, _offer(master, fstream), bad)
    updates = {u["update"]["status"]["task_id"]["value"]: u["update"]["status"]
               for u in drain(fstream) if u["type"] == "UPDATE"}  # fmt: skip
    assert set(updates) == {"t2", "t3", "t4"}
    assert {u["state"] for u in updates.values()} == {"TASK_ERROR"}
    assert "not compatible" in updates["t2"]["message"]
    assert "invalid" in updates["t3"]["message"]
    assert "no command" in updates["t4"]["message"]
    assert _used(master, agent.id) == (0.75, 192.0)


async def test_framework_removal_frees_its_executors(master):
    agent, _ = await _agent(master, cpus=2, mem=1024)
    fw, fstream = _framework(master)
    ex = _executor(cpus=0.5, mem=128)
    _accept(master, fw, _offer(master, fstream), [_task("t1", agent.id, 0.25, 64, ex)])
    master.scheduler_call(fw, {"type": "TEARDOWN"})
    assert agent.executors == {}
    assert agent.used().get_scalar("cpus") == 0.0
    assert master.metrics_snapshot(True)["master/cpus_used"] == 0.0
    _, ostream = _framework(master, "other")
    assert _scalars(_offer(master, ostream)["resources"]) == (2.0, 1024.0)


async def test_reregistration_counts_the_executors_the_agent_lists(master):
    agent, _ = await _agent(master, cpus=2, mem=1024)
    fw, fstream = _framework(master)
    ex = _executor(cpus=0.5, mem=128)
    _accept(master, fw, _offer(master, fstream), [
        _task("t1", agent.id, 0.25, 64, ex), _task("t2", agent.id, 0.25, 64, ex)])  # fmt: skip
    reported = [
        {"task_id": {"value": t}, "framework_id": {"value": fw.id}, "state": "TASK_RUNNING",
         "executor_id": {"value": "ex"}, "resources": _res(0.25, 64)} for t in ("t1", "t2")
    ]  # fmt: skip
    listed = {**ex, "framework_id": {"value": fw.id}, "type": "CUSTOM"}
    call = _register_call("a1", 2, 1024, agent.id)
    call["register"].update(tasks=reported, frameworks=[fw.info], executors=[listed])
    back = await master.register_agent(call, EventStream("agent", ""))
    assert _used(master, back.id) == (1.0, 256.0)
    assert set(_views_used(master, back.id, fw.id).values()) == {(1.0, 256.0)}
    # The listed ExecutorInfo (framework_id, type CUSTOM filled in) is the same executor.
    _accept(master, fw, _offer(master, fstream), [_task("t3", back.id, 0.25, 64, ex)])
    assert not [e for e in drain(fstream) if e["type"] == "UPDATE"]
    assert _used(master, back.id) == (1.25, 320.0)

    # Registering again without the executor (its exit was lost): it is forgotten.
    call["register"].update(executors=[])
    again = await master.register_agent(call, EventStream("agent", ""))
    assert again.executors == {} and fw.executors == {}
    # t1, t2 and t3 (not reported: kept until the agent answers the master's RECONCILE).
    assert _used(master, again.id) == (0.75, 192.0)


async def test_reregistration_without_an_executor_list_keeps_known_executors(master):
    """An agent of an older protocol does not list executors: the master keeps the ones
    it knew rather than forgetting them while they may run."""
    agent, _ = await _agent(master, cpus=2, mem=1024)
    fw, fstream = _framework(master)
    _accept(master, fw, _offer(master, fstream), [_task("t1", agent.id, 0.25, 64, _executor())])
    reported = [{"task_id": {"value": "t1"}, "framework_id": {"value": fw.id},
                 "state": "TASK_RUNNING", "resources": _res(0.25, 64)}]  # fmt: skip
    call = _register_call("a1", 2, 1024, agent.id)
    call["register"].update(tasks=reported, frameworks=[fw.info])
    back = await master.register_agent(call, EventStream("agent", ""))
    assert list(back.executors) == [(fw.id, "ex")]
    assert fw.executors[(back.id, "ex")] is back.executors[(fw.id, "ex")]
    assert _used(master, back.id) == (0.75, 192.0)


async def test_failed_over_master_learns_executors_from_the_agent(master):
    """A master that never saw the launch (failover) takes executors from REGISTER, also
    one with no task left, and creates the framework awaiting its re-subscription."""
    listed = {**_executor(cpus=0.5, mem=128), "framework_id": {"value": "F9"}}
    call = _register_call("a1", 2, 1024)
    call["register"].update(executors=[listed], frameworks=[{"id": {"value": "F9"}}])
    agent = await master.register_agent(call, EventStream("agent", ""))
    assert "F9" in master.frameworks
    assert _used(master, agent.id) == (0.5, 128.0)
    assert master.metrics_snapshot(True)["master/cpus_used"] == 0.5
    _exited(master, agent, "F9")
    assert _used(master, agent.id) == (0.0, 0.0)


async def test_unreachable_agent_returns_with_non_partition_aware_task_and_executor(master):
    """Mesos >= 1.5 (apache/mesos 9d0cadc): the returning agent's task of a framework that
    is not partition-aware (told TASK_LOST) is re-added, not killed, and the executor it
    runs on is counted again (once)."""
    agent, _ = await _agent(master, cpus=2, mem=1024)
    fw, fstream = _framework(master)
    assert not fw.partition_aware
    ex = _executor(cpus=0.5, mem=128)
    _accept(master, fw, _offer(master, fstream), [_task("t1", agent.id, 0.25, 64, ex)])
    master.agent_update(agent, {"framework_id": {"value": fw.id}, "status": {
        "task_id": {"value": "t1"}, "state": "TASK_RUNNING", "uuid": "dQ=="}})  # fmt: skip
    drain(fstream)
    await master.mark_unreachable(agent, "test")
    lost = [e["update"]["status"] for e in drain(fstream) if e["type"] == "UPDATE"]
    assert [(s["state"], s["reason"]) for s in lost] == [("TASK_LOST", "REASON_AGENT_UNREACHABLE")]
    assert fw.tasks == {} and [t.id for t in fw.completed_tasks] == ["t1"]
    assert fw.executors == {}

    reported = [{"task_id": {"value": "t1"}, "framework_id": {"value": fw.id},
                 "state": "TASK_RUNNING", "executor_id": {"value": "ex"},
                 "resources": _res(0.25, 64)}]  # fmt: skip
    listed = {**ex, "framework_id": {"value": fw.id}}
    call = _register_call("a1", 2, 1024, agent.id)
    call["register"].update(tasks=reported, frameworks=[fw.info], executors=[listed])
    astream = EventStream("agent", "")
    back = await master.register_agent(call, astream)
    assert [e["type"] for e in drain(astream)] == ["REGISTERED"]  # no KILL_TASK
    (upd,) = [e["update"]["status"] for e in drain(fstream) if e["type"] == "UPDATE"]
    assert (upd["state"], upd["reason"]) == ("TASK_RUNNING", "REASON_AGENT_REREGISTERED")
    assert upd["executor_id"] == {"value": "ex"}
    assert list(fw.tasks) == ["t1"] and fw.completed_tasks == []
    assert _used(master, back.id) == (0.75, 192.0)
    assert set(_views_used(master, back.id, fw.id).values()) == {(0.75, 192.0)}
