"""The master core in-process (no HTTP, no ZooKeeper): a registry stand-in that can lose
its quorum, event streams read directly."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paddock.master.base import CallError, Unavailable
from paddock.master.config import MasterConfig
from paddock.master.core import Master
from paddock.master.election import ZkUrl
from paddock.master.registry import RegistryState, RegistryUnavailable
from paddock.master.streams import EventStream
from paddock.master.views import get_state
from paddock.recordio import RecordIODecoder

from .clients import await_until


class FakeRegistry:
    def __init__(self) -> None:
        self.state = RegistryState()
        self.available = True
        self.writes: list[dict] = []

    async def write(self, cmd: dict) -> object:
        if not self.available:
            raise RegistryUnavailable("no quorum")
        self.writes.append(cmd)
        return self.state.apply_command(cmd)


def drain(stream: EventStream) -> list[dict]:
    dec = RecordIODecoder()
    out = []
    q = stream._queue
    while not q.empty():
        item = q.get_nowait()
        if item is not None:
            out += [json.loads(r) for r in dec.feed(item)]
    return out


@pytest.fixture
async def master():
    cfg = MasterConfig(zk=ZkUrl("h:1", "/m"), quorum=1, work_dir=Path("/nonexistent"), seed=1)
    info = {"id": "M", "hostname": "h", "pid": "master@h:1", "version": "1.11.0",
            "address": {"hostname": "h", "ip": "127.0.0.1", "port": 1}}  # fmt: skip
    m = Master(cfg, info, FakeRegistry())  # type: ignore[arg-type]
    m.start_acting()
    yield m
    await m.stop()


def _res(cpus: float, mem: float) -> list[dict]:
    return [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
    ]


async def _agent(m: Master, host: str = "a1", cpus: float = 4, mem: float = 4096):
    stream = EventStream("agent", "")
    call = {
        "type": "REGISTER",
        "register": {"agent_info": {"hostname": host, "resources": _res(cpus, mem)}},
    }
    agent = await m.register_agent(call, stream)
    return agent, stream


def _framework(m: Master, name: str, **info):
    fw, _ = m.subscribe(
        {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": name, **info}}},
        None,
    )
    stream = EventStream("framework", fw.id)
    m.attach_stream(fw, stream)
    return fw, stream


def _task(tid: str, agent_id: str, cpus: float, mem: float) -> dict:
    return {"task_id": {"value": tid}, "agent_id": {"value": agent_id}, "name": tid,
            "resources": _res(cpus, mem)}  # fmt: skip


async def test_admission_needs_the_registry(master):
    master.registry.available = False
    with pytest.raises(Unavailable):
        await _agent(master)
    assert master.agents == {}
    master.registry.available = True
    agent, stream = await _agent(master)
    assert agent.id in master.registry.state.admitted
    assert drain(stream)[0]["type"] == "REGISTERED"


async def test_accept_validation_and_launch(master):
    agent, astream = await _agent(master, cpus=2, mem=1024)
    fw, fstream = _framework(master, "fw")
    assert master.allocate() == 1
    events = drain(fstream)
    assert [e["type"] for e in events] == ["SUBSCRIBED", "OFFERS"]
    offer = events[1]["offers"]["offers"][0]
    launch = {"type": "LAUNCH", "launch": {"task_infos": [
        _task("big", agent.id, 3, 10), _task("ok", agent.id, 1, 512), _task("ok", agent.id, 0.1, 1),
    ]}}  # fmt: skip
    master.scheduler_call(
        fw, {"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [launch]}}
    )
    updates = [e["update"]["status"] for e in drain(fstream) if e["type"] == "UPDATE"]
    assert [(u["task_id"]["value"], u["state"]) for u in updates] == [
        ("big", "TASK_ERROR"),
        ("ok", "TASK_ERROR"),  # duplicate task id
    ]
    runs = [e for e in drain(astream) if e["type"] == "RUN_TASK"]
    assert [r["run_task"]["task"]["task_id"]["value"] for r in runs] == ["ok"]
    assert agent.used().get_scalar("cpus") == 1.0
    # The offer is gone: accepting it again loses the tasks (not partition-aware).
    master.scheduler_call(
        fw, {"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
            {"type": "LAUNCH", "launch": {"task_infos": [_task("late", agent.id, 0.1, 1)]}}]}},
    )  # fmt: skip
    (late,) = [e["update"]["status"] for e in drain(fstream) if e["type"] == "UPDATE"]
    assert (late["state"], late["reason"]) == ("TASK_LOST", "REASON_INVALID_OFFERS")


async def test_framework_failover_and_stream_checks(master):
    await _agent(master)
    fw, s1 = _framework(master, "fw", failover_timeout=30)
    finfo = {"user": "u", "name": "fw", "id": {"value": fw.id}}
    call = {
        "type": "SUBSCRIBE",
        "framework_id": {"value": fw.id},
        "subscribe": {"framework_info": finfo},
    }
    fw2, known = master.subscribe(call, None)
    assert fw2 is fw and known
    old = drain(s1)
    assert old[-1] == {"type": "ERROR", "error": {"message": "Framework failed over"}}
    assert s1.closed
    s2 = EventStream("framework", fw.id)
    master.attach_stream(fw, s2)
    with pytest.raises(CallError) as err:
        master.framework_for_call({"framework_id": {"value": fw.id}}, s1.id)
    assert err.value.status == 400
    assert master.framework_for_call({"framework_id": {"value": fw.id}}, s2.id) is fw
    with pytest.raises(CallError) as err:
        master.framework_for_call({"framework_id": {"value": "nope"}}, s2.id)
    assert err.value.status == 403


async def test_stop_acting_rescinds_and_refuses(master):
    await _agent(master)
    fw, stream = _framework(master, "fw")
    master.allocate()
    drain(stream)
    master.stop_acting("test")
    assert [e["type"] for e in drain(stream)] == ["RESCIND"]
    assert master.offers == {}
    assert master.allocate() == 0
    with pytest.raises(Unavailable):
        master.framework_for_call({"framework_id": {"value": fw.id}}, stream.id)
    master.start_acting()
    assert master.allocate() == 1


async def test_lapsed_session_lease_stops_work_until_renewed(master):
    """Past its ZooKeeper session lease a leader makes no offers and refuses calls, with
    no event needed (it may not have heard that its session is gone); a renewed lease
    lets it act again, and a call held for a new leader is released when it acts."""
    await _agent(master)
    fw, stream = _framework(master, "fw")
    drain(stream)
    master.lease_until = time.monotonic() - 0.001
    assert master.leading and not master.acting
    assert master.allocate() == 0
    assert drain(stream) == []
    with pytest.raises(Unavailable):
        master.framework_for_call({"framework_id": {"value": fw.id}}, stream.id)
    assert not await master.wait_acting(0.01)
    master.lease_until = time.monotonic() + 60
    assert master.acting
    assert master.allocate() == 1

    master.stop_acting("test")
    held = asyncio.get_running_loop().create_task(master.wait_acting(30))
    await asyncio.sleep(0)
    assert not held.done()
    master.start_acting()
    assert await held


async def test_two_frameworks_share_by_drf(master):
    for i in range(4):
        await _agent(master, f"a{i}", cpus=1, mem=1024)
    _, s1 = _framework(master, "f1")
    _, s2 = _framework(master, "f2")
    master.allocate()
    n1 = sum(len(e["offers"]["offers"]) for e in drain(s1) if e["type"] == "OFFERS")
    n2 = sum(len(e["offers"]["offers"]) for e in drain(s2) if e["type"] == "OFFERS")
    assert (n1, n2) == (2, 2)


async def test_subscribe_validation_and_suppressed_roles(master):
    await _agent(master)
    with pytest.raises(CallError) as err:
        _framework(master, "bad", role="a b")
    assert err.value.status == 400
    fw, _ = _framework(master, "quiet")
    call = {
        "type": "SUBSCRIBE",
        "subscribe": {"framework_info": fw.info, "suppressed_roles": ["*"]},
    }
    fw2, known = master.subscribe(call, None)
    assert known and fw2 is fw
    s2 = EventStream("framework", fw.id)
    master.attach_stream(fw, s2)
    assert master.allocate() == 0  # suppressed
    call = {"type": "SUBSCRIBE", "subscribe": {"framework_info": fw.info}}
    master.subscribe(call, None)
    master.attach_stream(fw, EventStream("framework", fw.id))
    assert master.allocate() == 1  # re-subscribing without suppressed roles revives


async def test_agent_reporting_tasks_of_a_removed_framework_shuts_them_down(master):
    agent, _ = await _agent(master, cpus=1, mem=512)
    fw, fstream = _framework(master, "gone")
    master.allocate()
    offer = next(e for e in drain(fstream) if e["type"] == "OFFERS")["offers"]["offers"][0]
    launch = {"type": "LAUNCH", "launch": {"task_infos": [_task("t", agent.id, 0.5, 64)]}}
    master.scheduler_call(
        fw, {"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [launch]}}
    )
    master.scheduler_call(fw, {"type": "TEARDOWN"})
    assert fw.id not in master.frameworks
    stream = EventStream("agent", "")
    reported = {"task_id": {"value": "t"}, "framework_id": {"value": fw.id},
                "state": "TASK_RUNNING", "resources": _res(0.5, 64)}  # fmt: skip
    info = {"hostname": "a1", "id": {"value": agent.id}, "resources": _res(1, 512)}
    fws = [{"id": {"value": fw.id}, "role": "bad role"}]
    call = {
        "type": "REGISTER",
        "register": {"agent_info": info, "tasks": [reported], "frameworks": fws},
    }
    await master.register_agent(call, stream)
    assert fw.id not in master.frameworks  # not resurrected
    kinds = [(e["type"], e.get("shutdown_framework")) for e in drain(stream)]
    assert ("SHUTDOWN_FRAMEWORK", {"framework_id": {"value": fw.id}}) in kinds
    # A framework the master never saw, with a bad role, is still adopted (role "*").
    other = {"task_id": {"value": "x"}, "framework_id": {"value": "F2"},
             "state": "TASK_RUNNING", "resources": _res(0.1, 1)}  # fmt: skip
    call["register"]["tasks"] = [other]
    call["register"]["frameworks"] = [{"id": {"value": "F2"}, "role": "bad role"}]
    await master.register_agent(call, EventStream("agent", ""))
    assert master.frameworks["F2"].roles == ["*"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5)
    | st.sampled_from(["TASK_RUNNING", "*", "cpus", "SCALAR", "LAUNCH"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(
        st.sampled_from(["value", "type", "name", "scalar", "task_id", "agent_id", "resources",
                         "offer_ids", "operations", "launch", "task_infos", "filters",
                         "refuse_seconds", "tasks", "uuid", "roles", "status", "state",
                         "framework_info", "user", "role", "capabilities", "id",
                         "failover_timeout", "suppressed_roles", "agent_info", "hostname",
                         "executor", "labels", "executor_id"]),
        children, max_size=4,
    ),
    max_leaves=12,
)  # fmt: skip

_TYPES = ["ACCEPT", "DECLINE", "REVIVE", "SUPPRESS", "KILL", "ACKNOWLEDGE", "RECONCILE",
          "MESSAGE", "NOPE", 7]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ctype=st.sampled_from(_TYPES), body=_json, agent_body=_json)
async def test_garbage_calls_get_clean_errors(ctype, body, agent_body):
    cfg = MasterConfig(zk=ZkUrl("h:1", "/m"), quorum=1, work_dir=Path("/nonexistent"), seed=1)
    info = {"id": "M", "hostname": "h", "pid": "p", "version": "1", "address": {}}
    m = Master(cfg, info, FakeRegistry())  # type: ignore[arg-type]
    m.start_acting()
    try:
        agent, _ = await _agent(m)
        fw, fstream = _framework(m, "fw")
        m.allocate()
        offer = next(e for e in drain(fstream) if e["type"] == "OFFERS")["offers"]["offers"][0]
        task = _task("g", agent.id, 0.1, 1)
        if isinstance(body, dict):
            task.update(body)  # a valid offer, a task with garbage fields
        launch = {"type": "LAUNCH", "launch": {"task_infos": [task]}}
        accept = {"offer_ids": [offer["id"]], "operations": [launch]}
        m.scheduler_call(fw, {"type": "ACCEPT", "accept": accept})
        get_state(m)
        call = {"type": ctype, "framework_id": {"value": fw.id}}
        if isinstance(ctype, str):
            call[ctype.lower()] = body
        try:
            m.scheduler_call(fw, call)
        except CallError as exc:
            assert 400 <= exc.status < 500
        for c in ({"type": "UPDATE", "update": agent_body},
                  {"type": "REGISTER", "register": agent_body}):  # fmt: skip
            try:
                if c["type"] == "REGISTER":
                    await m.register_agent(c, EventStream("agent", ""))
                else:
                    m.agent_call(agent, c)
            except CallError as exc:
                assert 400 <= exc.status < 500
        try:
            m.subscribe({"type": "SUBSCRIBE", "subscribe": body}, None)
        except CallError as exc:
            assert 400 <= exc.status < 500
        m.state_json(None)
        m.state_json(None, summary=True)
        get_state(m)
        m.metrics_snapshot(True)
    finally:
        await m.stop()


async def test_agents_that_do_not_reregister_after_failover_become_unreachable():
    cfg = MasterConfig(
        zk=ZkUrl("h:1", "/m"), quorum=1, work_dir=Path("/nonexistent"),
        agent_reregister_timeout=0.2,
    )  # fmt: skip
    reg = FakeRegistry()
    reg.state.apply_command({"op": "admit", "agent_id": "A", "info": {"hostname": "a"}})
    reg.state.apply_command({"op": "admit", "agent_id": "B", "info": {"hostname": "b"}})
    m = Master(cfg, {"id": "M2", "hostname": "h", "address": {}}, reg)  # type: ignore[arg-type]
    m.start_acting()
    try:
        assert set(m.recovered_agents) == {"A", "B"}
        stream = EventStream("agent", "")
        call = {"type": "REGISTER", "register": {"agent_info": {
            "hostname": "b", "id": {"value": "B"}, "resources": _res(1, 64)}}}  # fmt: skip
        await m.register_agent(call, stream)
        assert set(m.recovered_agents) == {"A"}
        await await_until(lambda: "A" in reg.state.unreachable, 5, "A marked unreachable")
        assert "B" in reg.state.admitted
        assert m.recovered_agents == {}
    finally:
        await m.stop()
