"""Bad input for the Marathon REST API: schemathesis against a real ``paddock marathon``
(its own ``/openapi.json``), plus regression tests for what fuzzing found.

A server error (5xx) or a request that does not answer within the timeout is a failure.
The default suite runs a bounded fuzzing pass; the large run is marked slow:

    .venv/bin/python -m pytest tests/marathon/test_fuzz_marathon_api.py -m slow -s

(``PADDOCK_FUZZ_EXAMPLES=N``: examples per operation of the slow run, default 50.)

Every run prints how many requests schemathesis generated (docs/reliability.md records
the figures).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from scheduler_cluster import Cluster, url, wait_until

from paddock.marathon.api import create_api, instant_service
from paddock.marathon.live_server import ServerThread
from paddock.marathon.scheduler_iface import LeaderInfo

# Not fuzzed: DELETE /v2/leader makes the instance abdicate and exit (as Marathon does;
# a supervisor restarts it), and /v2/events is an endless SSE stream.
EXCLUDED_OPERATIONS = ("abdicate_v2_leader_delete", "events_v2_events_get")


def run_schemathesis(schema: str, out: Path, *options: str) -> tuple[int, str, dict]:
    """Runs the schemathesis CLI; returns its exit status, its output and the JSON report."""
    out.mkdir(parents=True, exist_ok=True)
    report = out / "schemathesis.json"
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "run", schema,
        "--checks", "not_a_server_error", "--request-timeout", "10", "--max-redirects", "0",
        "--workers", "1", "--no-color", "--suppress-health-check", "all",
        "--report", "json", "--report-json-path", str(report),
        *options,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, cwd=out)
    data = json.loads(report.read_text()) if report.exists() else {}
    return proc.returncode, proc.stdout + proc.stderr, data


@pytest.fixture
def marathon(zookeeper, tmp_path):
    """A real master (no agents) and a real ``paddock marathon`` that leads."""
    cluster = Cluster(zookeeper.hosts, tmp_path, chroot=f"/fuzz{random.randrange(1 << 30)}")
    try:
        cluster.start_master()
        m = cluster.start_marathon()
        wait_until(
            lambda: httpx.get(url(m) + "/v2/info", timeout=5).json().get("elected"),
            60,
            "marathon elected",
        )
        yield cluster, m
    finally:
        cluster.stop()


def _fuzz(cluster: Cluster, m, tmp_path: Path, *options: str) -> int:
    excluded = [a for op in EXCLUDED_OPERATIONS for a in ("--exclude-operation-id", op)]
    status, output, report = run_schemathesis(
        url(m) + "/openapi.json", tmp_path / "st", *excluded, *options
    )
    generated = report.get("test_cases", {}).get("generated", 0)
    print(f"\nschemathesis marathon: {generated} requests generated, exit status {status}")
    assert m.alive(), cluster.logs()
    assert status == 0, output[-6000:]
    assert generated > 0
    assert httpx.get(url(m) + "/ping", timeout=10).status_code == 200
    return generated


def test_marathon_api_fuzz_has_no_server_errors(marathon, tmp_path):
    cluster, m = marathon
    generated = _fuzz(cluster, m, tmp_path, "--phases", "fuzzing", "--max-examples", "3")
    assert generated >= 37 * 2  # every operation was tried


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_marathon_api_fuzz_large(marathon, tmp_path):
    cluster, m = marathon
    _fuzz(
        cluster, m, tmp_path, "--phases", "coverage,fuzzing",
        "--max-examples", os.environ.get("PADDOCK_FUZZ_EXAMPLES", "50"),
        "--seed", "8",
    )  # fmt: skip


# ---------------------------------------------------------------- what fuzzing found


def _api(zk_client, zk_base):
    service, _ = instant_service(zk_client, zk_base, rng=random.Random(3))
    app = create_api(service)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://marathon")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        # A version "" addressed the parent znode: zlib.error on its data (500).
        ("PUT", "/v2/groups?force=true", {"id": "", "version": ""}),
        ("PATCH", "/v2/groups/g?force=true", {"id": "", "version": ""}),
        ("PUT", "/v2/groups/g?force=true", {"version": ""}),
        # Names ZooKeeper refuses: kazoo BadArgumentsError (500).
        ("PUT", "/v2/groups/g/versions/%2E%2E", None),
        ("PUT", "/v2/groups/g/versions/%02%40", None),
        ("PUT", "/v2/groups", {"version": "."}),
        ("GET", "/v2/apps/a/versions/%2E%2E", None),
        ("GET", "/v2/apps/a/versions/%01", None),
        ("GET", "/v2/apps/%11%C3%9C/versions", None),
        ("GET", "/v2/apps/%11/versions/abc", None),
        ("GET", "/v2/apps/%2F/versions", None),
    ],
)
async def test_versions_that_name_no_znode_are_not_found(zk_client, zk_base, method, path, body):
    async with _api(zk_client, zk_base) as client:
        r = await client.post("/v2/apps", json={"id": "/a", "cmd": "sleep 1"})
        assert r.status_code == 201, r.text
        r = await client.request(method, path, json=body)
        assert r.status_code in (400, 404, 422), (r.status_code, r.text)
        assert "message" in r.json()


async def test_a_standby_forwards_paths_with_control_characters(zk_client, zk_base):
    """The proxy rebuilt the URL from the decoded path: httpx.InvalidURL on "\\x11" (500)."""
    leader, _ = instant_service(zk_client, zk_base, rng=random.Random(4))
    standby, standby_core = instant_service(zk_client, zk_base, rng=random.Random(5))
    srv = ServerThread(create_api(leader, sse_keepalive=0.2), before_stop=leader.bus.close)
    with srv:
        standby_core.leader = lambda: LeaderInfo(leader=srv.address, elected=False)  # type: ignore[method-assign]
        app = create_api(standby)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://standby") as c:
            r = await c.get("/v2/apps/%11%C3%9C/versions")
            assert r.status_code == 404, r.text
            assert r.headers["X-Marathon-Leader"] == srv.address
            assert "does not exist" in r.json()["message"]
            r = await c.get("/v2/apps", params={"id": "x y"})
            assert r.status_code == 200 and r.headers["X-Marathon-Leader"] == srv.address
