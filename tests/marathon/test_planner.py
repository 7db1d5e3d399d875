"""Deployment plans (Marathon's DeploymentPlan.apply) and rolling-upgrade arithmetic."""

from __future__ import annotations

import pytest

from paddock.marathon.groups import GroupInfo, RootGroup, parse_group_update
from paddock.marathon.models import (
    InvalidObject,
    VersionInfo,
)
from paddock.marathon.planner import (
    build_plan,
    instances_to_start,
    launch_delay,
    restart_strategy,
    revert_root,
    rolling_upgrade_timeline,
    select_kills,
)
from paddock.marathon.validation import checked_app

V0, V1, V2 = "2020-01-01T00:00:00.000Z", "2020-01-02T00:00:00.000Z", "2020-01-03T00:00:00.000Z"


def app(app_id: str, version: str = V0, **fields):
    body = {"id": app_id, "cmd": fields.pop("cmd", "sleep 1000"), **fields}
    a = checked_app(body)
    return a.model_copy(
        update={
            "version": version,
            "version_info": VersionInfo(last_scaling_at=version, last_config_change_at=version),
        }
    )


def actions(plan):
    return [[(a.action, a.app) for a in s.actions] for s in plan.steps]


def test_new_apps_start_at_zero_then_scale_in_dependency_order():
    target = RootGroup.empty(V1).with_apps(
        [
            app("/shop/db", V1),
            app("/shop/cache", V1),
            app("/shop/api", V1, dependencies=["/shop/db", "/shop/cache"]),
            app("/shop/web", V1, dependencies=["/shop/api"]),
        ],
        V1,
    )
    plan = build_plan(RootGroup.empty(V0), target, plan_id="p1", version=V1)
    assert actions(plan) == [
        [("StartApplication", a) for a in ["/shop/api", "/shop/cache", "/shop/db", "/shop/web"]],
        [("ScaleApplication", "/shop/cache"), ("ScaleApplication", "/shop/db")],
        [("ScaleApplication", "/shop/api")],
        [("ScaleApplication", "/shop/web")],
    ]
    assert plan.steps[1].actions[0].scale_to == 1
    assert plan.affected_apps == ["/shop/api", "/shop/cache", "/shop/db", "/shop/web"]
    status = plan.status_json(current_step=1)
    assert status["totalSteps"] == 4 and status["currentStep"] == 1
    assert status["currentActions"][0] == {
        "action": "StartApplication",
        "app": "/shop/api",
        "readinessCheckResults": [],
    }


def test_group_dependencies_order_every_app_inside():
    root = RootGroup.empty(V1).with_apps(
        [app("/data/pg", V1), app("/data/redis", V1), app("/web/a", V1), app("/web/b", V1)], V1
    )
    root = root.with_group(GroupInfo("/web", dependencies=("/data",)), V1)
    assert root.dependency_map()["/web/a"] == {"/data/pg", "/data/redis"}
    plan = build_plan(RootGroup.empty(V0), root, plan_id="p", version=V1)
    assert actions(plan)[1:] == [
        [("ScaleApplication", "/data/pg"), ("ScaleApplication", "/data/redis")],
        [("ScaleApplication", "/web/a"), ("ScaleApplication", "/web/b")],
    ]


def test_scale_restart_stop_and_unchanged():
    original = RootGroup.empty(V0).with_apps([app("/a"), app("/b"), app("/c"), app("/d")], V0)
    target = original.with_apps(
        [
            original.apps["/a"].model_copy(update={"instances": 5, "version": V1}),
            app("/b", V1, cmd="sleep 2000"),
        ],
        V1,
    ).without_app("/c", V1)
    plan = build_plan(original, target, plan_id="p", version=V1)
    assert actions(plan) == [
        [("StopApplication", "/c")],
        [("ScaleApplication", "/a"), ("RestartApplication", "/b")],
    ]
    assert plan.steps[1].actions[0].scale_to == 5


def test_restart_is_a_new_config_change_time_only():
    original = RootGroup.empty(V0).with_app(app("/a"), V0)
    restarted = app("/a", V1)  # same config, new lastConfigChangeAt
    plan = build_plan(original, original.with_app(restarted, V1), plan_id="p", version=V1)
    assert actions(plan) == [[("RestartApplication", "/a")]]


def test_scale_to_zero_is_a_scale_even_with_config_change():
    original = RootGroup.empty(V0).with_app(app("/a", instances=3), V0)
    target = original.with_app(app("/a", V1, instances=0, cmd="other"), V1)
    plan = build_plan(original, target, plan_id="p", version=V1)
    assert actions(plan) == [[("ScaleApplication", "/a")]]


def test_to_kill_sentences_tasks_in_the_scale_action():
    original = RootGroup.empty(V0).with_app(app("/a", instances=3), V0)
    target = original.with_app(original.apps["/a"].model_copy(update={"instances": 2}), V1)
    plan = build_plan(original, target, plan_id="p", version=V1, to_kill={"/a": ["a.1"]})
    assert plan.steps[0].actions[0].kill_tasks == ("a.1",)


def test_identical_roots_give_an_empty_plan():
    root = RootGroup.empty(V0).with_app(app("/a"), V0)
    assert build_plan(root, root, plan_id="p", version=V1).is_empty


def test_revert_undoes_adds_removes_and_changes_but_keeps_others():
    original = RootGroup.empty(V0).with_apps([app("/a"), app("/b")], V0)
    target = original.with_app(app("/new/x", V1), V1).without_app("/a", V1)
    target = target.with_app(app("/b", V1, cmd="changed"), V1)
    plan = build_plan(original, target, plan_id="p", version=V1)
    later = target.with_app(app("/other", V2), V2)  # another deployment's change
    reverted = revert_root(plan, later, V2)
    assert sorted(reverted.apps) == ["/a", "/b", "/other"]
    assert reverted.apps["/b"].cmd == "sleep 1000"
    assert "/new" not in reverted.groups


def test_dependency_cycle_is_found():
    root = RootGroup.empty(V0).with_apps(
        [
            app("/a", dependencies=["/b"]),
            app("/b", dependencies=["/c"]),
            app("/c", dependencies=["/a"]),
        ],
        V0,
    )
    cycle = root.dependency_cycle()
    assert cycle is not None and cycle[0] == cycle[-1] and len(cycle) == 4
    assert RootGroup.empty(V0).with_app(app("/a"), V0).dependency_cycle() is None


def test_group_tree_json_and_scale_by():
    root = RootGroup.empty(V0).with_apps(
        [app("/ocfweb/web", instances=3), app("/ocfweb/worker"), app("/x")], V0
    )
    tree = root.to_json()
    assert [a["id"] for a in tree["apps"]] == ["/x"]
    assert tree["groups"][0]["id"] == "/ocfweb"
    assert [a["id"] for a in tree["groups"][0]["apps"]] == ["/ocfweb/web", "/ocfweb/worker"]
    scaled = root.scaled("/ocfweb", 1.5, V1)
    assert scaled.apps["/ocfweb/web"].instances == 5  # ceil(4.5)
    assert scaled.apps["/ocfweb/worker"].instances == 2
    assert scaled.apps["/x"].instances == 1
    gone = root.without_group("/ocfweb", V1)
    assert sorted(gone.apps) == ["/x"] and "/ocfweb" not in gone.groups


def test_group_body_paths_name_every_nested_problem():
    body = {
        "id": "/shop",
        "apps": [{"id": "web", "cmd": "x", "cpus": 0}, {"id": "/elsewhere/y", "cmd": "x"}],
        "groups": [{"id": "db", "apps": [{"id": "pg", "mem": -5, "cmd": "x"}]}],
    }
    with pytest.raises(InvalidObject) as info:
        parse_group_update(body, "/shop")
    got = {d.path: d.errors for d in info.value.details}
    assert got["/apps(0)/cpus"] == ["got 0.0, expected 0.001 or more"]
    assert got["/apps(1)/id"] == ["identifier /elsewhere/y is not child of /shop"]
    assert got["/groups(0)/apps(0)/mem"] == ["got -5.0, expected 0 or more"]
    ok = parse_group_update(
        {"apps": [{"id": "web", "cmd": "x"}], "groups": [{"id": "db"}]}, "/shop"
    )
    assert ok.apps is not None and ok.apps[0].id == "/shop/web"
    assert ok.groups is not None and ok.groups[0].id == "/shop/db"


# ------------------------------------------------------------------------ rolling arithmetic

# (instances, minimumHealthCapacity, maximumOverCapacity) -> (kill at once, max capacity, peak)
ROLLING_TABLE = [
    # minimumHealthCapacity 0: every old instance may go before the new version starts.
    (4, 0.0, 0.0, 4, 4, 4),
    # 1 / 1 (defaults): all new instances side by side with the old, then the old go.
    (4, 1.0, 1.0, 0, 8, 8),
    # deployments.md: 3 instances at 0.7 -> ceil(2.1) = 3, so all instances remain.
    (3, 0.7, 1.0, 0, 6, 6),
    # minHealthy == maxCapacity: one extra instance is allowed so the restart can begin.
    (3, 1.0, 0.0, 0, 4, 4),
    # deployments.md: db 10 at 0.6 runs 6 old + 6 new = 12 side by side (over-capacity 0.2),
    (10, 0.6, 0.2, 4, 12, 12),
    # and app 20 at 0.8 runs 16 old + 16 new = 32 (over-capacity 0.6).
    (20, 0.8, 0.6, 4, 32, 32),
    # 0.5 / 0: kill half, replace within the original footprint.
    (10, 0.5, 0.0, 5, 10, 10),
]


@pytest.mark.parametrize(("n", "mhc", "moc", "kill", "cap", "peak"), ROLLING_TABLE)
def test_rolling_upgrade_table(n, mhc, moc, kill, cap, peak):
    strategy = restart_strategy(n, mhc, moc, healthy_running=n)
    assert (strategy.kill_immediately, strategy.max_capacity) == (kill, cap)
    timeline = rolling_upgrade_timeline(n, mhc, moc)
    assert max(p.old + p.new for p in timeline) == peak
    assert timeline[-1].old == 0 and timeline[-1].new == n
    min_healthy = -(-int(n * mhc * 1000) // 1000)
    for p in timeline[1:]:
        # healthy = old survivors + new ones already healthy; never below minHealthy
        assert p.old + p.new >= min(min_healthy, n)
        assert p.old + p.new <= cap


def test_shrinking_restart_kills_the_surplus_at_once():
    s = restart_strategy(2, 1.0, 1.0, healthy_running=5, current_count=5)
    assert s.kill_immediately == 3


def test_resident_app_kills_one_more_instead_of_over_capacity():
    s = restart_strategy(3, 1.0, 0.0, healthy_running=3, resident=True)
    assert (s.kill_immediately, s.max_capacity) == (1, 3)


def test_instances_to_start_respects_capacity():
    s = restart_strategy(10, 0.6, 0.2, healthy_running=10)
    assert instances_to_start(s, 10, old_active=6, started=0) == 6
    assert instances_to_start(s, 10, old_active=5, started=6) == 1
    assert instances_to_start(s, 10, old_active=0, started=10) == 0


def test_kill_selection():
    tasks = [("t1", "2020-01-01"), ("t2", "2020-01-03"), ("t3", "2020-01-02")]
    assert select_kills(tasks, 2, "YOUNGEST_FIRST") == ["t2", "t3"]
    assert select_kills(tasks, 2, "OLDEST_FIRST") == ["t1", "t3"]
    assert select_kills(tasks, 2, "YOUNGEST_FIRST", sentenced=["t1"]) == ["t1", "t2"]


def test_launch_delay_grows_by_factor_up_to_the_maximum():
    assert launch_delay(1, 1.15, 300, 0) == 0.0
    assert launch_delay(1, 1.15, 300, 1) == 1.0
    assert launch_delay(1, 1.15, 300, 2) == pytest.approx(1.15)
    assert launch_delay(1, 2, 300, 5) == 16.0
    assert launch_delay(1, 2, 300, 50) == 300.0
