"""Three masters (quorum 2) against real ZooKeeper and keeper: one leader, redirects,
leader failover after kill -9, and no work without a quorum of masters."""

from __future__ import annotations

import json
import signal
import time

import httpx
import pytest
from kazoo.client import KazooClient

from .clients import FakeAgent, Scheduler, await_until, elected, wait_until
from .conftest import KINDS, start_or_skip

pytestmark = pytest.mark.timeout(150)

FAST = ("--allocation-interval", "0.1s", "--zk-session-timeout", "2s")


@pytest.fixture(params=KINDS)
def ensemble(request):
    # tickTime 500 ms lets a 2 s session timeout stand (ZooKeeper allows 2-20 ticks).
    e = start_or_skip(request.param, 1, tick_ms=500)
    yield e
    e.stop()


def _start3(masters, zk_url, *extra):
    return [masters.start(zk_url, 2, f"m{i}", *FAST, *extra) for i in range(3)]


async def test_one_leader_lowest_znode_redirects_and_failover(ensemble, masters):
    zk_url = f"zk://{ensemble.hosts}/mesos"
    ms = _start3(masters, zk_url)
    leader = wait_until(lambda: elected(ms), 60, "a leader")
    assert len(leader) == 1
    leader = leader[0]

    zk = KazooClient(hosts=ensemble.hosts)
    zk.start()
    try:
        # Every master contends once it has found its registry peers.
        wait_until(lambda: len(zk.get_children("/mesos")) == 4, 20, "3 json.info znodes")
        children = zk.get_children("/mesos")
        infos = sorted(c for c in children if c.startswith("json.info_"))
        assert set(children) == {*infos, "log_replicas"}
        assert len(infos) == 3
        data = json.loads(zk.get(f"/mesos/{infos[0]}")[0])
        assert data["address"] == {"hostname": "127.0.0.1", "ip": "127.0.0.1", "port": leader.port}
        assert data["ip"] == 16777343  # 127.0.0.1, network byte order as a uint32
        assert data["pid"] == f"master@127.0.0.1:{leader.port}"
        replicas = zk.get_children("/mesos/log_replicas")
        assert len([r for r in replicas if r.startswith("replica_")]) == 3
    finally:
        zk.stop()
        zk.close()

    async with httpx.AsyncClient() as c:
        for m in ms:
            if m is leader:
                continue
            r = await c.post(m.url + "/api/v1/scheduler", json={"type": "SUBSCRIBE"})
            assert r.status_code == 307
            assert r.headers["location"] == f"//127.0.0.1:{leader.port}/api/v1/scheduler"
            r = await c.get(m.url + "/master/redirect")
            assert r.status_code == 307
            assert r.headers["location"] == f"//127.0.0.1:{leader.port}"
            r = await c.get(m.url + "/master/state")
            assert r.status_code == 307
            assert r.headers["location"] == f"//127.0.0.1:{leader.port}/master/state"
            snap = (await c.get(m.url + "/metrics/snapshot")).json()
            assert snap["master/elected"] == 0.0

    agent = FakeAgent("host-a", "cpus:2;mem:1024")
    sched = Scheduler("fw", failover_timeout=60)
    try:
        await agent.register(ms[0].url)  # follows the redirect
        await sched.subscribe(ms[1].url)
        offer = (await sched.next("OFFERS"))["offers"]["offers"][0]
        await sched.launch(offer, "t1", 1, 64)
        await agent.next("RUN_TASK")
        await agent.update(sched.framework_id, "t1", "TASK_RUNNING")
        await sched.next("UPDATE")

        # kill -9 the leader: another master leads; the agent and framework come back.
        t0 = time.monotonic()
        leader.kill(signal.SIGKILL)
        others = [m for m in ms if m is not leader]
        new = wait_until(lambda: elected(others), 30, "a new leader")[0]
        t_elected = time.monotonic() - t0
        await await_until(
            lambda: agent.closed.is_set() and sched.closed.is_set(), 10, "streams end"
        )
        agent.events.clear()
        agent._consumed.clear()
        sched.events.clear()
        sched._consumed.clear()
        await agent.register(others[0].url)
        await sched.subscribe(others[1].url)
        offer = (await sched.next("OFFERS"))["offers"]["offers"][0]
        t_offer = time.monotonic() - t0
        print(f"failover: elected after {t_elected:.2f}s, first offer after {t_offer:.2f}s")
        assert t_offer < 15
        # The registry survived: the agent kept its id; the task is known again.
        assert offer["agent_id"]["value"] == agent.agent_id
        async with httpx.AsyncClient() as c:
            st = (await c.get(new.url + "/master/state")).json()
            reg = (await c.get(new.url + "/registry")).json()
        assert st["frameworks"][0]["id"] == sched.framework_id
        assert st["frameworks"][0]["tasks"][0]["state"] == "TASK_RUNNING"
        assert agent.agent_id in reg["admitted"]
        names = {r["name"]: r["scalar"]["value"] for r in offer["resources"]}
        assert names["cpus"] == 1.0  # the running task still holds one cpu
    finally:
        await sched.close()
        await agent.close()


async def test_minority_does_no_work_then_recovers(masters):
    zk_single = start_or_skip("zookeeper", 1, tick_ms=500)
    masters.cleanups.append(zk_single.stop)
    zk_url = f"zk://{zk_single.hosts}/minority"
    ms = _start3(masters, zk_url, "--zk-session-timeout", "2s")
    leader = wait_until(lambda: elected(ms), 60, "a leader")[0]
    others = [m for m in ms if m is not leader]
    for m in others:
        m.kill(signal.SIGKILL)
    # Without a quorum of masters the leader stops (it cannot write the registry).
    wait_until(lambda: (leader.metrics() or {}).get("master/elected") == 0.0, 20, "leader stops")
    agent = FakeAgent("host-m", "cpus:1;mem:256")
    sched = Scheduler("fw-m")
    try:
        async with httpx.AsyncClient() as c:
            r = await c.post(
                leader.url + "/paddock/v1/agent",
                json={"type": "REGISTER", "register": {"agent_info": {"hostname": "x"}}},
            )
            assert r.status_code == 503
            r = await c.post(
                leader.url + "/api/v1/scheduler",
                json={
                    "type": "SUBSCRIBE",
                    "subscribe": {"framework_info": {"user": "u", "name": "n"}},
                },
            )
            assert r.status_code == 503
        # One master comes back (same work dir and ports): quorum, and work resumes.
        others[0].start()
        await agent.register(leader.url, deadline=30)
        await sched.subscribe(leader.url, deadline=30)
        offer = (await sched.next("OFFERS"))["offers"]["offers"][0]
        assert offer["agent_id"]["value"] == agent.agent_id
        assert (leader.metrics() or {}).get("master/elected") == 1.0
        assert (others[0].metrics() or {}).get("master/elected") == 0.0
    finally:
        await sched.close()
        await agent.close()


@pytest.mark.slow
@pytest.mark.parametrize("session_timeout,tick_ms", [("10s", 2000), ("2s", 500)])
async def test_failover_time(masters, session_timeout, tick_ms):
    """kill -9 of the leading master -> first offer from the new leader (prints the time).
    The agent and framework re-resolve the leader by polling every master (as a client
    watching ZooKeeper would)."""
    ens = start_or_skip("zookeeper", 1, tick_ms=tick_ms)
    masters.cleanups.append(ens.stop)
    zk_url = f"zk://{ens.hosts}/failover"
    ms = [
        masters.start(
            zk_url, 2, f"m{i}", "--allocation-interval", "0.1s",
            "--zk-session-timeout", session_timeout,
        )
        for i in range(3)
    ]  # fmt: skip
    leader = wait_until(lambda: elected(ms), 60, "a leader")[0]
    agent = FakeAgent("host-f", "cpus:2;mem:1024")
    sched = Scheduler("fw-f", failover_timeout=120)
    try:
        await agent.register(leader.url)
        await sched.subscribe(leader.url)
        await sched.next("OFFERS")
        t0 = time.monotonic()
        leader.kill(signal.SIGKILL)
        others = [m for m in ms if m is not leader]
        new = await await_until(lambda: elected(others), 60, "a new leader", interval=0.02)
        t_elected = time.monotonic() - t0
        for c in (agent, sched):
            c.events.clear()
            c._consumed.clear()
        await agent.register(new[0].url, deadline=30)
        await sched.subscribe(new[0].url, deadline=30)
        await sched.next("OFFERS")
        t_offer = time.monotonic() - t0
        print(
            f"\nFAILOVER session_timeout={session_timeout}: new leader elected "
            f"{t_elected:.2f}s, first offer {t_offer:.2f}s after kill -9"
        )
    finally:
        await sched.close()
        await agent.close()


async def test_paused_leader_stops_acting_before_another_leads(ensemble, masters):
    """A leader paused past its session timeout (SIGSTOP: a long GC pause, a frozen VM)
    loses its session while it cannot hear about it. When it resumes it must not act
    (no offers to the framework still connected to it, ``master/elected`` 0) even before
    its ZooKeeper client has learned that the session is gone; then it exits (LOST while
    leading, as Mesos does). Two masters never act as leader at once."""
    zk_url = f"zk://{ensemble.hosts}/paused"
    ms = _start3(masters, zk_url)
    leader = wait_until(lambda: elected(ms), 60, "a leader")[0]
    agent = FakeAgent("host-p", "cpus:2;mem:1024")  # stays with the old leader (no ZK)
    sched = Scheduler("fw-p")
    try:
        await agent.register(leader.url)
        await sched.subscribe(leader.url)
        offer = (await sched.next("OFFERS"))["offers"]["offers"][0]
        # Decline with no filter: an acting leader offers again every round (0.1 s).
        await sched.call("DECLINE", offer_ids=[offer["id"]], filters={"refuse_seconds": 0})
        await sched.next("OFFERS")

        leader.proc.send_signal(signal.SIGSTOP)  # kill() would wait for an exit
        others = [m for m in ms if m is not leader]
        new = await await_until(lambda: elected(others), 30, "a new leader", interval=0.05)
        seen = len(sched.events)
        leader.proc.send_signal(signal.SIGCONT)
        async with httpx.AsyncClient() as c:
            # Right after resuming, before its ZooKeeper client reconnects: not acting.
            try:
                snap = (await c.get(leader.url + "/metrics/snapshot", timeout=5)).json()
                assert snap["master/elected"] == 0.0
            except httpx.TransportError:
                pass  # it already exited
        await await_until(lambda: not leader.alive(), 30, "the old leader exits")
        assert leader.proc is not None and leader.proc.returncode == 1
        late = [e["type"] for e in sched.events[seen:]]
        assert "OFFERS" not in late, late
        # The new leader still leads (its lease may lapse for a moment on a loaded
        # machine, when ZooKeeper answers slowly, but nobody else takes over).
        await await_until(lambda: elected(others) == new, 20, "the new leader to act")
    finally:
        if leader.alive():
            leader.proc.send_signal(signal.SIGCONT)
        await sched.close()
        await agent.close()
