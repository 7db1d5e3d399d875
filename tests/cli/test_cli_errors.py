"""Without a cluster every client command says so in one line and exits non-zero.

Most cases run the CLI in-process (see ``cluster_cli.paddock``); one runs the real
``paddock`` executable for the exit status."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from cluster_cli import paddock


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_error_line(r) -> str:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["app", "list"],
        ["app", "show", "/x"],
        ["app", "scale", "/x", "2"],
        ["task", "list"],
        ["task", "logs", "t1"],
        ["task", "kill", "t1"],
        ["agents"],
        ["zk", "ls", "/"],
    ],
)
def test_no_cluster_in_the_current_directory(args, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("PADDOCK_MARATHON", "PADDOCK_MASTER", "PADDOCK_ZK", "PADDOCK_WORK_DIR"):
        monkeypatch.delenv(var, raising=False)
    line = one_error_line(paddock(*args))
    assert "paddock up" in line


def test_real_process_exit_status(tmp_path: Path):
    r = paddock("status", "--work-dir", str(tmp_path), real=True)
    assert r.returncode == 1 and r.stderr.startswith("error: no cluster in"), r.stderr


def test_work_dir_without_a_cluster(tmp_path: Path):
    line = one_error_line(paddock("app", "list", "--work-dir", str(tmp_path)))
    assert "no cluster in" in line
    line = one_error_line(paddock("down", "--work-dir", str(tmp_path)))
    assert "no cluster is running" in line


def test_unreachable_endpoints(tmp_path: Path):
    port = closed_port()
    one_error_line(paddock("app", "list", "--marathon", f"127.0.0.1:{port}"))
    one_error_line(paddock("status", "--master", f"127.0.0.1:{port}", "--zk", "zk://127.0.0.1:1"))
    one_error_line(paddock("agents", "--master", f"127.0.0.1:{port}"))
    line = one_error_line(paddock("zk", "ls", "/", "--zk", f"zk://127.0.0.1:{port}", timeout=60))
    assert "cannot connect" in line
    r = paddock("task", "list", env={"PADDOCK_MARATHON": f"127.0.0.1:{port}"})
    assert f"127.0.0.1:{port}" in one_error_line(r)


def test_bad_inputs(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "not valid JSON" in one_error_line(
        paddock("app", "deploy", str(bad), "--marathon", "127.0.0.1:1")
    )
    noid = tmp_path / "noid.yaml"
    noid.write_text("cmd: sleep 1\n")
    assert '"id"' in one_error_line(paddock("app", "deploy", str(noid), "--marathon", "x:1"))
    missing = tmp_path / "missing.json"
    assert "cannot read" in one_error_line(paddock("app", "deploy", str(missing)))
    one_error_line(paddock("app", "list", "-o", "yaml", "--marathon", "127.0.0.1:1"))
    line = one_error_line(paddock("up", "--work-dir", str(tmp_path / "c"), "--masters", "2"))
    assert "odd" in line
    assert not (tmp_path / "c" / "layout.json").exists()
