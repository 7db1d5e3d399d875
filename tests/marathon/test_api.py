"""The Marathon REST API through httpx's ASGI transport, state in real ZooKeeper."""

from __future__ import annotations

import random

import httpx
import pytest

from paddock.marathon.api import create_api, instant_service
from paddock.marathon.scheduler_iface import QueueEntry

OCFWEB = {
    "id": "/ocfweb/web",
    "cpus": 1,
    "mem": 1024,
    "instances": 3,
    "container": {"type": "DOCKER", "docker": {"image": "docker.ocf.berkeley.edu/ocfweb-web:1"}},
    "healthChecks": [{"protocol": "HTTP", "path": "/", "gracePeriodSeconds": 30}],
    "constraints": [["hostname", "UNIQUE"], ["nfs", "CLUSTER", "true"]],
}


def make_client(zk_client, zk_base, **opts):
    service, core = instant_service(zk_client, zk_base, rng=random.Random(7), **opts)
    app = create_api(service)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://marathon")
    return client, service, core


@pytest.fixture
async def api(zk_client, zk_base):
    client, service, core = make_client(zk_client, zk_base)
    async with client:
        yield client, service, core


@pytest.fixture
async def held(zk_client, zk_base):
    """Deployments stay running until the test completes them."""
    client, service, core = make_client(zk_client, zk_base, auto_complete=False)
    async with client:
        yield client, service, core


async def test_create_get_and_list_the_seed_app(api):
    client, _, _ = api
    r = await client.post("/v2/apps", json=OCFWEB)
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == "/v2/apps/ocfweb/web"
    created = r.json()
    assert r.headers["Marathon-Deployment-Id"]
    assert created["id"] == "/ocfweb/web" and created["instances"] == 3
    assert created["version"] and created["versionInfo"]["lastConfigChangeAt"] == created["version"]
    assert created["healthChecks"][0]["intervalSeconds"] == 60
    # A service port from 10000..20000 was assigned to the default port definition.
    assert 10000 <= created["portDefinitions"][0]["port"] <= 20000

    r = await client.get("/v2/apps/ocfweb/web")
    app = r.json()["app"]
    assert (app["tasksRunning"], app["tasksHealthy"], app["tasksUnhealthy"]) == (3, 3, 0)
    assert len(app["tasks"]) == 3 and app["deployments"] == []
    assert all(t["id"].startswith("ocfweb_web.") for t in app["tasks"])

    r = await client.post("/v2/apps", json=OCFWEB)
    assert r.status_code == 409
    assert r.json() == {"message": "An app with id [/ocfweb/web] already exists."}

    await client.post(
        "/v2/apps", json={"id": "/tools/cron", "cmd": "run-cron", "labels": {"owner": "ops"}}
    )
    r = await client.get("/v2/apps")
    assert [a["id"] for a in r.json()["apps"]] == ["/ocfweb/web", "/tools/cron"]
    assert "tasks" not in r.json()["apps"][0]
    r = await client.get("/v2/apps", params={"embed": "apps.tasks", "cmd": "cron"})
    [cron] = r.json()["apps"]
    assert cron["id"] == "/tools/cron" and len(cron["tasks"]) == 1
    assert [a["id"] for a in (await client.get("/v2/apps?id=ocfweb")).json()["apps"]] == [
        "/ocfweb/web"
    ]
    assert [a["id"] for a in (await client.get("/v2/apps?label=owner==ops")).json()["apps"]] == [
        "/tools/cron"
    ]
    assert (await client.get("/v2/apps?label=owner!=ops")).json()["apps"][0]["id"] == "/ocfweb/web"


async def test_errors_have_marathons_shapes(api):
    client, _, _ = api
    r = await client.get("/v2/apps/nope/x")
    assert r.status_code == 404 and r.json() == {"message": "App '/nope/x' does not exist"}
    r = await client.post("/v2/apps", content=b"{not json")
    assert r.status_code == 400 and r.json()["message"] == "Invalid JSON"
    r = await client.post("/v2/apps", json={"id": 12, "cpus": "one"})
    assert r.status_code == 400
    assert {d["path"] for d in r.json()["details"]} == {"/id", "/cpus"}
    r = await client.post(
        "/v2/apps",
        json={
            "id": "/Bad",
            "cmd": "x",
            "cpus": 0,
            "mem": -1,
            "upgradeStrategy": {"minimumHealthCapacity": 1.2},
            "constraints": [["hostname", "UNIQUE", "x"]],
        },
    )
    assert r.status_code == 422
    body = r.json()
    assert body["message"] == "Object is not valid"
    assert {d["path"] for d in body["details"]} == {
        "/id",
        "/cpus",
        "/mem",
        "/upgradeStrategy/minimumHealthCapacity",
        "/constraints(0)",
    }
    r = await client.delete("/v2/apps/nope")
    assert r.status_code == 404
    r = await client.get("/v2/apps?force=maybe")  # unknown params are ignored
    assert r.status_code == 200
    r = await client.delete("/v2/apps/x?force=maybe")
    assert r.status_code == 400 and r.json()["message"] == "Invalid parameters"


async def test_scale_update_restart_rollback_and_versions(api):
    client, _, _ = api
    await client.post("/v2/apps", json={"id": "/web", "cmd": "serve", "instances": 2})
    v1 = (await client.get("/v2/apps/web")).json()["app"]["version"]
    first_tasks = {t["id"] for t in (await client.get("/v2/apps/web/tasks")).json()["tasks"]}

    r = await client.put("/v2/apps/web", json={"instances": 4})
    assert r.status_code == 200 and set(r.json()) == {"deploymentId", "version"}
    assert r.headers["Marathon-Deployment-Id"] == r.json()["deploymentId"]
    app = (await client.get("/v2/apps/web")).json()["app"]
    assert app["instances"] == 4 and app["cmd"] == "serve" and len(app["tasks"]) == 4
    assert app["versionInfo"]["lastConfigChangeAt"] == v1  # a scale is not a config change
    tasks = {t["id"] for t in app["tasks"]}
    assert first_tasks <= tasks  # scaling kept the old tasks

    r = await client.patch("/v2/apps/web", json={"cmd": "serve --fast"})
    assert r.status_code == 200
    app = (await client.get("/v2/apps/web")).json()["app"]
    assert app["cmd"] == "serve --fast" and app["instances"] == 4
    assert not tasks & {t["id"] for t in app["tasks"]}  # a config change replaced them all

    before = {t["id"] for t in app["tasks"]}
    r = await client.post("/v2/apps/web/restart")
    assert r.status_code == 200
    after = (await client.get("/v2/apps/web")).json()["app"]
    assert not before & {t["id"] for t in after["tasks"]}
    assert after["cmd"] == "serve --fast"

    versions = (await client.get("/v2/apps/web/versions")).json()["versions"]
    assert len(versions) == 4 and versions[-1] == v1 and versions == sorted(versions, reverse=True)
    old = (await client.get(f"/v2/apps/web/versions/{v1}")).json()
    assert old["cmd"] == "serve" and old["instances"] == 2

    r = await client.put("/v2/apps/web", json={"version": v1})
    assert r.status_code == 200
    app = (await client.get("/v2/apps/web")).json()["app"]
    assert app["cmd"] == "serve" and app["instances"] == 2 and len(app["tasks"]) == 2

    r = await client.put("/v2/apps/new-one", json={"cmd": "x"})
    assert r.status_code == 201  # PUT creates a missing app
    r = await client.put(
        "/v2/apps", json=[{"id": "/web", "instances": 1}, {"id": "/bulk", "cmd": "y"}]
    )
    assert r.status_code == 200
    ids = [a["id"] for a in (await client.get("/v2/apps")).json()["apps"]]
    assert ids == ["/bulk", "/new-one", "/web"]

    r = await client.delete("/v2/apps/web")
    assert r.status_code == 200 and "deploymentId" in r.json()
    assert (await client.get("/v2/apps/web")).status_code == 404


async def test_task_kills_with_and_without_scale(api):
    client, _, _ = api
    await client.post("/v2/apps", json={"id": "/w", "cmd": "x", "instances": 3})
    tasks = (await client.get("/v2/apps/w/tasks")).json()["tasks"]

    r = await client.delete(f"/v2/apps/w/tasks/{tasks[0]['id']}")
    assert r.status_code == 200 and r.json()["task"]["id"] == tasks[0]["id"]
    now = (await client.get("/v2/apps/w")).json()["app"]
    assert now["instances"] == 3 and len(now["tasks"]) == 3  # replaced
    assert tasks[0]["id"] not in {t["id"] for t in now["tasks"]}

    victim = now["tasks"][1]["id"]
    r = await client.delete(f"/v2/apps/w/tasks/{victim}?scale=true")
    assert r.status_code == 200 and "deploymentId" in r.json()
    now = (await client.get("/v2/apps/w")).json()["app"]
    assert now["instances"] == 2 and victim not in {t["id"] for t in now["tasks"]}

    r = await client.post("/v2/tasks/delete?scale=true", json={"ids": [now["tasks"][0]["id"]]})
    assert r.status_code == 200 and "deploymentId" in r.json()
    assert (await client.get("/v2/apps/w")).json()["app"]["instances"] == 1
    r = await client.post("/v2/tasks/delete", json={"ids": ["not-a-task-id"]})
    assert r.status_code == 400

    r = await client.delete("/v2/apps/w/tasks?scale=true")
    assert r.status_code == 200
    assert (await client.get("/v2/apps/w")).json()["app"]["instances"] == 0
    r = await client.delete("/v2/apps/w/tasks/w.unknown")
    assert r.status_code == 404


async def test_task_lists_json_status_filter_and_text(api):
    client, _, _ = api
    await client.post(
        "/v2/apps",
        json={
            "id": "/a/b",
            "cmd": "x",
            "instances": 2,
            "portDefinitions": [{"port": 0}, {"port": 0}],
        },
    )
    await client.post("/v2/apps", json={"id": "/noports", "cmd": "x", "portDefinitions": []})
    all_tasks = (await client.get("/v2/tasks")).json()["tasks"]
    assert len(all_tasks) == 3
    assert len((await client.get("/v2/tasks?status=running")).json()["tasks"]) == 3
    assert (await client.get("/v2/tasks?status=staging")).json()["tasks"] == []
    r = await client.get("/v2/apps/a/b/tasks", headers={"Accept": "text/plain"})
    assert r.headers["content-type"].startswith("text/plain")
    lines = r.text.splitlines()
    app = (await client.get("/v2/apps/a/b")).json()["app"]
    sp = [p["port"] for p in app["portDefinitions"]]
    assert [line.split("\t")[:2] for line in lines] == [["a_b", str(sp[0])], ["a_b", str(sp[1])]]
    assert all(len(line.split("\t")) == 5 for line in lines)  # id, port, 2 tasks, trailing tab
    text = (await client.get("/v2/tasks", headers={"Accept": "text/plain"})).text
    assert "noports\t \t127.0.0.1\t" in text


async def test_deployment_locks_force_and_rollback(held):
    client, _, core = held
    r = await client.post("/v2/apps", json={"id": "/locked", "cmd": "x", "instances": 2})
    assert r.status_code == 201
    dep1 = r.headers["Marathon-Deployment-Id"]
    deps = (await client.get("/v2/deployments")).json()
    assert [d["id"] for d in deps] == [dep1]
    assert deps[0]["affectedApps"] == ["/locked"] and deps[0]["totalSteps"] == 2
    assert [s["actions"][0]["action"] for s in deps[0]["steps"]] == [
        "StartApplication",
        "ScaleApplication",
    ]
    app = (await client.get("/v2/apps/locked")).json()["app"]
    assert app["deployments"] == [{"id": dep1}]

    r = await client.put("/v2/apps/locked", json={"instances": 5})
    assert r.status_code == 409
    assert r.json()["deployments"] == [{"id": dep1}]
    assert "locked by one or more deployments" in r.json()["message"]

    r = await client.put("/v2/apps/locked?force=true", json={"instances": 5})
    assert r.status_code == 200
    dep2 = r.json()["deploymentId"]
    assert [d["id"] for d in (await client.get("/v2/deployments")).json()] == [dep2]
    assert core.pending() == [dep2]

    # Rolling back dep2 starts a new deployment restoring instances=2.
    r = await client.delete(f"/v2/deployments/{dep2}")
    assert r.status_code == 200
    dep3 = r.json()["deploymentId"]
    assert [d["id"] for d in (await client.get("/v2/deployments")).json()] == [dep3]
    assert (await client.get("/v2/apps/locked")).json()["app"]["instances"] == 2

    r = await client.delete(f"/v2/deployments/{dep3}?force=true")
    assert r.status_code == 202 and r.content == b""
    assert (await client.get("/v2/deployments")).json() == []
    assert (await client.delete("/v2/deployments/nope")).status_code == 404

    r = await client.post("/v2/apps/locked/restart")
    assert r.status_code == 200
    core.complete(r.json()["deploymentId"])
    assert (await client.get("/v2/deployments")).json() == []
    assert len((await client.get("/v2/apps/locked")).json()["app"]["tasks"]) == 2


async def test_groups(api):
    client, _, _ = api
    body = {
        "id": "/shop",
        "apps": [{"id": "web", "cmd": "web", "instances": 2, "dependencies": ["../shop/db"]}],
        "groups": [{"id": "db", "apps": [{"id": "pg", "cmd": "postgres"}]}],
    }
    r = await client.post("/v2/groups", json=body)
    assert r.status_code == 201, r.text
    assert (await client.post("/v2/groups", json=body)).status_code == 409

    tree = (await client.get("/v2/groups")).json()
    assert tree["id"] == "/" and tree["groups"][0]["id"] == "/shop"
    shop = (await client.get("/v2/groups/shop")).json()
    assert [a["id"] for a in shop["apps"]] == ["/shop/web"]
    assert shop["apps"][0]["dependencies"] == ["/shop/db"]
    assert shop["groups"][0]["apps"][0]["id"] == "/shop/db/pg"
    v1 = shop["version"]

    r = await client.put("/v2/groups/shop?dryRun=true", json={"scaleBy": 2})
    assert r.status_code == 200 and r.json()["steps"][0]["actions"]
    assert (await client.get("/v2/apps/shop/web")).json()["app"]["instances"] == 2
    r = await client.put("/v2/groups/shop", json={"scaleBy": 2})
    assert r.status_code == 200
    assert (await client.get("/v2/apps/shop/web")).json()["app"]["instances"] == 4
    assert (await client.get("/v2/apps/shop/db/pg")).json()["app"]["instances"] == 2

    r = await client.put("/v2/groups/shop", json={"version": v1})
    assert r.status_code == 200
    assert (await client.get("/v2/apps/shop/web")).json()["app"]["instances"] == 2

    # PUT with apps replaces the group's direct apps.
    r = await client.put("/v2/groups/shop", json={"apps": [{"id": "api", "cmd": "api"}]})
    assert r.status_code == 200
    assert [a["id"] for a in (await client.get("/v2/groups/shop")).json()["apps"]] == ["/shop/api"]
    assert (await client.get("/v2/apps/shop/db/pg")).status_code == 200

    r = await client.put("/v2/groups/shop", json={"apps": [{"id": "x", "cpus": -1, "cmd": "x"}]})
    assert r.status_code == 422 and r.json()["details"][0]["path"] == "/apps(0)/cpus"
    r = await client.put(
        "/v2/groups/cyc",
        json={
            "apps": [
                {"id": "a", "cmd": "a", "dependencies": ["b"]},
                {"id": "b", "cmd": "b", "dependencies": ["a"]},
            ]
        },
    )
    assert r.status_code == 422

    assert len((await client.get("/v2/groups/shop/versions")).json()["versions"]) >= 4
    r = await client.delete("/v2/groups/shop")
    assert r.status_code == 200
    assert (await client.get("/v2/groups/shop")).status_code == 404
    assert (await client.get("/v2/apps")).json()["apps"] == []
    assert (await client.delete("/v2/groups/shop")).status_code == 404


async def test_queue_info_leader_ping_metrics(api):
    client, _, core = api
    await client.post("/v2/apps", json={"id": "/waiting", "cmd": "x"})
    summary = {
        "processedOffersCount": 3,
        "unusedOffersCount": 3,
        "rejectSummaryLastOffers": [
            {"reason": "InsufficientMemory", "declined": 3, "processed": 3}
        ],
    }
    core.queue_entries = [
        QueueEntry("/waiting", 2, "2020-01-01T00:00:00.000Z", 7.5, False, summary)
    ]
    q = (await client.get("/v2/queue")).json()["queue"]
    assert q[0]["app"]["id"] == "/waiting" and q[0]["count"] == 2
    assert q[0]["delay"] == {"timeLeftSeconds": 8, "overdue": False}
    assert (
        q[0]["processedOffersSummary"]["rejectSummaryLastOffers"][0]["reason"]
        == "InsufficientMemory"
    )
    assert (
        "lastUnusedOffers"
        in (await client.get("/v2/queue?embed=lastUnusedOffers")).json()["queue"][0]
    )
    assert (await client.delete("/v2/queue/waiting/delay")).status_code == 204
    assert (await client.get("/v2/queue")).json()["queue"][0]["delay"]["timeLeftSeconds"] == 0
    assert (await client.delete("/v2/queue/nope/delay")).status_code == 404

    info = (await client.get("/v2/info")).json()
    assert info["name"] == "marathon" and info["elected"] is True
    assert info["leader"] == "127.0.0.1:8080"
    assert info["zookeeper_config"]["zk_max_versions"] == 50
    assert (await client.get("/v2/leader")).json() == {"leader": "127.0.0.1:8080"}
    assert (await client.delete("/v2/leader")).json() == {"message": "Leadership abdicated"}
    r = await client.get("/ping")
    assert r.text == "pong"
    m = (await client.get("/metrics")).json()
    assert m["gauges"]["marathon.apps.active.gauge"]["value"] == 1
    assert "marathon_apps_active_gauge 1" in (await client.get("/metrics/prometheus")).text
    r = await client.get("/v2/events")
    assert r.status_code == 405


async def test_openapi_document_describes_the_api(api):
    client, _, _ = api
    doc = (await client.get("/openapi.json")).json()
    paths = doc["paths"]
    for path in (
        "/v2/apps",
        "/v2/apps/{app_id}",
        "/v2/apps/{app_id}/tasks",
        "/v2/apps/{app_id}/restart",
        "/v2/groups",
        "/v2/groups/{group_id}",
        "/v2/deployments",
        "/v2/deployments/{deployment_id}",
        "/v2/tasks",
        "/v2/tasks/delete",
        "/v2/queue",
        "/v2/events",
        "/v2/info",
        "/v2/leader",
        "/ping",
        "/metrics",
    ):
        assert path in paths, path
    post = paths["/v2/apps"]["post"]
    ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"id", "cmd", "cpus", "mem", "instances", "healthChecks", "upgradeStrategy"} <= set(
        schema["properties"]
    )
    assert {"201", "400", "409", "422"} <= set(post["responses"])
    assert "force" in {p["name"] for p in post["parameters"]}


async def test_state_survives_a_new_service_instance(zk_client, zk_base):
    client, _, _ = make_client(zk_client, zk_base)
    async with client:
        await client.post("/v2/apps", json={"id": "/persist/me", "cmd": "x", "instances": 2})
    again, _, _ = make_client(zk_client, zk_base)
    async with again:
        app = (await again.get("/v2/apps/persist/me")).json()["app"]
        assert app["instances"] == 2 and len(app["tasks"]) == 2


async def test_old_versions_are_pruned_but_rollback_targets_stay(zk_client, zk_base):
    client, service, _ = make_client(zk_client, zk_base, max_versions=3)
    async with client:
        await client.post("/v2/apps", json={"id": "/p", "cmd": "x"})
        for n in range(2, 8):
            r = await client.put("/v2/apps/p", json={"cmd": f"x{n}"})
            assert r.status_code == 200
        versions = (await client.get("/v2/apps/p/versions")).json()["versions"]
        assert len(versions) == 3
        assert len(service.store.root_versions()) == 3
        r = await client.put("/v2/apps/p", json={"version": versions[-1]})
        assert r.status_code == 200
        assert (await client.get("/v2/apps/p")).json()["app"]["cmd"] == "x5"
        r = await client.put("/v2/apps/p", json={"version": versions[0], "cmd": "y"})
        assert r.status_code == 422
        assert r.json()["details"][0]["errors"] == [
            "The 'version' field may only be combined with the 'id' field."
        ]
        r = await client.put("/v2/apps/p", json={"version": "2000-01-01T00:00:00.000Z"})
        assert r.status_code == 404


async def test_apps_and_groups_cannot_share_ids(api):
    client, _, _ = api
    await client.post("/v2/apps", json={"id": "/a", "cmd": "x"})
    r = await client.put("/v2/apps/a/b", json={"cmd": "x"})
    assert r.status_code == 409 and r.json() == {"message": "An app with id [/a] already exists."}
    await client.post("/v2/apps", json={"id": "/g/x", "cmd": "x"})
    r = await client.put("/v2/apps/g", json={"cmd": "x"})
    assert r.status_code == 409 and r.json() == {"message": "A group with id [/g] already exists."}
    r = await client.post("/v2/groups", json={"id": "/a"})
    assert r.status_code == 409
    apps = (await client.get("/v2/apps")).json()["apps"]
    assert sorted(a["id"] for a in apps) == ["/a", "/g/x"]


async def test_put_without_partial_update_replaces_the_definition(api):
    client, _, _ = api
    await client.post(
        "/v2/apps", json={"id": "/full", "cmd": "x", "mem": 512, "labels": {"a": "b"}}
    )
    r = await client.put("/v2/apps/full?partialUpdate=false", json={"cmd": "y"})
    assert r.status_code == 200
    app = (await client.get("/v2/apps/full")).json()["app"]
    assert (app["cmd"], app["mem"], app["labels"]) == ("y", 128.0, {})
    await client.patch("/v2/apps/full", json={"mem": 256})
    app = (await client.get("/v2/apps/full")).json()["app"]
    assert (app["cmd"], app["mem"]) == ("y", 256.0)
