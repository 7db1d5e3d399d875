"""Bad input for the master: schemathesis against a real ``paddock master`` using the
OpenAPI document it publishes at ``/openapi.json`` (the v1 scheduler and operator APIs
and the read endpoints).

The scheduler calls are fuzzed on behalf of a real subscribed framework: the test
pins ``framework_id`` and ``Mesos-Stream-Id`` in its copy of the document to that
framework's (schemathesis's negative mode still sends wrong ones), so generated calls
reach ACCEPT/DECLINE/KILL/ACKNOWLEDGE/RECONCILE... instead of stopping at "not
subscribed". A 5xx, an answer outside the document, or no answer within the request
timeout is a failure. Large run:

    .venv/bin/python -m pytest tests/master/test_fuzz_master_api.py -m slow -s

(``PADDOCK_FUZZ_EXAMPLES=N``: examples per operation of the slow run, default 300.)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from .clients import FakeAgent, Scheduler

CHECKS = ("--checks", "all", "--exclude-checks", ",".join([
    # The document describes each call's fields loosely (one object for all call types):
    # a "valid" TEARDOWN without its body is refused (400), and invalid fields of another
    # call type's body are ignored, as protobuf's JSON mapping would.
    "positive_data_acceptance", "negative_data_rejection",
    # The routes answer 405 with the methods Starlette routes them for.
    "allow_header_conformance",
]))  # fmt: skip

PATHS = {
    "/api/v1/scheduler",
    "/api/v1",
    "/master/state",
    "/master/state-summary",
    "/master/health",
    "/master/redirect",
    "/version",
    "/metrics/snapshot",
}


def pinned_document(doc: dict[str, Any], framework_id: str, stream_id: str) -> dict[str, Any]:
    """The document with the scheduler call bound to one subscribed framework (TEARDOWN
    left out: it would end the framework and every later call would be refused)."""
    call = doc["components"]["schemas"]["SchedulerCall"]
    call["properties"]["type"]["enum"].remove("TEARDOWN")
    call["properties"]["framework_id"] = {
        "type": "object",
        "required": ["value"],
        "properties": {"value": {"type": "string", "enum": [framework_id]}},
    }
    (param,) = doc["paths"]["/api/v1/scheduler"]["post"]["parameters"]
    param["required"] = True
    param["schema"] = {"type": "string", "enum": [stream_id]}
    return doc


async def run_schemathesis(
    schema: Path, base_url: str, *options: str
) -> tuple[int, str, dict[str, Any]]:
    """The schemathesis CLI in a subprocess (the event loop keeps reading the framework's
    and agent's streams meanwhile); its exit status, output and JSON report."""
    report = schema.parent / "schemathesis.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "run", str(schema), "--url", base_url,
        *CHECKS, "--request-timeout", "10", "--max-redirects", "0", "--workers", "1",
        "--no-color", "--suppress-health-check", "all",
        "--report", "json", "--report-json-path", str(report), *options,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=schema.parent,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 2000)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    data = json.loads(report.read_text()) if report.exists() else {}
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), data


async def _fuzz(zk, masters, tmp_path: Path, *options: str) -> int:
    m = masters.start(f"zk://{zk.hosts}/fuzz", 1, "m1", "--allocation-interval", "0.1s")
    agent = FakeAgent("fuzz-agent", "cpus:4;mem:4096")
    sched = Scheduler("fuzz-fw")
    try:
        await agent.register(m.url)
        await sched.subscribe(m.url)
        await sched.next("OFFERS")
        async with httpx.AsyncClient(timeout=10) as c:
            doc = (await c.get(m.url + "/openapi.json")).json()
        assert set(doc["paths"]) >= PATHS
        assert sched.framework_id and sched.stream_id
        schema = tmp_path / "st" / "master-openapi.json"
        schema.parent.mkdir()
        schema.write_text(json.dumps(pinned_document(doc, sched.framework_id, sched.stream_id)))
        status, output, report = await run_schemathesis(schema, m.url, *options)
        generated = report.get("test_cases", {}).get("generated", 0)
        print(f"\nschemathesis master: {generated} requests generated, exit status {status}")
        assert m.alive(), m.log_tail(60)
        assert status == 0, output[-6000:]
        # The framework and the agent survived the fuzzing, and the master never raised.
        assert not sched.closed.is_set() and not agent.closed.is_set()
        assert await sched.call("REVIVE") == 202
        assert "Traceback" not in m.log_path.read_text(errors="replace"), m.log_tail(80)
        return int(generated)
    finally:
        await sched.close()
        await agent.close()


async def test_master_api_fuzz_has_no_server_errors(zk, masters, tmp_path):
    generated = await _fuzz(zk, masters, tmp_path, "--phases", "coverage,fuzzing",
                            "--max-examples", "25")  # fmt: skip
    assert generated >= 8 * 10


@pytest.mark.slow
@pytest.mark.timeout(2400)
async def test_master_api_fuzz_large(zk, masters, tmp_path):
    await _fuzz(zk, masters, tmp_path, "--phases", "coverage,fuzzing", "--max-examples",
                os.environ.get("PADDOCK_FUZZ_EXAMPLES", "300"),
                "--seed", "8")  # fmt: skip


# ---------------------------------------------------------------- what fuzzing found

MALFORMED_OPERATIONS = [
    {"type": "LAUNCH", "launch": [None, None]},  # found by schemathesis: AttributeError, 500
    {"type": "LAUNCH", "launch": "x"},
    {"type": "LAUNCH", "launch": {"task_infos": 5}},  # TypeError: not iterable
    {"type": "LAUNCH", "launch": {"task_infos": "abc"}},
    {"type": "LAUNCH_GROUP", "launch_group": [1]},
    {"type": "LAUNCH_GROUP", "launch_group": {"task_group": "x"}},
    {"type": "LAUNCH_GROUP", "launch_group": {"task_group": {"tasks": 7}}},
]


async def test_malformed_accept_operations_are_refused_and_leave_the_offer(zk, masters):
    m = masters.start(f"zk://{zk.hosts}/accept", 1, "m1", "--allocation-interval", "0.1s")
    agent = FakeAgent("accept-agent", "cpus:2;mem:256")
    sched = Scheduler("accept-fw")
    try:
        await agent.register(m.url)
        await sched.subscribe(m.url)
        offer = (await sched.next("OFFERS"))["offers"]["offers"][0]
        for op in MALFORMED_OPERATIONS:
            call = {"offer_ids": [offer["id"]], "operations": [op]}
            r = await sched.post(
                {"type": "ACCEPT", "framework_id": {"value": sched.framework_id}, "accept": call}
            )
            assert r.status_code == 400, (op, r.status_code, r.text)
            assert "must be" in r.text
        # The offer was not consumed by the refused calls: it still launches a task.
        assert await sched.launch(offer, "t1", 1, 128) == 202
        run = await agent.next("RUN_TASK")
        assert run["run_task"]["task"]["task_id"]["value"] == "t1"
        # Operator calls with ids of the wrong shape (schemathesis: AttributeError, 500).
        async with httpx.AsyncClient(timeout=10) as c:
            for call in (
                {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": [1]}},
                {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": "S1"}},
                {"type": "MARK_AGENT_GONE", "mark_agent_gone": [1]},
                {"type": "TEARDOWN", "teardown": {"framework_id": [None]}},
                {"type": "TEARDOWN", "teardown": {"framework_id": 5}},
                {"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [[1], "x", {}]}},
            ):
                r = await c.post(m.url + "/api/v1", json=call)
                assert r.status_code == 400, (call, r.status_code, r.text)
        assert "Traceback" not in m.log_path.read_text(errors="replace"), m.log_tail(80)
    finally:
        await sched.close()
        await agent.close()
