"""Two marathons on one state: compare-and-set retries, standby proxying, event streams."""

from __future__ import annotations

import json
import random
import threading

import httpx
import pytest

from paddock.marathon.api import create_api, instant_service
from paddock.marathon.live_server import ServerThread
from paddock.marathon.scheduler_iface import LeaderInfo
from paddock.marathon.validation import checked_app


def test_a_stale_marathon_reloads_and_retries_instead_of_clobbering(zk_client, zk_base, zookeeper):
    from kazoo.client import KazooClient

    other = KazooClient(hosts=zookeeper.hosts, timeout=10)
    other.start(timeout=20)
    try:
        a, _ = instant_service(zk_client, zk_base, rng=random.Random(1))
        b, _ = instant_service(other, zk_base, rng=random.Random(2))
        a.create_app(checked_app({"id": "/from-a", "cmd": "x"}))
        # b's cached root predates /from-a: its commit fails the version check, it reloads
        # and recomputes, so both apps survive.
        b.create_app(checked_app({"id": "/from-b", "cmd": "x"}))
        assert sorted(b.root.apps) == ["/from-a", "/from-b"]
        root, _ = a.store.load_root()
        assert sorted(root.apps) == ["/from-a", "/from-b"]
        assert sorted(a.root.apps) == ["/from-a"]  # a's cache is stale until it reloads
        a.become_leader()
        assert sorted(a.root.apps) == ["/from-a", "/from-b"]
        # Service ports stay unique across both writers.
        ports = [root.apps[x].port_definitions[0].port for x in ("/from-a", "/from-b")]
        assert len(set(ports)) == 2
    finally:
        other.stop()
        other.close()


def test_failed_deployment_and_deployment_limit(zk_client, zk_base):
    service, core = instant_service(zk_client, zk_base, auto_complete=False, rng=random.Random(4))
    seen = []
    service.bus.publish = lambda kind, payload: seen.append(kind) or {}  # type: ignore[method-assign]
    plan = service.create_app(checked_app({"id": "/f", "cmd": "x"}))
    core.fail(plan.id, "no offers")
    assert "deployment_failed" in seen and service.running_deployments() == []
    assert service.store.deployments() == []
    service.max_running_deployments = 1
    service.create_app(checked_app({"id": "/g1", "cmd": "x"}))
    from paddock.marathon.service import Forbidden

    with pytest.raises(Forbidden):
        service.create_app(checked_app({"id": "/g2", "cmd": "x"}))


@pytest.fixture
def leader_and_standby(zk_client, zk_base, zookeeper):
    """A leader served on loopback and a standby (same state) that proxies to it."""
    from kazoo.client import KazooClient

    standby_zk = KazooClient(hosts=zookeeper.hosts, timeout=10)
    standby_zk.start(timeout=20)
    leader_srv = ServerThread(None)
    standby_srv = ServerThread(None)
    leader, _ = instant_service(zk_client, zk_base, advertised=leader_srv.address)
    standby, standby_core = instant_service(standby_zk, zk_base, advertised=standby_srv.address)
    who = {"leader": LeaderInfo(leader=leader_srv.address, elected=False)}
    standby_core.leader = lambda: who["leader"]  # type: ignore[method-assign]
    leader_srv = ServerThread(
        create_api(leader, sse_keepalive=0.2), port=leader_srv.port, before_stop=leader.bus.close
    )
    standby_srv = ServerThread(
        create_api(standby, sse_keepalive=0.2), port=standby_srv.port, before_stop=standby.bus.close
    )
    try:
        with leader_srv, standby_srv:
            yield leader_srv, standby_srv, who
    finally:
        standby_zk.stop()
        standby_zk.close()


def test_standby_proxies_to_the_leader(leader_and_standby):
    leader_srv, standby_srv, who = leader_and_standby
    with httpx.Client(base_url=standby_srv.url, timeout=10) as standby:
        r = standby.post("/v2/apps", json={"id": "/via-standby", "cmd": "x", "instances": 2})
        assert r.status_code == 201, r.text
        assert r.headers["X-Marathon-Leader"] == leader_srv.address
        assert r.headers["Marathon-Deployment-Id"]
        with httpx.Client(base_url=leader_srv.url, timeout=10) as leader:
            assert leader.get("/v2/apps/via-standby").json()["app"]["instances"] == 2
        r = standby.get("/v2/apps/via-standby/tasks", headers={"Accept": "text/plain"})
        assert r.text.startswith("via-standby\t")
        assert standby.get("/v2/apps/nope").status_code == 404  # errors pass through
        # Answered locally: liveness, metrics and who leads.
        assert "X-Marathon-Leader" not in standby.get("/ping").headers
        assert standby.get("/v2/leader").json() == {"leader": leader_srv.address}
        # A request that already went through a proxy is not proxied again.
        r = standby.get("/v2/apps", headers={"X-Marathon-Via": "1.1 elsewhere"})
        assert r.status_code == 502
        who["leader"] = LeaderInfo(leader=None, elected=False)
        assert standby.get("/v2/apps").status_code == 503
        assert standby.get("/v2/leader").status_code == 404


def test_event_stream_filters_light_plans_and_streams_through_a_standby(leader_and_standby):
    leader_srv, standby_srv, _ = leader_and_standby
    received: list[dict] = []
    got_success = threading.Event()
    ready = threading.Event()

    def listen() -> None:
        params = [("event_type", "deployment_info"), ("event_type", "deployment_success")]
        params.append(("plan-format", "light"))
        with (
            httpx.Client(timeout=httpx.Timeout(10, read=20)) as c,
            c.stream(
                "GET",
                f"{standby_srv.url}/v2/events",
                params=params,
                headers={"Accept": "text/event-stream"},
            ) as r,
        ):
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            ready.set()
            event_name = None
            for line in r.iter_lines():
                if line.startswith("event: "):
                    event_name = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    assert data["eventType"] == event_name
                    received.append(data)
                    if event_name == "deployment_success":
                        got_success.set()
                        return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10)
    with httpx.Client(base_url=leader_srv.url, timeout=10) as leader:
        for _ in range(200):  # wait until the proxied stream is subscribed on the leader
            gauges = leader.get("/metrics").json()["gauges"]
            if gauges["marathon.http.event-streams.active.gauge"]["value"] >= 1:
                break
            threading.Event().wait(0.02)
        leader.post("/v2/apps", json={"id": "/streamed", "cmd": "x"})
    assert got_success.wait(10)
    thread.join(5)
    kinds = [e["eventType"] for e in received]
    assert set(kinds) <= {"deployment_info", "deployment_success"}  # filtered
    assert kinds[0] == "deployment_info" and kinds[-1] == "deployment_success"
    info = received[0]
    assert "original" not in info["plan"] and "target" not in info["plan"]  # light
    assert info["plan"]["steps"][0]["actions"][0] == {
        "action": "StartApplication",
        "app": "/streamed",
    }
    assert info["currentStep"]["actions"]
    # The client hung up: the standby closes its upstream stream and the leader drops the
    # subscription (no leaked subscribers).
    with httpx.Client(base_url=leader_srv.url, timeout=10) as leader:
        for _ in range(250):
            gauges = leader.get("/metrics").json()["gauges"]
            if gauges["marathon.http.event-streams.active.gauge"]["value"] == 0:
                break
            threading.Event().wait(0.02)
        assert gauges["marathon.http.event-streams.active.gauge"]["value"] == 0


def test_step_reports_out_of_range_or_repeated_are_ignored(zk_client, zk_base):
    service, core = instant_service(zk_client, zk_base, auto_complete=False, rng=random.Random(6))
    seen: list[str] = []
    service.bus.publish = lambda kind, payload: seen.append(kind) or {}  # type: ignore[method-assign]
    plan = service.create_app(checked_app({"id": "/s", "cmd": "x"}))
    seen.clear()
    service.deployment_step_started(plan.id, 0)
    service.deployment_step_started(plan.id, 99)
    service.deployment_step_started("nope", 1)
    assert seen == []
    service.deployment_step_started(plan.id, 1)
    service.deployment_step_started(plan.id, 1)
    assert seen == ["deployment_info"]
    assert service.store.deployments()[0].current_step == 1
    core.complete(plan.id)
    assert service.running_deployments() == []
