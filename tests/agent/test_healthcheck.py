"""Task health checks: parsing, and HTTP/TCP/COMMAND checks on real tasks."""

from __future__ import annotations

import sys

import pytest

from paddock.agent.healthcheck import parse_health_check
from paddock.testing.ports import free_port

from .test_agent_integration import FW, run_task, running_agent


def test_parse_defaults_and_errors():
    hc = parse_health_check({"type": "HTTP", "http": {"port": 8080, "path": "health"}})
    assert (hc.kind, hc.port, hc.path, hc.delay, hc.interval, hc.timeout) == (
        "HTTP", 8080, "/health", 15.0, 10.0, 20.0,
    )  # fmt: skip
    assert (hc.consecutive_failures, hc.grace) == (3, 10.0)
    cmd = parse_health_check({"type": "COMMAND", "command": {"value": "true"}})
    assert cmd.command == ("/bin/sh", "-c", "true")
    assert parse_health_check(None) is None
    for bad in (
        "x",
        {"type": "HTTP", "http": {"port": 0}},
        {"type": "TCP"},
        {"type": "COMMAND", "command": {}},
        {"type": "GRPC", "grpc": {"port": 1}},
        {"type": "TCP", "tcp": {"port": 80}, "interval_seconds": -1},
    ):
        with pytest.raises(ValueError):
            parse_health_check(bad)


def with_health(task_id: str, cmd: str, health: dict, port: int | None = None) -> dict:
    msg = run_task(task_id, cmd)
    task = msg["run_task"]["task"]
    task["health_check"] = {"delay_seconds": 0, "interval_seconds": 0.1, **health}
    if port is not None:
        task["resources"][2]["ranges"]["range"] = [{"begin": port, "end": port}]
    return msg


async def test_http_and_tcp_checks_report_healthy(tmp_path, fake_master):
    port = free_port()
    server_cmd = f"exec {sys.executable} -m http.server $PORT0 --bind 127.0.0.1"
    async with running_agent(tmp_path, fake_master):
        await fake_master.wait_registrations(1)
        fake_master.auto_ack = True
        fake_master.send(
            with_health(
                "web", server_cmd, {"type": "HTTP", "http": {"port": port, "path": "/"}}, port
            )
        )
        healthy = await fake_master.wait_for(
            lambda m: [s for s in m.updates("web") if s.get("healthy") is True], timeout=20
        )
        assert healthy[0]["state"] == "TASK_RUNNING"
        assert healthy[0]["reason"] == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
        tcp = with_health("tcp", "sleep 30", {"type": "TCP", "tcp": {"port": port}})
        fake_master.send(tcp)
        await fake_master.wait_for(
            lambda m: [s for s in m.updates("tcp") if s.get("healthy") is True], timeout=20
        )


async def test_failing_command_check_kills_the_task(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_registrations(1)
        fake_master.auto_ack = True
        # Healthy while the file "sick" does not exist, then two failures kill the task.
        check = {
            "type": "COMMAND",
            "command": {"value": "test ! -f sick"},
            "consecutive_failures": 2,
            "grace_period_seconds": 0,
        }
        fake_master.send(with_health("t", "sleep 30", check))
        await fake_master.wait_for(
            lambda m: [s for s in m.updates("t") if s.get("healthy") is True], timeout=20
        )
        (server.agent.tasks[(FW, "t")].sandbox / "sick").touch()
        killed = await fake_master.wait_update("t", "TASK_KILLED", timeout=20)
        assert killed["healthy"] is False
        assert "consecutive failed health checks" in killed["message"]
        states = [(s["state"], s.get("healthy")) for s in fake_master.updates("t")]
        assert ("TASK_RUNNING", False) in states
        bad = run_task("bad", "sleep 30")
        bad["run_task"]["task"]["health_check"] = {"type": "HTTP", "http": {"port": -1}}
        fake_master.send(bad)
        err = await fake_master.wait_update("bad", "TASK_ERROR")
        assert err["reason"] == "REASON_TASK_INVALID"
