"""Marathon-run health checks: the pure bookkeeping, and probes against real local
HTTP and TCP servers."""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading

import pytest

from paddock.marathon.models import HealthCheck, ReadinessCheck
from paddock.marathon.scheduler.health import (
    HealthChecker,
    HealthState,
    ReadinessChecker,
    probe,
    probe_http,
    probe_tcp,
)
from paddock.testing.ports import free_port


def hc(**kw) -> HealthCheck:
    return HealthCheck.model_validate(kw)


# ------------------------------------------------------------------ pure semantics


def test_failures_in_grace_period_are_ignored_until_first_success():
    st = HealthState(hc(gracePeriodSeconds=10, maxConsecutiveFailures=2), "t", started=0.0)
    assert st.record(False, "refused", "t1", 1.0) == (False, False)
    assert st.alive is None and st.result() is None
    assert st.record(True, "", "t2", 2.0) == (True, False)
    assert st.result().alive and st.result().first_success == "t2"
    # After a first success the grace period no longer protects
    assert st.record(False, "HTTP status 500", "t3", 3.0) == (True, False)
    assert st.record(False, "HTTP status 500", "t4", 4.0) == (False, True)
    r = st.result()
    assert not r.alive and r.consecutive_failures == 2
    assert r.last_failure == "t4" and r.last_failure_cause == "HTTP status 500"


def test_failures_after_grace_count_and_zero_means_never_kill():
    st = HealthState(hc(gracePeriodSeconds=1, maxConsecutiveFailures=0), "t", started=0.0)
    for i in range(5):
        _changed, kill = st.record(False, "x", f"t{i}", 2.0 + i)
        assert not kill
    assert st.consecutive_failures == 5
    st.record(True, "", "t9", 9.0)
    assert st.consecutive_failures == 0 and st.alive


# ------------------------------------------------------------------ real servers


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        code = 200 if self.path == "/ok" else type(self).status
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    handler = type("H", (_Handler,), {"status": 200})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, handler
    srv.shutdown()
    srv.server_close()


async def test_http_probe_statuses(http_server):
    srv, handler = http_server
    port = srv.server_address[1]
    assert await probe_http("127.0.0.1", port, "/", 2) == (200, "")
    handler.status = 503
    ok, cause = await probe(hc(protocol="HTTP", path="/x", timeoutSeconds=2), "127.0.0.1", port)
    assert not ok and cause == "HTTP status 503"
    handler.status = 302
    ok, _ = await probe(hc(protocol="HTTP", timeoutSeconds=2), "127.0.0.1", port)
    assert ok  # 200-399 pass
    closed = free_port("127.0.0.1")
    ok, cause = await probe(hc(protocol="HTTP", timeoutSeconds=1), "127.0.0.1", closed)
    assert not ok and "Refused" in cause


async def test_http_probe_times_out_on_silent_server():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)  # accepts connections, never answers
    try:
        status, cause = await probe_http("127.0.0.1", sock.getsockname()[1], "/", 0.3)
        assert status == 0 and "timed out" in cause
    finally:
        sock.close()


async def test_tcp_probe():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)
    port = sock.getsockname()[1]
    try:
        assert await probe_tcp("127.0.0.1", port, 1) == ""
    finally:
        sock.close()
    assert "Refused" in await probe_tcp("127.0.0.1", port, 1)


async def test_checker_turns_unhealthy_and_asks_for_kill(http_server):
    srv, handler = http_server
    port = srv.server_address[1]
    events: list[tuple[str, bool | None, bool, bool]] = []
    kill = asyncio.Event()

    def listener(instance_id, index, state, changed, wants_kill):
        events.append((instance_id, state.alive, changed, wants_kill))
        if wants_kill:
            kill.set()

    checker = HealthChecker(listener, lambda: "now")
    check = hc(
        protocol="HTTP",
        path="/",
        gracePeriodSeconds=0,
        timeoutSeconds=1,
        maxConsecutiveFailures=3,
    ).model_copy(update={"interval_seconds": 0.05})  # faster than the API allows
    # Marathon-run checks only: a COMMAND check next to it is the agent's.
    command = hc(protocol="COMMAND", command={"value": "true"})
    checker.watch("task-1", "127.0.0.1", [port], [check, command], started=0.0)
    try:
        for _ in range(100):
            if checker.healthy("task-1"):
                break
            await asyncio.sleep(0.02)
        assert checker.healthy("task-1") is True
        assert [r.alive for r in checker.results("task-1")] == [True]
        handler.status = 500
        await asyncio.wait_for(kill.wait(), 5)
        assert checker.healthy("task-1") is False
        failures = [e for e in events if e[1] is False]
        assert [e[3] for e in failures[:3]] == [False, False, True]
        assert sum(1 for e in events if e[2]) == 2  # healthy once, unhealthy once
    finally:
        checker.stop()
    assert checker.states == {}


async def test_check_on_port_index_and_missing_port(http_server):
    srv, _ = http_server
    port = srv.server_address[1]
    seen = asyncio.Event()
    results = {}

    def listener(instance_id, index, state, changed, wants_kill):
        results[instance_id] = state.alive
        if len(results) == 2:
            seen.set()

    checker = HealthChecker(listener, lambda: "now")
    check = hc(protocol="TCP", portIndex=1, gracePeriodSeconds=0, intervalSeconds=1,
               timeoutSeconds=1)  # fmt: skip
    closed = free_port("127.0.0.1")
    checker.watch("a", "127.0.0.1", [closed, port], [check], started=0.0)
    checker.watch("b", "127.0.0.1", [port], [check], started=0.0)  # no port index 1
    try:
        await asyncio.wait_for(seen.wait(), 5)
        assert results == {"a": True, "b": False}
        assert checker.results("b")[0].last_failure_cause == "no port for this health check"
    finally:
        checker.stop()


async def test_readiness_until_ready(http_server):
    srv, handler = http_server
    handler.status = 503
    ready = asyncio.Event()
    checker = ReadinessChecker(lambda _id: ready.set())
    rc = ReadinessCheck.model_validate({"path": "/", "timeoutSeconds": 1})
    rc = rc.model_copy(update={"interval_seconds": 0.05})
    checker.watch("t", "127.0.0.1", srv.server_address[1], rc)
    try:
        await asyncio.sleep(0.2)
        assert "t" not in checker.ready
        handler.status = 200
        await asyncio.wait_for(ready.wait(), 5)
        assert "t" in checker.ready
    finally:
        checker.stop()
