"""Pure parts of the scheduler: backoff, deployment decisions (rolling restarts played
out step by step against the capacity bounds), and TaskInfo building."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paddock.marathon.models import AppDefinition
from paddock.marathon.scheduler import deployment_executor as dx
from paddock.marathon.scheduler.launch_queue import LaunchQueue
from paddock.marathon.scheduler.reconciler import explicit_body
from paddock.marathon.scheduler.taskinfo import build_task_info, new_task_id


def app(**kw) -> AppDefinition:
    base = {"id": "/ocfweb/web", "cmd": "sleep 100", "instances": 3, "version": "v2"}
    base.update(kw)
    return AppDefinition.model_validate(base)


# ------------------------------------------------------------------ backoff


def test_backoff_grows_caps_and_resets():
    q = LaunchQueue()
    a = app(backoffSeconds=1, backoffFactor=2, maxLaunchDelaySeconds=5)
    assert q.failed(a, 100.0) == 1
    assert q.failed(a, 100.5) == 2
    assert q.failed(a, 101.0) == 4
    assert q.failed(a, 101.5) == 5  # capped
    assert q.delay_left(a.id, 102.0) == pytest.approx(4.5)
    assert q.reset(a.id)
    assert q.delay_left(a.id, 102.0) == 0


def test_backoff_forgotten_after_quiet_period():
    q = LaunchQueue()
    a = app(backoffSeconds=1, backoffFactor=2, maxLaunchDelaySeconds=5)
    q.failed(a, 0.0)
    q.failed(a, 1.0)  # delay 2
    # quiet for longer than delay + maxLaunchDelay: the next failure starts over
    assert q.failed(a, 1.0 + 2 + 5 + 0.1) == 1
    q.expire({a.id: a}, 100.0)
    assert q.backoffs == {}


def test_queue_launchable_respects_delay():
    q = LaunchQueue()
    a = app()
    q.set_wanted({a.id: (a, 2)}, "t0")
    assert [e.count for e in q.launchable(0.0)] == [2]
    q.failed(a, 0.0)
    assert q.launchable(0.5) == []
    assert len(q.launchable(1.01)) == 1
    q.set_wanted({}, "t1")
    assert not q


# ------------------------------------------------------------------ scale / stop


def V(i, version="v1", healthy=True, running=True, alive=True, started=None):
    return dx.InstanceView(
        f"t{i}", version, started or f"2020-01-01T00:00:{i:02d}.000Z", alive, running, healthy
    )


def test_scale_up_then_done_when_all_healthy():
    d = dx.scale_decision(3, [V(1)])
    assert d.kills == [] and d.launch == 2 and not d.done
    d = dx.scale_decision(3, [V(1), V(2), V(3, healthy=None)])
    assert d.launch == 0 and not d.done
    assert dx.scale_decision(3, [V(1), V(2), V(3)]).done


def test_scale_down_kills_youngest_and_sentenced_first():
    views = [V(1), V(2), V(3), V(4)]
    assert dx.scale_decision(2, views).kills == ["t4", "t3"]
    assert dx.scale_decision(2, views, "OLDEST_FIRST").kills == ["t1", "t2"]
    assert dx.scale_decision(3, views, sentenced=["t1"]).kills == ["t1"]
    # a non-running surplus instance goes before running ones
    views = [V(1), V(2), V(3, running=False, healthy=False)]
    assert dx.scale_decision(2, views).kills == ["t3"]
    # done only once the killed ones are gone
    assert not dx.scale_decision(2, [V(1), V(2), V(3, alive=False)]).done


def test_stop():
    d = dx.stop_decision([V(1), V(2, alive=False)])
    assert d.kills == ["t1"] and not d.done
    assert dx.stop_decision([]).done


# ------------------------------------------------------------------ rolling restarts


def play_restart(n, mhc, moc, old_count=None, order=None):
    """Run restart_decision until done, turning one new instance healthy per round.
    Returns the (old, new) alive counts seen and checks Marathon's bounds throughout."""
    old_count = n if old_count is None else old_count
    views = {f"o{i}": V(i, "v1") for i in range(old_count)}
    views = {k: dx.InstanceView(k, "v1", v.started_at) for k, v in views.items()}
    min_healthy, max_capacity = dx.capacity(n, mhc, moc)
    seq = 0
    history = []
    for _round in range(10 * (n + old_count + 2)):
        d = dx.restart_decision(n, "v2", mhc, moc, list(views.values()))
        for k in d.kills:
            del views[k]  # killed (we model the kill as immediate)
        for _ in range(d.launch):
            seq += 1
            k = f"n{seq}"
            views[k] = dx.InstanceView(k, "v2", f"2021-{seq:04d}", True, False, None)
        old = [v for v in views.values() if v.version == "v1"]
        new = [v for v in views.values() if v.version == "v2"]
        healthy = [v for v in views.values() if v.healthy]
        history.append((len(old), len(new)))
        assert len(old) + len(new) <= max(max_capacity, old_count), (n, mhc, moc, history)
        if old:  # while old instances last, capacity never drops below minHealthy
            assert len(healthy) >= min(min_healthy, old_count), (n, mhc, moc, history)
        if d.done:
            assert not old and len(new) == n and all(v.healthy for v in new)
            return history
        starting = [v for v in new if not v.healthy]
        if starting:  # one new instance becomes running and healthy
            v = starting[0]
            views[v.id] = dx.InstanceView(v.id, "v2", v.started_at, True, True, True)
    raise AssertionError(f"restart did not finish: {history}")


@pytest.mark.parametrize(
    "n,mhc,moc",
    [(3, 1.0, 1.0), (3, 1.0, 0.0), (3, 0.5, 0.0), (3, 0.0, 0.0), (10, 0.6, 0.2), (1, 1.0, 0.0),
     (5, 0.0, 1.0)],
)  # fmt: skip
def test_rolling_restart_respects_bounds(n, mhc, moc):
    history = play_restart(n, mhc, moc)
    if mhc == 1.0 and moc == 1.0:
        assert history[0] == (n, n)  # all new ones start beside the old ones
    if mhc == 1.0 and moc == 0.0:
        assert history[0] == (n, 1)  # one extra instance at a time
    if mhc == 0.0:
        assert history[0][0] == 0  # everything old killed at once


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 12),
    mhc=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]),
    moc=st.sampled_from([0.0, 0.2, 0.5, 1.0]),
    old=st.integers(0, 14),
)
def test_rolling_restart_always_finishes_within_bounds(n, mhc, moc, old):
    play_restart(n, mhc, moc, old)


def test_restart_capacity_matches_marathon_formula():
    assert dx.capacity(10, 0.6, 0.2) == (math.ceil(6), 12)
    assert dx.capacity(3, 1.0, 0.0) == (3, 4)  # equal: one extra allowed


def test_restart_never_kills_unknown_health_old_while_replacing():
    # Right after a failover nothing is known about health: nothing old is killed,
    # new instances are started within capacity.
    views = [dx.InstanceView(f"o{i}", "v1", "t", True, True, None) for i in range(3)]
    d = dx.restart_decision(3, "v2", 1.0, 0.0, views)
    assert d.kills == [] and d.launch == 1


# ------------------------------------------------------------------ task info


def test_task_id_shape():
    tid = new_task_id("/ocfweb/web", random.Random(3))
    prefix, unique = tid.split(".", 1)
    assert prefix == "ocfweb_web"
    assert len(unique) == 36 and unique[14] == "4"


def test_task_info_command_env_resources_kill_policy_checks():
    a = app(
        cmd="python3 -m http.server $PORT0",
        cpus=0.5,
        mem=64,
        disk=10,
        env={"A": "b"},
        labels={"team": "web"},
        portDefinitions=[{"port": 0, "name": "http"}],
        taskKillGracePeriodSeconds=7,
        healthChecks=[{"protocol": "COMMAND", "command": {"value": "true"}}],
    )
    info = build_task_info(a, "ocfweb_web.x", "agent-1", [31005])
    assert info["task_id"] == {"value": "ocfweb_web.x"}
    assert info["agent_id"] == {"value": "agent-1"}
    res = {r["name"]: r for r in info["resources"]}
    assert res["cpus"]["scalar"]["value"] == 0.5
    assert res["mem"]["scalar"]["value"] == 64
    assert res["disk"]["scalar"]["value"] == 10
    assert res["ports"]["ranges"]["range"] == [{"begin": 31005, "end": 31005}]
    assert info["command"]["shell"] is True
    assert info["command"]["value"] == "python3 -m http.server $PORT0"
    env = {v["name"]: v["value"] for v in info["command"]["environment"]["variables"]}
    assert env["A"] == "b"
    assert env["MARATHON_APP_ID"] == "/ocfweb/web"
    assert env["MARATHON_APP_VERSION"] == "v2"
    assert env["PORT0"] == "31005" and env["PORTS"] == "31005" and env["PORT_HTTP"] == "31005"
    assert info["labels"]["labels"] == [{"key": "team", "value": "web"}]
    assert info["kill_policy"]["grace_period"]["nanoseconds"] == 7_000_000_000
    assert info["health_check"]["type"] == "COMMAND"
    assert info["health_check"]["command"]["value"] == "true"


def test_task_info_args_and_docker_bridge():
    a = app(
        cmd=None,
        args=["nginx", "-g", "daemon off;"],
        container={
            "type": "DOCKER",
            "docker": {"image": "nginx:1"},
            "portMappings": [{"containerPort": 80, "hostPort": 0}],
        },
        networks=[{"mode": "container/bridge"}],
    )
    info = build_task_info(a, "ocfweb_web.y", "agent-1", [31010])
    assert info["command"]["shell"] is False
    assert info["command"]["arguments"] == ["nginx", "-g", "daemon off;"]
    docker = info["container"]["docker"]
    assert info["container"]["type"] == "DOCKER"
    assert docker["image"] == "nginx:1" and docker["network"] == "BRIDGE"
    assert docker["port_mappings"] == [
        {"host_port": 31010, "container_port": 80, "protocol": "tcp"}
    ]


def test_reconcile_body():
    body = explicit_body([("t1", "a1"), ("t2", "")])
    assert body["tasks"][0] == {"task_id": {"value": "t1"}, "agent_id": {"value": "a1"}}
    assert body["tasks"][1] == {"task_id": {"value": "t2"}}
