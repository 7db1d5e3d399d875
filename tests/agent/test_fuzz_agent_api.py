"""Bad input for the agent's HTTP API: schemathesis against a real ``paddock agent``.

The agent serves no OpenAPI document (its FastAPI app has it switched off), so the
test generates one from the same app (``make_app(...).openapi()``) and describes the
JSON bodies of the v1 operator and executor calls, which the routes read raw. A 5xx,
no answer within the timeout, or a traceback in the agent's log fails the test. The
agent runs without a master (it keeps retrying one); its endpoints answer anyway.

    .venv/bin/python -m pytest tests/agent/test_fuzz_agent_api.py -s
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from paddock.agent.http_api import make_app
from paddock.testing.ports import free_port

CALL_TYPES = [
    "GET_HEALTH", "GET_VERSION", "GET_FLAGS", "GET_METRICS", "GET_STATE", "GET_TASKS",
    "GET_AGENT", "GET_FRAMEWORKS", "GET_EXECUTORS", "GET_CONTAINERS", "SUBSCRIBE",
    "UPDATE", "MESSAGE", "LAUNCH_NESTED_CONTAINER",
]  # fmt: skip

CALL_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"type": "string", "enum": CALL_TYPES},
                    "framework_id": {"type": "object", "properties": {"value": {}}},
                    "executor_id": {"type": "object", "properties": {"value": {}}},
                    "update": {"type": "object"},
                    "subscribe": {"type": "object"},
                },
            }
        }
    },
}


def agent_document() -> dict:
    doc = make_app(None).openapi()  # type: ignore[arg-type]
    for path, ops in doc["paths"].items():
        if "post" in ops and path.endswith(("/api/v1", "/api/v1/operator", "/api/v1/executor")):
            ops["post"]["requestBody"] = CALL_BODY
    return doc


@pytest.fixture
def agent(tmp_path):
    port = free_port()
    log_path = tmp_path / "agent.log"
    cmd = [
        sys.executable, "-m", "paddock.cli.main", "agent", "--master", "127.0.0.1:1",
        "--port", str(port), "--work-dir", str(tmp_path / "work"), "--ip", "127.0.0.1",
        "--hostname", "127.0.0.1", "--resources", "cpus:1;mem:256", "--no-cgroups",
    ]  # fmt: skip
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        yield proc, url, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_agent_api_fuzz_has_no_server_errors(agent, tmp_path):
    proc, url, log_path = agent
    schema = tmp_path / "agent-openapi.json"
    schema.write_text(json.dumps(agent_document()))
    report = tmp_path / "schemathesis.json"
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "run", str(schema), "--url", url,
        "--checks", "not_a_server_error", "--request-timeout", "10", "--max-redirects", "0",
        "--workers", "1", "--no-color", "--suppress-health-check", "all",
        "--phases", "coverage,fuzzing", "--max-examples", "10",
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    data = json.loads(report.read_text()) if report.exists() else {}
    generated = data.get("test_cases", {}).get("generated", 0)
    print(f"\nschemathesis agent: {generated} requests generated, exit status {run.returncode}")
    assert proc.poll() is None, log_path.read_text()[-3000:]
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    assert generated >= 18 * 5
    assert "Traceback" not in log_path.read_text(errors="replace")
