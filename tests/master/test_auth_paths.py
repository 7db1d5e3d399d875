"""Authentication paths of a master started with ``--credentials``: framework
principal/secret on SUBSCRIBE (HTTP basic), agent credentials on REGISTER, tried with
missing, wrong, malformed and replayed credentials. Every attempt is refused, and no
secret appears in any answer, in any read endpoint, or in the daemons' logs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from .clients import HOST, FakeAgent, HttpStatusError, Scheduler, fixed_ports

FW_SECRET = "fw-Secret-7c1f0e"
FW2_SECRET = "fw2-Secret-b8e2d4"
AGENT_SECRET = "agent-Secret-93aa51"
SECRETS = (FW_SECRET, FW2_SECRET, AGENT_SECRET)


def write_credentials(path, pairs: dict[str, str]) -> str:
    items = [{"principal": p, "secret": s} for p, s in pairs.items()]
    path.write_text(json.dumps({"credentials": items}))
    return str(path)


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"secret leaked into {where}"
        b64 = base64.b64encode(secret.encode()).decode()
        assert b64 not in text, f"base64 secret leaked into {where}"


def basic(principal: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{principal}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def refused(sched: Scheduler, base: str, status: int = 401) -> str:
    with pytest.raises(HttpStatusError) as err:
        await sched.subscribe(base, deadline=20)
    await sched.close()
    assert err.value.status == status, err.value.text
    assert_no_secret(err.value.text, "an error answer")
    return err.value.text


async def test_framework_credentials_missing_wrong_malformed_and_replayed(zk, masters, tmp_path):
    creds = write_credentials(
        tmp_path / "creds.json", {"fw": FW_SECRET, "fw2": FW2_SECRET, "ag": AGENT_SECRET}
    )
    m = masters.start(
        f"zk://{zk.hosts}/auth-fw", 1, "m1", "--allocation-interval", "0.1s",
        "--credentials", creds,
    )  # fmt: skip
    sub = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "x"}}}
    async with httpx.AsyncClient(timeout=10) as c:
        # Missing, malformed, unknown principal, wrong secret, empty secret, another
        # principal's secret: 401 with a Basic challenge.
        attempts = [
            {},
            {"Authorization": "Basic !!!not-base64"},
            {"Authorization": "Bearer " + FW_SECRET},
            {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
            basic("nobody", FW_SECRET),
            basic("fw", "wrong"),
            basic("fw", ""),
            basic("fw", FW2_SECRET),
            basic("fw", FW_SECRET + "x"),
            basic("fw", FW_SECRET[:-1]),
        ]
        for headers in attempts:
            r = await _post_until_leader(c, m.url + "/api/v1/scheduler", sub, headers)
            assert r.status_code == 401, (headers, r.status_code, r.text)
            assert r.headers["www-authenticate"].startswith("Basic")
            assert_no_secret(r.text, "a 401 answer")

    a = Scheduler("fw-a")
    a.auth = ("fw", FW_SECRET)
    b = Scheduler("fw-b")
    b.auth = ("fw2", FW2_SECRET)
    try:
        # A framework may not claim another principal than the one it authenticated as.
        liar = Scheduler("liar", principal="fw2")
        liar.auth = ("fw", FW_SECRET)
        await refused(liar, m.url, 403)

        await a.subscribe(m.url)
        old_stream = a.stream_id
        await b.subscribe(m.url)
        # fw2 cannot act for fw's framework: not with fw's framework id and stream id ...
        call = {"type": "REVIVE", "framework_id": {"value": a.framework_id}}
        async with httpx.AsyncClient(timeout=10) as c:
            r = await c.post(
                m.url + "/api/v1/scheduler",
                json=call,
                headers={"Mesos-Stream-Id": old_stream or "", **basic("fw2", FW2_SECRET)},
            )
            assert r.status_code == 403, r.text
            # ... nor without credentials.
            r = await c.post(
                m.url + "/api/v1/scheduler", json=call, headers={"Mesos-Stream-Id": old_stream}
            )
            assert r.status_code == 401
        # ... and cannot take it over by subscribing with its id (a failover).
        thief = Scheduler("thief")
        thief.auth = ("fw2", FW2_SECRET)
        thief.framework_id = a.framework_id
        await refused(thief, m.url, 403)
        assert not a.closed.is_set(), "the owner's stream was failed over by another principal"
        assert await a.call("REVIVE") == 202

        # The owner fails over (re-subscribes): the old stream id is dead.
        a2 = Scheduler("fw-a")
        a2.auth = ("fw", FW_SECRET)
        a2.framework_id = a.framework_id
        try:
            await a2.subscribe(m.url)
            assert a2.stream_id != old_stream
            async with httpx.AsyncClient(timeout=10) as c:
                r = await c.post(
                    m.url + "/api/v1/scheduler",
                    json=call,
                    headers={"Mesos-Stream-Id": old_stream, **basic("fw", FW_SECRET)},
                )
            assert r.status_code == 400 and "stream ID" in r.text
            assert await a2.call("REVIVE") == 202
        finally:
            await a2.close()
    finally:
        await a.close()
        await b.close()
    assert_no_secret(m.log_path.read_text(errors="replace"), "the master's log")


async def test_a_removed_principal_is_refused_after_restart(zk, masters, tmp_path):
    """A captured basic-auth header (a replay) stops working once the principal is gone."""
    creds = tmp_path / "creds.json"
    write_credentials(creds, {"fw": FW_SECRET, "fw2": FW2_SECRET})
    zk_url = f"zk://{zk.hosts}/auth-restart"
    m = masters.start(zk_url, 1, "m1", "--credentials", str(creds))
    sub = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "x"}}}
    captured = basic("fw2", FW2_SECRET)
    async with httpx.AsyncClient(timeout=10) as c:
        r = await _post_until_leader(c, m.url + "/api/v1/scheduler", sub, captured)
        assert r.status_code == 200
    m.kill()
    write_credentials(creds, {"fw": FW_SECRET})
    m2 = masters.start(zk_url, 1, "m1", "--credentials", str(creds))
    async with httpx.AsyncClient(timeout=10) as c:
        r = await _post_until_leader(c, m2.url + "/api/v1/scheduler", sub, captured)
        assert r.status_code == 401, r.text
        assert_no_secret(r.text, "a 401 answer")
        r = await _post_until_leader(c, m2.url + "/api/v1/scheduler", sub, basic("fw", FW_SECRET))
        assert r.status_code == 200
    for proc in (m, m2):
        assert_no_secret(proc.log_path.read_text(errors="replace"), "the master's log")


async def test_agent_credentials_and_nothing_leaks_into_state_or_logs(zk, masters, tmp_path):
    creds = write_credentials(tmp_path / "creds.json", {"fw": FW_SECRET, "ag": AGENT_SECRET})
    zk_url = f"zk://{zk.hosts}/auth-agent"
    m = masters.start(zk_url, 1, "m1", "--allocation-interval", "0.1s", "--credentials", creds)
    for cred in (None, {"principal": "ag", "secret": "wrong"}, {"principal": "ag"},
                 {"principal": "nobody", "secret": AGENT_SECRET},
                 {"principal": "fw", "secret": AGENT_SECRET}, {"secret": AGENT_SECRET},
                 "ag:" + AGENT_SECRET):  # fmt: skip
        fake = FakeAgent("fake-agent", "cpus:1;mem:128")
        fake.credential = cred  # type: ignore[assignment]
        with pytest.raises(HttpStatusError) as err:
            await fake.register(m.url)
        await fake.close()
        assert err.value.status == 401, (cred, err.value.text)
        assert_no_secret(err.value.text, "an agent 401 answer")

    # A real agent with a wrong secret is refused (and says so without the secret) ...
    bad_file = tmp_path / "bad-credential"
    bad_file.write_text(f"ag {FW_SECRET}")
    bad = _start_agent(zk_url, tmp_path / "bad-agent", bad_file)
    good_file = tmp_path / "credential.json"
    good_file.write_text(json.dumps({"principal": "ag", "secret": AGENT_SECRET}))
    good = _start_agent(zk_url, tmp_path / "good-agent", good_file)
    try:
        # ... while one with the right secret registers.
        async with httpx.AsyncClient(timeout=10) as c:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                r = await c.post(m.url + "/api/v1", json={"type": "GET_AGENTS"})
                if r.status_code == 200 and r.json()["get_agents"]["agents"]:
                    break
                await asyncio.sleep(0.3)
            agents = r.json()["get_agents"]["agents"]
            assert [a["agent_info"]["port"] for a in agents] == [good[1]], agents
            bad_log = ""
            while time.monotonic() < deadline and "refused registration" not in bad_log:
                await asyncio.sleep(0.3)
                bad_log = (tmp_path / "bad-agent.log").read_text(errors="replace")
            assert "refused registration: 401" in bad_log, bad_log[-2000:]
            r = await c.post(m.url + "/api/v1", json={"type": "GET_AGENTS"})
            assert len(r.json()["get_agents"]["agents"]) == 1
            # Nothing the master serves repeats a secret.
            for path in ("/master/state", "/master/state-summary", "/registry", "/metrics",
                         "/master/slaves", "/openapi.json"):  # fmt: skip
                assert_no_secret((await c.get(m.url + path)).text, path)
            for t in ("GET_STATE", "GET_AGENTS", "GET_FLAGS", "GET_FRAMEWORKS"):
                assert_no_secret((await c.post(m.url + "/api/v1", json={"type": t})).text, t)
    finally:
        for proc, _ in (bad, good):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    assert_no_secret(m.log_path.read_text(errors="replace"), "the master's log")
    for name in ("bad-agent", "good-agent"):
        assert_no_secret((tmp_path / f"{name}.log").read_text(errors="replace"), name + " log")


def _start_agent(master_zk: str, work_dir, credential) -> tuple[subprocess.Popen[bytes], int]:
    (port,) = fixed_ports(1)
    cmd = [
        sys.executable, "-m", "paddock.cli.main", "agent", "--master", master_zk,
        "--port", str(port), "--work-dir", str(work_dir), "--ip", HOST,
        "--hostname", "127.0.0.1", "--resources", "cpus:1;mem:256", "--no-cgroups",
        "--registration-backoff-factor", "0.2", "--credential", str(credential),
        "--log-level", "DEBUG",
    ]  # fmt: skip
    with open(f"{work_dir}.log", "ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    return proc, port


async def _post_until_leader(
    c: httpx.AsyncClient, url: str, body, headers, timeout: float = 60
) -> httpx.Response:
    """POSTs until the master leads (503 while it is being elected, 307 while a killed
    predecessor's ZooKeeper session lasts); a 200 (an event
    stream: the call subscribed) is closed at once, other answers are read."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = await c.send(c.build_request("POST", url, json=body, headers=headers), stream=True)
            if r.status_code != 200:
                await r.aread()
            await r.aclose()
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
            continue
        if r.status_code not in (307, 503) or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.2)
