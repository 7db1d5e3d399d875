"""One master (quorum 1) against real ZooKeeper: scheduler API, agent protocol, operator views."""

from __future__ import annotations

import json
import signal

import httpx
import pytest
from kazoo.client import KazooClient

from .clients import (
    EventStreamClient,
    FakeAgent,
    HttpStatusError,
    Scheduler,
    await_until,
    wait_until,
)
from .conftest import start_or_skip

pytestmark = pytest.mark.timeout(120)


def _zk(zk, path: str) -> str:
    return f"zk://{zk.hosts}/{path}"


async def test_subscribe_offer_launch_update_ack(zk, masters):
    m = masters.start(
        _zk(zk, "single1"), 1, "m1", "--allocation-interval", "0.1s", "--log-format", "json"
    )
    wait_until(lambda: (m.metrics() or {}).get("master/elected") == 1.0, 30, "elected")
    first = json.loads(m.log_path.read_text().splitlines()[0])
    assert {"ts", "level", "logger", "msg"} <= set(first)

    agent = FakeAgent("host-a", "cpus:2;mem:1024")
    sched = Scheduler("fw1")
    try:
        await agent.register(m.url)
        ev = await sched.subscribe(m.url)
        assert ev["subscribed"]["heartbeat_interval_seconds"] == 15
        assert sched.stream_id
        offers = (await sched.next("OFFERS"))["offers"]["offers"]
        offer = offers[0]
        assert offer["hostname"] == "host-a"
        assert offer["agent_id"]["value"] == agent.agent_id
        assert {"name": "rack", "type": "TEXT", "text": {"value": "r1"}} in offer["attributes"]
        names = {r["name"]: r["scalar"]["value"] for r in offer["resources"]}
        assert names == {"cpus": 2.0, "mem": 1024.0}

        # Too big a task: TASK_ERROR, nothing reaches the agent.
        assert await sched.launch(offer, "too-big", 3, 64) == 202
        upd = await sched.next("UPDATE")
        assert upd["update"]["status"]["state"] == "TASK_ERROR"
        assert upd["update"]["status"]["task_id"]["value"] == "too-big"

        offer = (await sched.next("OFFERS", timeout=10))["offers"]["offers"][0]
        assert await sched.launch(offer, "t1", 1, 128) == 202
        run = await agent.next("RUN_TASK")
        assert run["run_task"]["task"]["task_id"]["value"] == "t1"
        assert run["run_task"]["framework"]["id"]["value"] == sched.framework_id

        code, uuid = await agent.update(sched.framework_id, "t1", "TASK_RUNNING")
        assert code == 202
        upd = await sched.next("UPDATE")
        assert upd["update"]["status"]["state"] == "TASK_RUNNING"
        assert upd["update"]["status"]["uuid"] == uuid
        assert (
            await sched.call(
                "ACKNOWLEDGE",
                agent_id={"value": agent.agent_id},
                task_id={"value": "t1"},
                uuid=uuid,
            )
            == 202
        )
        ack = await agent.next("ACKNOWLEDGE")
        assert ack["acknowledge"]["uuid"] == uuid

        async with httpx.AsyncClient() as c:
            state = (await c.get(m.url + "/master/state")).json()
            assert state["leader"] == f"master@127.0.0.1:{m.port}"
            assert state["slaves"][0]["hostname"] == "host-a"
            assert state["slaves"][0]["used_resources"]["cpus"] == 1.0
            assert state["slaves"][0]["attributes"] == {"rack": "r1"}
            fw = state["frameworks"][0]
            assert fw["tasks"][0]["id"] == "t1" and fw["tasks"][0]["state"] == "TASK_RUNNING"
            snap = (await c.get(m.url + "/metrics/snapshot")).json()
            assert snap["master/tasks_running"] == 1
            assert snap["master/agents_active"] == 1
            assert snap["master/frameworks_active"] == 1
            r = await c.post(m.url + "/api/v1", json={"type": "GET_TASKS"})
            assert r.json()["get_tasks"]["tasks"][0]["task_id"]["value"] == "t1"
            prom = (await c.get(m.url + "/metrics")).text
            assert "mesos_master_tasks_running 1.0" in prom

        # Explicit and implicit reconciliation.
        await sched.call(
            "RECONCILE", tasks=[{"task_id": {"value": "t1"}}, {"task_id": {"value": "nope"}}]
        )
        r1 = await sched.next("UPDATE")
        r2 = await sched.next("UPDATE")
        got = {r["update"]["status"]["task_id"]["value"]: r["update"]["status"] for r in (r1, r2)}
        assert got["t1"]["state"] == "TASK_RUNNING" and "uuid" not in got["t1"]
        assert got["t1"]["reason"] == "REASON_RECONCILIATION"
        assert got["nope"]["state"] == "TASK_LOST"

        # The task finishes: its cpu comes back and is offered again at once.
        before = {id(e) for e in sched.events}
        await agent.update(sched.framework_id, "t1", "TASK_FINISHED")
        upd = await sched.next(
            "UPDATE", pred=lambda e: e["update"]["status"]["state"] == "TASK_FINISHED"
        )
        assert upd["update"]["status"]["task_id"]["value"] == "t1"
        await sched.next("OFFERS", pred=lambda e: id(e) not in before)
        async with httpx.AsyncClient() as c:
            snap = (await c.get(m.url + "/metrics/snapshot")).json()
        assert snap["master/tasks_finished"] == 1
        assert snap["master/tasks_running"] == 0

        # A bad stream id is refused; a non-POST is 405.
        bad = await sched.client.post(
            m.url + "/api/v1/scheduler",
            json={"type": "REVIVE", "framework_id": {"value": sched.framework_id}},
            headers={"Mesos-Stream-Id": "nope"},
        )
        assert bad.status_code == 400
        assert (await sched.client.get(m.url + "/api/v1/scheduler")).status_code == 405
        assert (
            await sched.client.post(m.url + "/api/v1/scheduler", content=b"{not json")
        ).status_code == 400
    finally:
        await sched.close()
        await agent.close()


async def test_decline_filter_suppress_revive_teardown(zk, masters):
    m = masters.start(_zk(zk, "single2"), 1, "m1", "--allocation-interval", "0.1s")
    agent = FakeAgent("host-b", "cpus:1;mem:512")
    sched = Scheduler("fw2")
    try:
        await agent.register(m.url)
        await sched.subscribe(m.url)
        offer = (await sched.next("OFFERS"))["offers"]["offers"][0]
        assert (
            await sched.call("DECLINE", offer_ids=[offer["id"]], filters={"refuse_seconds": 60})
            == 202
        )
        with pytest.raises(TimeoutError):
            await sched.next("OFFERS", timeout=0.8)
        assert await sched.call("REVIVE") == 202
        offer = (await sched.next("OFFERS"))["offers"]["offers"][0]
        assert await sched.call("SUPPRESS") == 202
        assert (
            await sched.call("DECLINE", offer_ids=[offer["id"]], filters={"refuse_seconds": 0})
            == 202
        )
        with pytest.raises(TimeoutError):
            await sched.next("OFFERS", timeout=0.8)
        assert await sched.call("REVIVE") == 202
        offer = (await sched.next("OFFERS"))["offers"]["offers"][0]
        assert await sched.launch(offer, "t1", 0.5, 64) == 202
        await agent.next("RUN_TASK")
        await agent.update(sched.framework_id, "t1", "TASK_RUNNING")
        assert await sched.call("KILL", task_id={"value": "t1"}) == 202
        kill = await agent.next("KILL_TASK")
        assert kill["kill_task"]["task_id"]["value"] == "t1"
        assert await sched.call("TEARDOWN") == 202
        shut = await agent.next("SHUTDOWN_FRAMEWORK")
        assert shut["shutdown_framework"]["framework_id"]["value"] == sched.framework_id
        await await_until(lambda: sched.closed.is_set(), 5, "stream closed after teardown")
        # The agent's update for the removed framework is acknowledged by the master.
        _, uuid = await agent.update(sched.framework_id, "t1", "TASK_KILLED")
        ack = await agent.next("ACKNOWLEDGE")
        assert ack["acknowledge"]["uuid"] == uuid
        async with httpx.AsyncClient() as c:
            state = (await c.get(m.url + "/master/state")).json()
        assert state["frameworks"] == []
        assert state["completed_frameworks"][0]["id"] == sched.framework_id
        # SIGTERM: a clean exit that also removes the json.info znode at once.
        m.kill(signal.SIGTERM)
        assert m.proc.returncode == 0
        zkc = KazooClient(hosts=zk.hosts)
        zkc.start()
        try:
            assert [c for c in zkc.get_children("/single2") if c.startswith("json.info_")] == []
        finally:
            zkc.stop()
            zkc.close()
    finally:
        await sched.close()
        await agent.close()


async def test_agent_health_unreachable_and_failover_timeout(zk, masters):
    m = masters.start(
        _zk(zk, "single3"), 1, "m1", "--allocation-interval", "0.1s",
        "--agent-ping-timeout", "0.2s", "--max-agent-ping-timeouts", "3",
    )  # fmt: skip
    agent = FakeAgent("host-c", "cpus:1;mem:512")
    pa = Scheduler("pa", capabilities=[{"type": "PARTITION_AWARE"}], failover_timeout=0.5)
    try:
        await agent.register(m.url)
        await pa.subscribe(m.url)
        offer = (await pa.next("OFFERS"))["offers"]["offers"][0]
        await pa.launch(offer, "t1", 0.5, 64)
        await agent.next("RUN_TASK")
        await agent.update(pa.framework_id, "t1", "TASK_RUNNING")
        await pa.next("UPDATE")
        await agent.next("PING", timeout=5)
        agent.ponging = False
        upd = await pa.next(
            "UPDATE", timeout=10, pred=lambda e: e["update"]["status"]["state"] != "TASK_RUNNING"
        )
        assert upd["update"]["status"]["state"] == "TASK_UNREACHABLE"
        await pa.next("FAILURE")
        async with httpx.AsyncClient() as c:
            reg = (await c.get(m.url + "/registry")).json()
            assert agent.agent_id in reg["unreachable"]
            # The agent comes back (re-registers with its id and task): reachable again.
            await agent.close()
            agent2 = FakeAgent("host-c", "cpus:1;mem:512")
            agent2.agent_id = agent.agent_id
            agent2.tasks = agent.tasks
            await agent2.register(m.url)
            reg = (await c.get(m.url + "/registry")).json()
            assert agent.agent_id in reg["admitted"]
            state = (await c.get(m.url + "/master/state")).json()
            assert state["frameworks"][0]["tasks"][0]["state"] == "TASK_RUNNING"
            # The framework disconnects: after its failover timeout its tasks are killed.
            await pa.close()
            shut = await agent2.next("SHUTDOWN_FRAMEWORK", timeout=10)
            assert shut["shutdown_framework"]["framework_id"]["value"] == pa.framework_id
            await agent2.close()
    finally:
        await pa.close()
        await agent.close()


async def test_authentication_and_operator_api(zk, masters, tmp_path):
    creds = tmp_path / "creds.json"
    pairs = [{"principal": "fw", "secret": "s1"}, {"principal": "ag", "secret": "s2"}]
    creds.write_text(json.dumps({"credentials": pairs}))
    m = masters.start(
        _zk(zk, "auth"), 1, "m1", "--allocation-interval", "0.1s", "--credentials", str(creds)
    )
    agent = FakeAgent("host-d", "cpus:1;mem:512")
    sched = Scheduler("fw-auth")
    try:
        with pytest.raises(HttpStatusError) as err:
            await agent.register(m.url)
        assert err.value.status == 401 and "authentication required" in err.value.text.lower()
        await agent.close()
        agent = FakeAgent("host-d", "cpus:1;mem:512")
        agent.credential = {"principal": "ag", "secret": "wrong"}
        with pytest.raises(HttpStatusError) as err:
            await agent.register(m.url)
        assert err.value.status == 401
        await agent.close()
        agent = FakeAgent("host-d", "cpus:1;mem:512")
        agent.credential = {"principal": "ag", "secret": "s2"}
        await agent.register(m.url)

        with pytest.raises(HttpStatusError) as err:
            await sched.subscribe(m.url)
        assert err.value.status == 401
        await sched.close()
        sched = Scheduler("fw-auth")
        sched.auth = ("fw", "bad")
        with pytest.raises(HttpStatusError) as err:
            await sched.subscribe(m.url)
        assert err.value.status == 401 and "fw" in err.value.text
        await sched.close()
        sched = Scheduler("fw-auth")
        sched.auth = ("fw", "s1")
        await sched.subscribe(m.url)
        await sched.next("OFFERS")

        async with httpx.AsyncClient() as c:
            for path in ("/api/v1", "/api/v1/operator", "/master/api/v1"):
                r = await c.post(m.url + path, json={"type": "GET_HEALTH"})
                assert r.json() == {"type": "GET_HEALTH", "get_health": {"healthy": True}}
            r = await c.post(m.url + "/api/v1", json={"type": "GET_VERSION"})
            assert r.json()["get_version"]["version_info"]["version"] == "1.11.0"
            r = await c.post(m.url + "/api/v1", json={"type": "GET_MASTER"})
            assert r.json()["get_master"]["master_info"]["port"] == m.port
            r = await c.post(m.url + "/api/v1", json={"type": "GET_AGENTS"})
            agents = r.json()["get_agents"]["agents"]
            assert agents[0]["agent_info"]["hostname"] == "host-d"
            r = await c.post(m.url + "/api/v1", json={"type": "GET_FRAMEWORKS"})
            fws = r.json()["get_frameworks"]["frameworks"]
            assert fws[0]["framework_info"]["principal"] == "fw"
            r = await c.post(m.url + "/api/v1", json={"type": "GET_STATE"})
            st = r.json()["get_state"]
            assert set(st) >= {"get_tasks", "get_frameworks", "get_agents", "get_executors"}
            weights = {"weight_infos": [{"role": "web", "weight": 2.5}]}
            r = await c.post(
                m.url + "/api/v1", json={"type": "UPDATE_WEIGHTS", "update_weights": weights}
            )
            assert r.status_code == 200
            r = await c.post(m.url + "/api/v1", json={"type": "GET_WEIGHTS"})
            assert r.json()["get_weights"]["weight_infos"] == [{"role": "web", "weight": 2.5}]
            assert (await c.get(m.url + "/registry")).json()["weights"] == {"web": 2.5}
            r = await c.post(m.url + "/api/v1", json={"type": "NOPE"})
            assert r.status_code == 400
            summary = (await c.get(m.url + "/master/state-summary")).json()
            assert summary["slaves"][0]["hostname"] == "host-d"
            assert (await c.get(m.url + "/master/health")).status_code == 200
            r = await c.get(m.url + "/master/redirect")
            assert r.status_code == 307 and r.headers["location"] == f"//127.0.0.1:{m.port}"
            # Marking the agent gone: it is told, and may not come back.
            r = await c.post(
                m.url + "/api/v1",
                json={
                    "type": "MARK_AGENT_GONE",
                    "mark_agent_gone": {"agent_id": {"value": agent.agent_id}},
                },
            )
            assert r.status_code == 200
            await agent.next("ERROR")
            reg = (await c.get(m.url + "/registrar(1)/registry")).json()
            assert agent.agent_id in reg["gone"]
    finally:
        await sched.close()
        await agent.close()


async def test_zookeeper_outage_stops_work_at_once_then_resumes(masters):
    """SUSPENDED session: the leader stops offering immediately (RESCIND, 503); when the
    session comes back (ZooKeeper restarted within the timeout) it resumes by itself."""
    ens = start_or_skip("zookeeper", 1, tick_ms=500)
    masters.cleanups.append(ens.stop)
    m = masters.start(
        f"zk://{ens.hosts}/outage", 1, "m1", "--allocation-interval", "0.1s",
        "--zk-session-timeout", "8s",
    )  # fmt: skip
    agent = FakeAgent("host-z", "cpus:1;mem:512")
    sched = Scheduler("fw-z")
    try:
        await agent.register(m.url)
        await sched.subscribe(m.url)
        offer = (await sched.next("OFFERS"))["offers"]["offers"][0]
        ens.kill(0)
        rescind = await sched.next("RESCIND", timeout=5)
        assert rescind["rescind"]["offer_id"] == offer["id"]
        assert (m.metrics() or {}).get("master/elected") == 0.0
        async with httpx.AsyncClient() as c:
            r = await c.post(
                m.url + "/api/v1/scheduler",
                json={"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u"}}},
            )
            assert r.status_code == 503
        assert await sched.call("REVIVE") == 503
        ens.start_member(0)
        await await_until(lambda: (m.metrics() or {}).get("master/elected") == 1.0, 20, "resumed")
        await sched.next("OFFERS", timeout=10)
        assert m.alive()
    finally:
        await sched.close()
        await agent.close()


async def test_lost_tasks_kept_when_agent_returns_and_offer_timeout(zk, masters):
    """A non-partition-aware framework's task is TASK_LOST when its agent becomes
    unreachable; when the agent returns the task is kept and reported running (Mesos >= 1.5,
    apache/mesos 9d0cadc: Mesos 1.1-1.4 killed it, as this test asserted before)."""
    m = masters.start(
        _zk(zk, "single4"), 1, "m1", "--allocation-interval", "0.1s",
        "--agent-ping-timeout", "0.2s", "--max-agent-ping-timeouts", "2", "--offer-timeout", "1s",
    )  # fmt: skip
    agent = FakeAgent("host-l", "cpus:1;mem:512")
    sched = Scheduler("not-pa")
    try:
        await agent.register(m.url)
        await sched.subscribe(m.url)
        offer = (await sched.next("OFFERS"))["offers"]["offers"][0]
        # Unanswered offers are rescinded after --offer-timeout.
        rescind = await sched.next("RESCIND", timeout=5)
        assert rescind["rescind"]["offer_id"] == offer["id"]
        offer = (await sched.next("OFFERS"))["offers"]["offers"][0]
        await sched.launch(offer, "t1", 0.5, 64)
        await agent.next("RUN_TASK")
        await agent.update(sched.framework_id, "t1", "TASK_RUNNING")
        agent.ponging = False
        upd = await sched.next(
            "UPDATE", timeout=10, pred=lambda e: e["update"]["status"]["state"] != "TASK_RUNNING"
        )
        assert upd["update"]["status"]["state"] == "TASK_LOST"
        assert upd["update"]["status"]["reason"] == "REASON_AGENT_UNREACHABLE"
        await agent.close()
        back = FakeAgent("host-l", "cpus:1;mem:512")
        back.agent_id, back.tasks = agent.agent_id, agent.tasks
        try:
            await back.register(m.url)
            upd = await sched.next(
                "UPDATE",
                timeout=10,
                pred=lambda e: e["update"]["status"].get("reason") == "REASON_AGENT_REREGISTERED",
            )
            assert upd["update"]["status"]["state"] == "TASK_RUNNING"
            assert all(e.get("type") != "KILL_TASK" for e in back.events)
        finally:
            await back.close()
    finally:
        await sched.close()
        await agent.close()


async def test_reregistering_agent_reconciles_tasks_it_did_not_report(zk, masters):
    m = masters.start(_zk(zk, "single5"), 1, "m1", "--allocation-interval", "0.1s")
    agent = FakeAgent("host-r", "cpus:1;mem:512")
    sched = Scheduler("fw-r")
    try:
        await agent.register(m.url)
        await sched.subscribe(m.url)
        offer = (await sched.next("OFFERS"))["offers"]["offers"][0]
        await sched.launch(offer, "t1", 0.5, 64)
        await agent.next("RUN_TASK")
        await agent.close()
        again = FakeAgent("host-r", "cpus:1;mem:512")
        again.agent_id = agent.agent_id  # re-registers, but without the task
        try:
            await again.register(m.url)
            rec = await again.next("RECONCILE")
            assert rec["reconcile"]["tasks"] == [
                {"framework_id": {"value": sched.framework_id}, "task_id": {"value": "t1"}}
            ]
            await again.update(sched.framework_id, "t1", "TASK_LOST")
            upd = await sched.next("UPDATE")
            assert upd["update"]["status"]["state"] == "TASK_LOST"
        finally:
            await again.close()
    finally:
        await sched.close()
        await agent.close()


class OperatorStream(EventStreamClient):
    path = "/api/v1"


async def test_operator_subscribe_stream(zk, masters):
    m = masters.start(_zk(zk, "single6"), 1, "m1", "--allocation-interval", "0.1s")
    op = OperatorStream()
    agent = FakeAgent("host-o", "cpus:1;mem:512")
    sched = Scheduler("fw-o")
    try:
        await op.open(m.url, {"type": "SUBSCRIBE"})
        sub = await op.next("SUBSCRIBED")
        assert sub["subscribed"]["get_state"]["get_agents"]["agents"] == []
        await agent.register(m.url)
        added = await op.next("AGENT_ADDED")
        assert added["agent_added"]["agent"]["agent_info"]["hostname"] == "host-o"
        await sched.subscribe(m.url)
        fw = await op.next("FRAMEWORK_ADDED")
        assert fw["framework_added"]["framework"]["framework_info"]["name"] == "fw-o"
        offer = (await sched.next("OFFERS"))["offers"]["offers"][0]
        await sched.launch(offer, "t1", 0.5, 64)
        task = await op.next("TASK_ADDED")
        assert task["task_added"]["task"]["task_id"]["value"] == "t1"
        await agent.update(sched.framework_id, "t1", "TASK_RUNNING")
        upd = await op.next("TASK_UPDATED")
        assert upd["task_updated"]["state"] == "TASK_RUNNING"
    finally:
        await op.close()
        await sched.close()
        await agent.close()
