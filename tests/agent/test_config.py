"""Flags, resource detection and the CLI's errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from paddock.agent.config import AgentConfig, ConfigError, detect_resources, parse_master
from paddock.cli.agent_cmd import agent as agent_command


def test_master_forms():
    zk = parse_master("zk://h1:2181,h2:2182/mesos")
    assert (zk.zk_hosts, zk.zk_path, zk.is_zk) == ("h1:2181,h2:2182", "/mesos", True)
    assert str(zk) == "zk://h1:2181,h2:2182/mesos"
    fixed = parse_master("10.0.0.1:5050")
    assert (fixed.host, fixed.port, fixed.is_zk) == ("10.0.0.1", 5050, False)
    assert parse_master("http://m:5050").host == "m"
    for bad in ("", "zk://h1:2181", "zk:///mesos", "m", "m:0", "m:x", "zk://h1:x/mesos"):
        with pytest.raises(ConfigError, match="--master"):
            parse_master(bad)


def test_detected_resources_match_the_host(tmp_path):
    found = detect_resources(tmp_path)
    assert found["cpus"].get_scalar("cpus") == float(os.cpu_count() or 1)
    assert found["ports"].get_ranges("ports") == [(31000, 32000)]
    with open("/proc/meminfo") as f:
        total_mb = int(f.readline().split()[1]) // 1024
    mem = found["mem"].get_scalar("mem")
    assert 0 < mem < total_mb
    st = os.statvfs(tmp_path)
    assert 0 < found["disk"].get_scalar("disk") < st.f_blocks * st.f_frsize / 2**20


def test_given_resources_win_and_the_rest_is_detected(tmp_path):
    cfg = AgentConfig.from_flags(
        master="127.0.0.1:5050", work_dir=str(tmp_path), resources="cpus:3;gpus:1;cpus(web):1"
    )
    r = cfg.resources
    assert r.get_scalar("cpus") == 4 and r.get_scalar("cpus", "web") == 1
    assert r.get_scalar("gpus") == 1
    assert r.get_scalar("mem") > 0 and r.get_ranges("ports") == [(31000, 32000)]


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        ({"resources": "cpus:x"}, "--resources"),
        ({"resources": "cpus:4;cpus:[1-2]"}, "--resources"),
        ({"attributes": "rack"}, "--attributes"),
        ({"attributes": "s:{a,b}"}, "--attributes"),
        ({"recover": "maybe"}, "--recover"),
        ({"ip": "not-an-ip"}, "--ip"),
        ({"port": 70000}, "--port"),
        ({"credential": "/nonexistent/cred"}, "--credential"),
    ],
)
def test_bad_flags(tmp_path, flags, needle):
    with pytest.raises(ConfigError, match=needle):
        AgentConfig.from_flags(master="127.0.0.1:5050", work_dir=str(tmp_path), **flags)


def test_credential_file_forms(tmp_path):
    plain = tmp_path / "cred"
    plain.write_text("alice s3cret\n")
    cfg = AgentConfig.from_flags(master="m:1", work_dir=str(tmp_path), credential=str(plain))
    assert cfg.credential == {"principal": "alice", "secret": "s3cret"}
    js = tmp_path / "cred.json"
    js.write_text('{"principal": "bob", "secret": "x"}')
    cfg = AgentConfig.from_flags(master="m:1", work_dir=str(tmp_path), credential=str(js))
    assert cfg.credential == {"principal": "bob", "secret": "x"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "--master is required"),
        (["--master", "m:5050"], "--work-dir is required"),
        (["--master", "m:5050", "--work-dir", "{wd}", "--resources", "cpus:abc"], "--resources"),
        (["--master", "zk://h/", "--work-dir", "{wd}"], "--master"),
        (["--master", "m:5050", "--work-dir", "{wd}", "--log-format", "xml"], "--log-format"),
        (["--master", "m:5050", "--work-dir", "{wd}", "--status-update-retry-min", "0"], "retry"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(tmp_path, args, needle):
    import typer

    app = typer.Typer()
    app.command()(agent_command)
    result = CliRunner().invoke(app, [a.format(wd=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines


def test_paddock_agent_help_lists_the_flags():
    out = subprocess.run(
        [sys.executable, "-m", "paddock.cli.main", "agent", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stderr
    for flag in ("--master", "--work-dir", "--resources", "--attributes", "--recover", "--ip"):
        assert flag in out.stdout
