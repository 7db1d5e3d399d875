"""The UI's server side without a browser or a cluster: static files from the package,
the redirect, config, parsing of ``srvr``, the best-effort overview when nothing answers,
and the task-log endpoint's input checks."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from starlette.applications import Starlette

from paddock.web.cluster import (
    Sources,
    coordination_status,
    find_task,
    parse_srvr,
    parse_zk_url,
    summarize_state,
)
from paddock.web.mount import STATIC_DIR, mount_ui

SRVR = """Zookeeper version: 3.8.4-paddock, built on 2024
Latency min/avg/max: 0/0.1/3
Received: 12
Sent: 12
Connections: 3
Outstanding: 0
Zxid: 0x10000001a
Mode: follower
Node count: 42
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client_for(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui")


def test_static_files_ship_in_the_package():
    for name in ("index.html", "app.js", "waiting.js", "style.css"):
        assert (STATIC_DIR / name).is_file()
    html = (STATIC_DIR / "index.html").read_text()
    js = (STATIC_DIR / "app.js").read_text()
    # no CDN, nothing from the internet: only relative references
    assert 'src="app.js"' in html and 'href="style.css"' in html
    assert "https://" not in html + js
    # every form control is labelled
    assert html.count("<textarea") == 1 and 'label for="app-json"' in html
    assert 'label for="log-file"' in html


async def test_routes_redirect_and_static():
    app = mount_ui(Starlette(), master=f"zk://127.0.0.1:{closed_port()}/mesos")
    async with client_for(app) as c:
        r = await c.get("/ui")
        assert r.status_code == 307 and r.headers["location"] == "/ui/"
        r = await c.get("/ui/")
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        assert "<title>paddock</title>" in r.text
        r = await c.get("/ui/app.js")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
        r = await c.get("/ui/waiting.js")  # imported by app.js
        assert r.status_code == 200 and "export function waitReason" in r.text
        r = await c.get("/ui/style.css")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
        assert (await c.get("/ui/mount.py")).status_code == 404
        assert (await c.get("/ui/..%2Fmount.py")).status_code == 404
        cfg = (await c.get("/ui/api/config")).json()
        assert cfg == {"served_by": "master", "marathon_api": "/ui/api/marathon", "prefix": "/ui"}


async def test_marathon_settings_are_read_from_app_state():
    app = Starlette()

    class Settings:
        master = "zk://127.0.0.1:1/mesos"
        zk = "zk://127.0.0.1:1/marathon"

    app.state.settings = Settings()
    mount_ui(app, prefix="/console")
    async with client_for(app) as c:
        cfg = (await c.get("/console/api/config")).json()
        assert cfg["served_by"] == "marathon" and cfg["marathon_api"] == ""
        assert (await c.get("/console")).headers["location"] == "/console/"


async def test_overview_when_nothing_answers_is_an_answer_not_an_error():
    dead = closed_port()
    app = mount_ui(Starlette(), master=f"zk://127.0.0.1:{dead}/mesos")
    async with client_for(app) as c:
        r = await asyncio.wait_for(c.get("/ui/api/cluster"), 15)
    assert r.status_code == 200
    body = r.json()
    coord = body["coordination"]
    assert coord["healthy"] is False and coord["servers"][0]["up"] is False
    assert coord["quorum"] == {"size": 1, "needed": 1, "serving": 0}
    assert body["masters"]["leader"] is None
    assert any("coordination service" in e or "no master" in e for e in body["errors"])


async def test_tasklog_checks_its_input():
    app = mount_ui(Starlette(), master=f"http://127.0.0.1:{closed_port()}")
    async with client_for(app) as c:
        r = await c.get("/ui/api/tasklog", params={"task": "t1", "file": "/etc/passwd"})
        assert r.status_code == 400 and "stdout" in r.json()["message"]
        r = await c.get("/ui/api/tasklog", params={"task": "../../x"})
        assert r.status_code == 400
        r = await c.get("/ui/api/tasklog", params={"task": "t1", "bytes": "many"})
        assert r.status_code == 400
        r = await c.get("/ui/api/tasklog", params={"task": "t1"})
        assert r.status_code == 502 and "/master/state" in r.json()["message"]
        r = await c.get("/ui/api/marathon/v2/apps")
        assert r.status_code == 503


async def test_coordination_status_reads_srvr_from_a_real_socket():
    def answering(text: str):
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            word = await reader.read(4)
            writer.write(text.encode() if word == b"srvr" else b"")
            await writer.drain()
            writer.close()

        return serve

    follower = await asyncio.start_server(answering(SRVR), "127.0.0.1", 0)
    port = follower.sockets[0].getsockname()[1]
    refusing = await asyncio.start_server(
        answering("srvr is not executed because it is not in the whitelist.\n"), "127.0.0.1", 0
    )
    port2 = refusing.sockets[0].getsockname()[1]
    dead = closed_port()
    try:
        zk = parse_zk_url(f"zk://127.0.0.1:{port},127.0.0.1:{dead}/x")
        assert zk is not None
        status = await coordination_status(zk)
        zk3 = parse_zk_url(f"zk://127.0.0.1:{port},127.0.0.1:{port2},127.0.0.1:{dead}/x")
        assert zk3 is not None
        status3 = await coordination_status(zk3)
    finally:
        for srv in (follower, refusing):
            srv.close()
            await srv.wait_closed()
    # a server refusing srvr answers, but whether there is a quorum is unknown
    refused = status3["servers"][1]
    assert (
        refused["up"] is True and refused["mode"] == "unknown" and "whitelist" in refused["error"]
    )
    assert status3["healthy"] is None
    up, down = status["servers"]
    assert up == {
        "address": f"127.0.0.1:{port}",
        "up": True,
        "version": "3.8.4-paddock, built on 2024",
        "connections": 3,
        "zxid": "0x10000001a",
        "mode": "follower",
        "node_count": 42,
    }
    assert down["up"] is False and down["error"]
    # one follower of two servers: no quorum, no leader
    assert status["quorum"] == {"size": 2, "needed": 2, "serving": 1}
    assert status["healthy"] is False and status["leader"] is None


def test_parse_helpers():
    assert parse_srvr("Mode: leader\nZxid: 0x5\n") == {"mode": "leader", "zxid": "0x5"}
    assert parse_srvr("This ZooKeeper instance is not currently serving requests") == {}
    assert parse_zk_url("http://x:5050") is None
    assert parse_zk_url("zk:///path") is None
    u = parse_zk_url("zk://a:1, b:2/c/mesos")
    assert u is not None and u.hosts == ("a:1", "b:2") and u.path == "/c/mesos"
    assert Sources(master="zk://a:1/m", zk="zk://b:2/marathon").zk_urls()[0].hosts == ("b:2",)


@pytest.mark.parametrize("completed", [False, True])
def test_find_task_in_master_state(completed: bool):
    task = {"id": "app.1", "slave_id": "S1", "framework_id": "F", "state": "TASK_RUNNING"}
    fw = {
        "id": "F",
        "tasks": [] if completed else [task],
        "completed_tasks": [task] if completed else [],
    }
    state = {
        "slaves": [{"id": "S1", "hostname": "127.0.0.2", "port": 5051, "attributes": {"a": "b"}}],
        "frameworks": [fw, "garbage"],
    }
    found = find_task(state, "app.1")
    assert found is not None and found[1]["hostname"] == "127.0.0.2"
    assert find_task(state, "app.2") is None
    summary = summarize_state(state)
    assert summary["agents"][0]["attributes"] == {"a": "b"}
    assert summary["frameworks"][0]["tasks"] == (0 if completed else 1)


async def test_marathon_proxy_forwards_method_query_and_body():
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from paddock.marathon.live_server import ServerThread

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "body": (await request.body()).decode(),
            },
            status_code=201 if request.method == "POST" else 200,
        )

    upstream = Starlette(routes=[Route("/v2/{rest:path}", echo, methods=["GET", "POST"])])
    with ServerThread(upstream) as srv:
        app = mount_ui(Starlette(), master=f"http://127.0.0.1:{closed_port()}", marathon=srv.url)
        async with client_for(app) as c:
            cfg = (await c.get("/ui/api/config")).json()
            assert cfg["served_by"] == "master" and cfg["marathon_api"] == "/ui/api/marathon"
            r = await c.post("/ui/api/marathon/v2/apps?force=true", content=b'{"id": "/a"}')
    assert r.status_code == 201
    assert r.json() == {
        "method": "POST",
        "path": "/v2/apps",
        "query": "force=true",
        "body": '{"id": "/a"}',
    }
