"""HTTP basic authentication of ``paddock marathon --http-credentials user:password``
(Marathon's ``--http_credentials``): missing, wrong, malformed and replayed credentials
are refused with 401 and a Basic challenge on every path (``/ping`` included, as in
Marathon); a standby checks them before proxying to the leader; and the password never
appears in an answer or in the daemons' logs.
"""

from __future__ import annotations

import base64
import random
import subprocess
import sys

import httpx
import pytest
from scheduler_cluster import Cluster, url, wait_until

PASSWORD = "marathon-Pass-5d0c3e"
NEW_PASSWORD = "marathon-New-a41f77"
PATHS = ("/ping", "/v2/apps", "/v2/info", "/v2/leader", "/metrics", "/openapi.json", "/ui/")


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def assert_no_secret(text: str, where: str) -> None:
    for secret in (PASSWORD, NEW_PASSWORD):
        assert secret not in text, f"password leaked into {where}"
        assert base64.b64encode(secret.encode()).decode() not in text, where


@pytest.fixture
def cluster(zookeeper, tmp_path):
    c = Cluster(zookeeper.hosts, tmp_path, chroot=f"/auth{random.randrange(1 << 30)}")
    yield c
    c.stop()


def _elected(m, auth: dict[str, str]) -> None:
    wait_until(
        lambda: httpx.get(url(m) + "/v2/info", headers=auth, timeout=5).json().get("elected"),
        60,
        "marathon elected",
    )


def test_wrong_missing_malformed_and_replayed_credentials_are_refused(cluster):
    good = basic("ops", PASSWORD)
    leader = cluster.start_marathon("--http-credentials", f"ops:{PASSWORD}")
    _elected(leader, good)
    standby = cluster.start_marathon(
        "--http-credentials", f"ops:{PASSWORD}", "--http-realm", "paddock"
    )
    wait_until(
        lambda: httpx.get(url(standby) + "/v2/leader", headers=good, timeout=5).status_code == 200,
        60,
        "standby serving",
    )
    wrong = [
        {},
        basic("ops", "wrong"),
        basic("ops", ""),
        basic("OPS", PASSWORD),
        basic("other", PASSWORD),
        basic("ops", PASSWORD + "x"),
        basic("ops", PASSWORD[:-1]),
        basic("ops", NEW_PASSWORD),
        {"Authorization": "Basic " + base64.b64encode(PASSWORD.encode()).decode()},
        {"Authorization": "Basic %%%"},
        {"Authorization": "Bearer " + PASSWORD},
        {"Authorization": PASSWORD},
    ]
    with httpx.Client(timeout=10) as c:
        for m, realm in ((leader, "Mesosphere"), (standby, "paddock")):
            for path in PATHS:
                for headers in wrong:
                    r = c.get(url(m) + path, headers=headers)
                    assert r.status_code == 401, (m.name, path, headers, r.status_code)
                    assert r.headers["www-authenticate"] == f'Basic realm="{realm}"'
                    assert_no_secret(r.text, "a 401 answer")
                r = c.get(url(m) + path, headers=good)
                assert r.status_code == 200, (m.name, path, r.status_code, r.text[:200])
            r = c.post(url(m) + "/v2/apps", json={"id": "/x", "cmd": "sleep 1"})
            assert r.status_code == 401
        # The standby forwards an authenticated request (the header goes along).
        r = c.post(
            url(standby) + "/v2/apps", json={"id": "/via-standby", "cmd": "sleep 1"}, headers=good
        )
        assert r.status_code == 201, r.text
        assert r.headers["X-Marathon-Leader"] == f"127.0.0.1:{leader.port}"
        assert c.get(url(leader) + "/v2/apps/via-standby", headers=good).status_code == 200

    # Replay: after a restart with a new password, the captured header is refused.
    captured = basic("ops", PASSWORD)
    for m in (standby, leader):
        m.kill()
    restarted = cluster.start_marathon("--http-credentials", f"ops:{NEW_PASSWORD}")
    new = basic("ops", NEW_PASSWORD)
    wait_until(
        lambda: httpx.get(url(restarted) + "/ping", headers=new, timeout=5).status_code == 200,
        60,
        "restarted marathon serving",
    )
    with httpx.Client(timeout=10) as c:
        r = c.get(url(restarted) + "/v2/apps", headers=captured)
        assert r.status_code == 401
        assert_no_secret(r.text, "a 401 answer")
    for m in cluster.marathons:
        assert_no_secret(m.log_path.read_text(errors="replace"), f"{m.name}'s log")


def test_malformed_http_credentials_flag_is_refused_without_echoing_it():
    for value in ("no-colon-" + PASSWORD, ":" + PASSWORD):
        r = subprocess.run(
            [sys.executable, "-m", "paddock.cli.main", "marathon", "--master", "127.0.0.1:1",
             "--http-credentials", value],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 2, r.stderr
        assert "user:password" in r.stderr
        assert_no_secret(r.stdout + r.stderr, "the CLI's error")
