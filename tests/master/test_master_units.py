"""Pure parts of the master: registry state machine, flag parsing, ZooKeeper helpers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from paddock.consensus.types import Entry
from paddock.master.config import load_credentials, parse_duration
from paddock.master.election import ip_to_uint32, leader_child, parse_zk_url
from paddock.master.registry import RegistryError, RegistryState


def _apply(reg: RegistryState, index: int, cmd: dict) -> object:
    return reg.apply(Entry(1, index, json.dumps(cmd).encode()))


def test_registry_agent_lifecycle_and_snapshot():
    reg = RegistryState()
    assert _apply(reg, 1, {"op": "elected", "master": {"id": "m1"}}) == 1
    _apply(reg, 2, {"op": "admit", "agent_id": "a1", "info": {"hostname": "h"}})
    _apply(reg, 3, {"op": "admit", "agent_id": "a2", "info": {"hostname": "h2"}})
    assert _apply(reg, 4, {"op": "unreachable", "agent_id": "a1", "time": 5.0}) == "unreachable"
    assert reg.unreachable["a1"] == {"info": {"hostname": "h"}, "time": 5.0}
    assert "a1" not in reg.admitted
    _apply(reg, 5, {"op": "admit", "agent_id": "a1", "info": {"hostname": "h"}})  # back
    assert "a1" in reg.admitted and "a1" not in reg.unreachable
    _apply(reg, 6, {"op": "gone", "agent_id": "a2", "time": 7.0})
    with pytest.raises(RegistryError, match="gone"):
        _apply(reg, 7, {"op": "admit", "agent_id": "a2", "info": {}})
    with pytest.raises(RegistryError):
        _apply(reg, 8, {"op": "bogus"})
    with pytest.raises(RegistryError):
        reg.apply(Entry(1, 9, b"not json"))
    copy = RegistryState()
    copy.restore(reg.snapshot())
    assert copy.to_json() == reg.to_json()
    assert copy.elections == 1 and copy.master == {"id": "m1"}


def test_parse_zk_url_and_helpers():
    u = parse_zk_url("zk://h1:2181,h2:2182/mesos")
    assert (u.hosts, u.path) == ("h1:2181,h2:2182", "/mesos")
    assert parse_zk_url("zk://h:1/a/b/").path == "/a/b"
    for bad in ("h:1/mesos", "zk://h:1", "zk:///mesos", "zk://h:x/mesos"):
        with pytest.raises(ValueError):
            parse_zk_url(bad)
    assert ip_to_uint32("127.0.0.1") == 16777343
    assert ip_to_uint32("10.0.0.2") == 0x0200000A
    assert leader_child(["log_replicas", "json.info_0000000003", "json.info_0000000002"]) == (
        "json.info_0000000002"
    )
    assert leader_child(["log_replicas"]) is None


def test_durations_and_credentials(tmp_path):
    assert parse_duration("15secs") == 15.0
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2mins") == 120.0
    assert parse_duration("3") == 3.0
    with pytest.raises(ValueError):
        parse_duration("soon")
    p = tmp_path / "creds.json"
    p.write_text(json.dumps({"credentials": [{"principal": "fw", "secret": "s3"}]}))
    assert load_credentials(p) == {"fw": "s3"}
    p.write_text("fw s3\nagent s4\n")
    assert load_credentials(p) == {"fw": "s3", "agent": "s4"}
    p.write_text(json.dumps({"credentials": "nope"}))
    with pytest.raises(ValueError):
        load_credentials(p)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--zk", "localhost:2181/mesos", "--quorum", "1"], "--zk must look like"),
        (["--zk", "zk://h:1/m", "--quorum", "0"], "--quorum"),
        (["--zk", "zk://h:1/m", "--quorum", "1", "--agent-ping-timeout", "x"], "bad duration"),
        (["--zk", "zk://h:1/m", "--quorum", "1", "--ip", "nohost"], "--ip"),
        (["--zk", "zk://h:1/m", "--quorum", "1", "--log-format", "xml"], "--log-format"),
        (["--zk", "zk://h:1/m", "--quorum", "1", "--credentials", "/nonexistent"], "credentials"),
        (["--zk", "zk://h:1/m", "--quorum", "1", "--port", "70000"], "--port"),
    ],
)
def test_bad_flags_exit_2_with_a_clear_message(tmp_path, args, needle):
    r = subprocess.run(
        [sys.executable, "-m", "paddock.cli.main", "master", "--work-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr
