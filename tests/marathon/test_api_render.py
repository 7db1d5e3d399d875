"""The encoded-fragment rendering of the big listings gives the same JSON as the dicts,
and cached fragments follow every change (new app version, task state change)."""

from __future__ import annotations

import json

from test_api import make_client

from paddock.marathon.api_apps import render_app
from paddock.marathon.api_render import AppJsonCache, object_with, tasks_json
from paddock.marathon.models import AppDefinition, Task
from paddock.marathon.scheduler.instances import changed_task, tracked


def test_object_with_appends_members_to_an_encoded_object():
    assert json.loads(object_with(b'{"a":1}', [("b", b"[2]"), ("c\\", b'"x"')])) == {
        "a": 1,
        "b": [2],
        "c\\": "x",
    }
    assert json.loads(object_with(b"{}", [("b", b"2")])) == {"b": 2}
    assert object_with(b'{"a":1}', []) == b'{"a":1}'


def test_app_cache_follows_the_app_object():
    cache = AppJsonCache()
    v1 = AppDefinition.model_validate({"id": "/a", "cmd": "x", "instances": 1})
    assert json.loads(cache.get(v1)) == v1.to_json()
    v2 = v1.model_copy(update={"instances": 3})
    assert json.loads(cache.get(v2))["instances"] == 3  # a new object: encoded anew
    assert cache.get(v2) is cache.get(v2)
    cache.prune(0)  # 1 entry is not "far more" than 0 live apps
    assert len(cache._cache) == 1


def test_tracked_task_bytes_follow_changes():
    t = tracked(Task(id="a.1", app_id="/a", state="TASK_STAGING"))
    assert json.loads(t.json_bytes())["state"] == "TASK_STAGING"
    u = changed_task(t, state="TASK_RUNNING", started_at="2026-01-01T00:00:00.000Z")
    assert json.loads(u.json_bytes())["state"] == "TASK_RUNNING"
    assert json.loads(t.json_bytes())["state"] == "TASK_STAGING"
    assert json.loads(tasks_json([t, u])) == [t.to_json(), u.to_json()]
    assert tasks_json([]) == b"[]"


async def test_listing_matches_the_dict_rendering(zk_client, zk_base):
    client, service, core = make_client(zk_client, zk_base)
    async with client:
        for i in range(3):
            r = await client.post(
                "/v2/apps", json={"id": f"/g/app{i}", "cmd": "sleep 1", "instances": i + 1}
            )
            assert r.status_code == 201, r.text
        r = await client.get("/v2/apps", params={"embed": "apps.tasks"})
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        apps = r.json()["apps"]
        assert [a["id"] for a in apps] == ["/g/app0", "/g/app1", "/g/app2"]
        assert [len(a["tasks"]) for a in apps] == [1, 2, 3]
        for a in apps:
            want = render_app(service, service.root.apps[a["id"]], {"apps.tasks"})
            assert a == json.loads(json.dumps(want))
        # A new version of one app shows at once (the cached definition is not reused).
        r = await client.put("/v2/apps/g/app1", json={"cmd": "sleep 2", "instances": 2})
        assert r.status_code == 200, r.text
        r = await client.get("/v2/apps")
        assert {a["id"]: a["cmd"] for a in r.json()["apps"]}["/g/app1"] == "sleep 2"
        tasks = (await client.get("/v2/tasks")).json()["tasks"]
        assert sorted(t["id"] for t in tasks) == sorted(t.id for t in core.tasks())
        one = (await client.get("/v2/apps/g/app2/tasks")).json()["tasks"]
        assert len(one) == 3 and all(t["appId"] == "/g/app2" for t in one)
