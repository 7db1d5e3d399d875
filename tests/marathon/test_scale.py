"""A thousand apps through the API: one group deployment, listings, a scale among them."""

from __future__ import annotations

import random
import time

import httpx

from paddock.marathon.api import create_api, instant_service


async def test_a_thousand_apps_through_the_api(zk_client, zk_base):
    service, _ = instant_service(zk_client, zk_base, rng=random.Random(5))
    app = create_api(service)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://m", timeout=120) as c:
        groups = [
            {
                "id": f"team-{g}",
                "apps": [
                    {
                        "id": f"svc-{i}",
                        "cmd": "sleep 1000",
                        "mem": 64,
                        "healthChecks": [{"protocol": "TCP"}],
                        "constraints": [["hostname", "UNIQUE"]],
                    }
                    for i in range(50)
                ],
            }
            for g in range(20)
        ]
        figures = {}
        started = time.monotonic()
        r = await c.post("/v2/groups", json={"id": "/bench", "groups": groups})
        figures["POST /v2/groups (1,000 apps, 1,000 tasks)"] = time.monotonic() - started
        assert r.status_code == 201
        started = time.monotonic()
        r = await c.get("/v2/apps")
        figures["GET /v2/apps"] = time.monotonic() - started
        apps = r.json()["apps"]
        assert len(apps) == 1000 and all(a["tasksRunning"] == 1 for a in apps)
        ports = {a["portDefinitions"][0]["port"] for a in apps}
        assert len(ports) == 1000  # unique service ports
        started = time.monotonic()
        r = await c.put("/v2/apps/bench/team-3/svc-7", json={"instances": 3})
        figures["PUT one app among 1,000"] = time.monotonic() - started
        assert r.status_code == 200
        assert len((await c.get("/v2/tasks")).json()["tasks"]) == 1002
        print()
        for name, seconds in figures.items():
            print(f"{name}: {seconds:.2f}s")
        assert figures["PUT one app among 1,000"] < 10
