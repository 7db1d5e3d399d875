"""The Marathon store against real Apache ZooKeeper: round trips, limits, races."""

from __future__ import annotations

import time

import pytest
from kazoo.client import KazooClient

from paddock.marathon.groups import GroupInfo
from paddock.marathon.models import (
    Task,
    TaskFailure,
    VersionInfo,
)
from paddock.marathon.planner import build_plan
from paddock.marathon.store import ZNODE_LIMIT, MarathonStore, StoreConflict
from paddock.marathon.validation import checked_app


def version(n: int) -> str:
    return f"2020-01-01T00:00:{n // 1000:02d}.{n % 1000:03d}Z"


def app(app_id: str, v: str, **fields):
    a = checked_app({"id": app_id, "cmd": fields.pop("cmd", "sleep 100"), **fields})
    return a.model_copy(
        update={
            "version": v,
            "version_info": VersionInfo(last_scaling_at=v, last_config_change_at=v),
        }
    )


@pytest.fixture
def store(zk_client, zk_base):
    s = MarathonStore(zk_client, zk_base, max_versions=3)
    s.ensure_layout()
    return s


def test_apps_versions_and_deployments_round_trip(store, zk_client, zk_base):
    empty, token = store.load_root()
    assert empty.apps == {}
    v1 = version(1)
    target = empty.with_apps([app("/ocfweb/web", v1, instances=3), app("/db", v1)], v1)
    target = target.with_group(GroupInfo("/ocfweb", ("/db",)), v1)
    plan = build_plan(empty, target, plan_id="dep-1", version=v1)
    token = store.commit(empty, target, token, deployment=plan)

    # A second store (a fresh marathon) sees the same state.
    fresh = MarathonStore(zk_client, zk_base)
    root, token2 = fresh.load_root()
    assert token2 == token
    assert root.apps == target.apps
    assert root.group("/ocfweb") == target.group("/ocfweb")
    assert root.version == v1
    [stored] = fresh.deployments()
    assert stored.id == "dep-1" and stored.target_version == v1
    again = fresh.plan_of(stored)
    assert again.steps == plan.steps and again.target.apps == target.apps

    fresh.set_deployment_step("dep-1", 2)
    assert fresh.deployments()[0].current_step == 2

    v2 = version(2)
    changed = root.with_app(app("/db", v2, cmd="postgres"), v2)
    token = fresh.commit(root, changed, token, delete_deployments=["dep-1"])
    assert fresh.deployments() == []
    assert fresh.app_versions("/db") == [v2, v1]
    assert fresh.app_version("/db", v1).cmd == "sleep 100"
    assert fresh.app_version("/db", v2).cmd == "postgres"
    assert fresh.root_versions() == [v2, v1]
    assert fresh.root_at(v1).apps["/db"].cmd == "sleep 100"


def test_two_writers_cannot_both_commit(store, zk_client, zk_base, zookeeper):
    other_client = KazooClient(hosts=zookeeper.hosts, timeout=10)
    other_client.start(timeout=20)
    try:
        other = MarathonStore(other_client, zk_base)
        root_a, token_a = store.load_root()
        root_b, token_b = other.load_root()
        v1, v2, v3 = version(10), version(11), version(12)
        store.commit(root_a, root_a.with_app(app("/a", v1), v1), token_a)
        with pytest.raises(StoreConflict):
            other.commit(root_b, root_b.with_app(app("/b", v2), v2), token_b)
        root, token = other.load_root()
        assert sorted(root.apps) == ["/a"]
        with pytest.raises(StoreConflict):  # v2 names the lost attempt's root: write-once
            other.commit(root, root.with_app(app("/b", v2), v2), token)
        other.commit(root, root.with_app(app("/b", v3), v3), token)
        assert sorted(store.load_root()[0].apps) == ["/a", "/b"]
    finally:
        other_client.stop()
        other_client.close()


def test_deleting_a_vanished_deployment_record_conflicts(store):
    root, token = store.load_root()
    v1 = version(20)
    with pytest.raises(StoreConflict):
        store.commit(root, root.with_app(app("/a", v1), v1), token, delete_deployments=["nope"])
    assert store.load_root()[0].apps == {}


def test_instances_failures_and_framework_id(store):
    t1 = Task(id="web.1", app_id="/web", host="127.0.0.1", ports=[31000], state="TASK_RUNNING")
    t2 = Task(id="web.2", app_id="/web", host="127.0.0.2", ports=[31001])
    store.put_instance(t1)
    store.put_instance(t2)
    store.put_instance(t1.model_copy(update={"state": "TASK_KILLING"}))
    assert [t.state for t in store.instances("/web")] == ["TASK_KILLING", "TASK_STAGING"]
    assert store.delete_instance("/web", "web.2") and not store.delete_instance("/web", "web.2")
    assert [t.id for t in store.all_instances()] == ["web.1"]
    failure = TaskFailure(
        app_id="/web",
        task_id="web.2",
        message="boom",
        state="TASK_FAILED",
        timestamp="2020-01-01T00:00:00.000Z",
    )
    store.set_task_failure(failure)
    assert store.task_failure("/web") == failure
    store.clear_task_failure("/web")
    assert store.task_failure("/web") is None
    assert store.framework_id() is None
    store.set_framework_id("fw-1")
    store.set_framework_id("fw-2")
    assert store.framework_id() == "fw-2"


def test_prune_keeps_max_versions_and_everything_referenced(store):
    root, token = store.load_root()
    for n in range(6):
        v = version(100 + n)
        new = root.with_app(app("/a", v, cmd=f"run {n}"), v)
        if n == 0:
            new = new.with_app(app("/keep", v), v)
        token = store.commit(root, new, token)
        root = new
    deleted = store.prune()
    assert deleted > 0
    assert len(store.root_versions()) == 3
    assert len(store.app_versions("/a")) == 3
    # /keep's only version is referenced by the current root: never pruned.
    assert store.app_versions("/keep") == [version(100)]
    assert store.load_root()[0].apps["/keep"].version == version(100)


def test_a_thousand_apps_stay_under_the_znode_limit(store, zk_client, zk_base):
    root, token = store.load_root()
    v1 = version(500)
    apps = [
        app(
            f"/team-{i % 20}/service-{i}",
            v1,
            instances=3,
            env={"SERVICE": f"service-{i}", "DESCRIPTION": "x" * 200},
            labels={"owner": f"team-{i % 20}"},
            constraints=[["hostname", "UNIQUE"]],
            healthChecks=[{"protocol": "HTTP", "path": "/health"}],
        )
        for i in range(1000)
    ]
    target = root.with_apps(apps, v1)
    plan = build_plan(root, target, plan_id="big", version=v1)
    started = time.monotonic()
    store.commit(root, target, token, deployment=plan)
    commit_s = time.monotonic() - started

    fresh = MarathonStore(zk_client, zk_base)
    started = time.monotonic()
    loaded, _ = fresh.load_root()
    load_s = time.monotonic() - started
    assert len(loaded.apps) == 1000 and loaded.apps == target.apps

    sizes = {}
    for path in ("groups/" + v1, "deployments/big"):
        data, _ = zk_client.get(f"{zk_base}/state/{path}")
        sizes[path] = len(data)
    biggest_app = max(
        len(zk_client.get(f"{zk_base}/state/app-versions/{key}/{v1}")[0])
        for key in zk_client.get_children(f"{zk_base}/state/app-versions")[:50]
    )
    print(f"\n1,000 apps: commit {commit_s:.2f}s, load {load_s:.2f}s, sizes {sizes}")
    print(f"largest app version znode: {biggest_app} bytes")
    assert all(size < ZNODE_LIMIT // 16 for size in sizes.values())
    assert fresh.plan_of(fresh.deployments()[0]).steps == plan.steps  # compressed record
    assert biggest_app < 8192
    assert load_s < 20 and commit_s < 60
