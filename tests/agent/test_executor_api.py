"""The v1 executor HTTP API (``POST /api/v1/executor``) of a real agent.

The agent runs against the in-test master stand-in and starts real executor processes;
the executor side of the protocol is spoken by the test itself with httpx (the process
the agent starts only records its environment and waits), so every event can be
checked as it arrives.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from paddock.recordio import RecordIODecoder

from .test_agent_integration import FW, run_task, running_agent

pytestmark = pytest.mark.timeout(60)

# The agent-started process: record the environment, then wait to be killed.
WAIT_CMD = "env > env.txt; exec sleep 60"


def executor_task(task_id: str, executor_id: str = "ex-1", cmd: str = WAIT_CMD, **ex) -> dict:
    event = run_task(task_id, "unused")
    info = event["run_task"]["task"]
    del info["command"]
    info["executor"] = {
        "executor_id": {"value": executor_id},
        "name": "test executor",
        "command": {
            "value": cmd,
            "environment": {"variables": [{"name": "EXTRA_VAR", "value": "extra"}]},
        },
        **ex,
    }
    return event


def new_uuid() -> str:
    return base64.b64encode(uuid.uuid4().bytes).decode()


class ExecutorSide:
    """The executor side of the API: a SUBSCRIBE stream read in the background."""

    def __init__(self, endpoint: str, framework_id: str, executor_id: str) -> None:
        self.url = f"http://{endpoint}/api/v1/executor"
        self.ids = {"framework_id": {"value": framework_id}, "executor_id": {"value": executor_id}}
        self.client = httpx.AsyncClient(timeout=10)
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def subscribe(self, **subscribe: Any) -> None:
        assert await self.try_subscribe(**subscribe) == 200

    async def try_subscribe(self, **subscribe: Any) -> int:
        """SUBSCRIBE; the HTTP status (0 when the agent could not be reached)."""
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def read() -> None:
            call = {"type": "SUBSCRIBE", **self.ids, "subscribe": subscribe}
            try:
                async with self.client.stream(
                    "POST", self.url, json=call, headers={"Accept": "application/json"}
                ) as resp:
                    ready.set_result(resp.status_code)
                    assert resp.headers["content-type"].startswith("application/json")
                    decoder = RecordIODecoder()
                    async for chunk in resp.aiter_bytes():
                        for record in decoder.feed(chunk):
                            self.events.put_nowait(json.loads(record))
            except httpx.HTTPError:
                pass
            finally:
                if not ready.done():
                    ready.set_result(0)
                self.events.put_nowait(None)

        self._reader = asyncio.create_task(read())
        return await ready

    async def next_event(self, timeout: float = 10.0, skip_heartbeats: bool = True) -> Any:
        while True:
            event = await asyncio.wait_for(self.events.get(), timeout)
            if not (skip_heartbeats and event and event.get("type") == "HEARTBEAT"):
                return event

    async def update(self, task_id: str, state: str, **extra: Any) -> tuple[httpx.Response, str]:
        status = {"task_id": {"value": task_id}, "state": state, "uuid": new_uuid(), **extra}
        call = {"type": "UPDATE", **self.ids, "update": {"status": status}}
        return await self.client.post(self.url, json=call), status["uuid"]

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.client.aclose()


async def executor_env(server, executor_id: str = "ex-1", timeout: float = 15.0) -> dict[str, str]:
    """The environment the agent gave the executor process (from its env.txt)."""
    manager = server.agent.executors
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        run = manager.lookup(FW, executor_id)
        if run is not None and (run.sandbox / "env.txt").is_file():
            text = (run.sandbox / "env.txt").read_text()
            if text.endswith("\n"):
                return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        assert loop.time() < deadline, "the executor process did not start"
        await asyncio.sleep(0.05)


async def test_launch_subscribe_update_acknowledge_kill_shutdown(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_for(lambda m: server.agent.registered)
        fake_master.send(
            executor_task(
                "t1",
                shutdown_grace_period={"nanoseconds": 500_000_000},
                resources=[{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.05}}],
            )
        )
        env = await executor_env(server)
        run = server.agent.executors.lookup(FW, "ex-1")
        assert env["MESOS_FRAMEWORK_ID"] == FW
        assert env["MESOS_EXECUTOR_ID"] == "ex-1"
        assert env["MESOS_AGENT_ENDPOINT"] == f"127.0.0.1:{server.config.port}"
        assert env["MESOS_DIRECTORY"] == env["MESOS_SANDBOX"] == str(run.sandbox)
        assert env["MESOS_CHECKPOINT"] == "0"
        assert env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "500ms"
        assert env["MESOS_HTTP_COMMAND_EXECUTOR"] == "0"
        assert env["EXTRA_VAR"] == "extra"
        assert "MESOS_TASK_ID" not in env
        assert run.sandbox.parts[-4:-1] == ("executors", "ex-1", "runs")
        assert (run.sandbox / "stdout").exists() and (run.sandbox / "stderr").exists()
        # Nothing is reported before the executor does.
        assert server.agent.tasks[(FW, "t1")].state == "TASK_STAGING"
        assert fake_master.updates("t1") == []

        ex = ExecutorSide(env["MESOS_AGENT_ENDPOINT"], FW, "ex-1")
        try:
            await ex.subscribe()
            subscribed = await ex.next_event()
            assert subscribed["type"] == "SUBSCRIBED"
            body = subscribed["subscribed"]
            assert body["executor_info"]["executor_id"] == {"value": "ex-1"}
            assert body["executor_info"]["framework_id"] == {"value": FW}
            assert body["framework_info"]["id"] == {"value": FW}
            assert body["agent_info"]["id"] == {"value": "agent-1"}
            assert body["container_id"]["value"] == run.run_id
            launch = await ex.next_event()
            assert launch["type"] == "LAUNCH"
            assert launch["launch"]["task"]["task_id"] == {"value": "t1"}

            # A second task for the same executor is sent to it, not started anew.
            fake_master.send(executor_task("t2"))
            launch2 = await ex.next_event()
            assert launch2["launch"]["task"]["task_id"] == {"value": "t2"}
            assert len(list(run.sandbox.parent.iterdir())) == 1
            async with httpx.AsyncClient() as client:
                base = f"http://127.0.0.1:{server.config.port}"
                state = (await client.get(f"{base}/state")).json()
                op = await client.post(f"{base}/api/v1", json={"type": "GET_EXECUTORS"})
            (fw,) = state["frameworks"]
            (entry,) = fw["executors"]
            assert entry["id"] == "ex-1" and entry["directory"] == str(run.sandbox)
            assert entry["pid"] == run.pid and entry["name"] == "test executor"
            assert sorted(t["id"] for t in entry["tasks"]) == ["t1", "t2"]
            assert {t["executor_id"] for t in entry["tasks"]} == {"ex-1"}
            # Two tasks of 0.1 cpus and the executor's own 0.05.
            assert state["used_resources"]["cpus"] == pytest.approx(0.25)
            (ex_info,) = op.json()["get_executors"]["executors"]
            assert ex_info["executor_info"]["executor_id"] == {"value": "ex-1"}
            assert ex_info["executor_info"]["type"] == "CUSTOM"

            resp, running_uuid = await ex.update("t1", "TASK_RUNNING", message="up")
            assert resp.status_code == 202, resp.text
            running = await fake_master.wait_update("t1", "TASK_RUNNING")
            assert running["uuid"] == running_uuid
            assert running["executor_id"] == {"value": "ex-1"}
            assert running["source"] == "SOURCE_EXECUTOR"
            assert running["agent_id"] == {"value": "agent-1"}
            assert running["message"] == "up"
            fake_master.ack(FW, running)
            acked = await ex.next_event()
            assert acked == {
                "type": "ACKNOWLEDGED",
                "acknowledged": {"task_id": {"value": "t1"}, "uuid": running_uuid},
            }
            # A resent (duplicate) update is accepted and acknowledged again, not re-sent.
            resp = await ex.client.post(
                ex.url,
                json={"type": "UPDATE", **ex.ids, "update": {"status": running}},
            )
            assert resp.status_code == 202
            assert (await ex.next_event())["type"] == "ACKNOWLEDGED"
            assert len(fake_master.updates("t1")) == 1

            resp, finished_uuid = await ex.update("t1", "TASK_FINISHED")
            assert resp.status_code == 202
            finished = await fake_master.wait_update("t1", "TASK_FINISHED")
            fake_master.ack(FW, finished)
            acked = await ex.next_event()
            assert acked["acknowledged"]["uuid"] == finished_uuid
            await fake_master.wait_for(lambda m: (FW, "t1") not in server.agent.tasks)

            # KILL from the framework reaches the executor, which ends the task.
            fake_master.auto_ack = True
            fake_master.send(
                {
                    "type": "KILL_TASK",
                    "kill_task": {"framework_id": {"value": FW}, "task_id": {"value": "t2"}},
                }
            )
            kill = await ex.next_event()
            assert kill["type"] == "KILL"
            assert kill["kill"]["task_id"] == {"value": "t2"}
            assert kill["kill"]["kill_policy"]["grace_period"]["nanoseconds"] == 1_000_000_000
            resp, _ = await ex.update("t2", "TASK_KILLED")
            assert resp.status_code == 202
            await fake_master.wait_update("t2", "TASK_KILLED")
            assert (await ex.next_event())["type"] == "ACKNOWLEDGED"

            # Framework shutdown: SHUTDOWN, then the process group is killed after the
            # executor's shutdown grace period (it does not exit on its own here).
            fake_master.send(
                {
                    "type": "SHUTDOWN_FRAMEWORK",
                    "shutdown_framework": {"framework_id": {"value": FW}},
                }
            )
            assert (await ex.next_event())["type"] == "SHUTDOWN"
            assert await ex.next_event() is None  # the stream ends with the process
            await asyncio.wait_for(run.exited.wait(), 10)
            assert server.agent.executors.lookup(FW, "ex-1") is None
        finally:
            await ex.close()


async def test_bad_calls_get_clear_errors_and_the_agent_stays_up(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_for(lambda m: server.agent.registered)
        fake_master.send(executor_task("t1"))
        env = await executor_env(server)
        url = f"http://{env['MESOS_AGENT_ENDPOINT']}/api/v1/executor"
        ids = {"framework_id": {"value": FW}, "executor_id": {"value": "ex-1"}}
        status = {"task_id": {"value": "t1"}, "state": "TASK_RUNNING", "uuid": new_uuid()}
        update = {"type": "UPDATE", **ids, "update": {"status": status}}
        json_ct = {"Content-Type": "application/json"}
        async with httpx.AsyncClient(timeout=10) as client:

            async def post(body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                return await client.post(url, content=data, headers=headers or json_ct)

            cases = [
                (b"{not json", None, 400, "JSON"),
                (b"\xff\xfe", None, 400, "JSON"),
                ([1, 2], None, 400, "object"),
                ({"type": "NOPE", **ids}, None, 400, "type"),
                ({"type": "UPDATE", "executor_id": ids["executor_id"]}, None, 400, "framework_id"),
                ({"type": "UPDATE", "framework_id": ids["framework_id"]}, None, 400, "executor_id"),
                (update, {"Content-Type": "application/x-protobuf"}, 415, "protobuf"),
                (update, {"Content-Type": "text/plain"}, 415, "Content-Type"),
                (
                    {**update, "framework_id": {"value": "nope"}},
                    None,
                    400,
                    "Framework cannot be found",
                ),
                (
                    {**update, "executor_id": {"value": "nope"}},
                    None,
                    400,
                    "Executor cannot be found",
                ),
                (update, None, 403, "not subscribed"),
                (
                    {"type": "SUBSCRIBE", **ids},
                    {**json_ct, "Accept": "application/x-protobuf"},
                    406,
                    "Accept",
                ),
            ]
            for body, headers, code, text in cases:
                resp = await post(body, headers)
                assert resp.status_code == code, (body, resp.text)
                assert text in resp.text, (body, resp.text)
            resp = await client.post(url, content=b"{}")  # no Content-Type
            assert resp.status_code == 400 and "Content-Type" in resp.text
            assert (await client.get(url)).status_code == 405
            hb = await post({"type": "HEARTBEAT", **ids})
            assert hb.status_code == 202

            ex = ExecutorSide(env["MESOS_AGENT_ENDPOINT"], FW, "ex-1")
            try:
                await ex.subscribe()
                assert (await ex.next_event())["type"] == "SUBSCRIBED"
                assert (await ex.next_event())["type"] == "LAUNCH"
                bad_updates = [
                    ({"state": "TASK_RUNNING", "uuid": new_uuid()}, "task_id"),
                    ({**status, "uuid": "not base64!"}, "uuid"),
                    ({**status, "uuid": base64.b64encode(b"short").decode()}, "uuid"),
                    ({k: v for k, v in status.items() if k != "uuid"}, "uuid"),
                    ({**status, "state": "RUNNING"}, "state"),
                    ({**status, "state": "TASK_STAGING"}, "TASK_STAGING"),
                    ({**status, "task_id": {"value": "other"}}, "not a live task"),
                    ({**status, "executor_id": {"value": "ex-2"}}, "executor"),
                ]
                for st, text in bad_updates:
                    resp = await post({"type": "UPDATE", **ids, "update": {"status": st}})
                    assert resp.status_code == 400, (st, resp.text)
                    assert text in resp.text, (st, resp.text)
                resp = await post({"type": "UPDATE", **ids})
                assert resp.status_code == 400 and "update.status" in resp.text
                resp = await post({"type": "MESSAGE", **ids})
                assert resp.status_code == 400 and "message.data" in resp.text
                resp = await post({"type": "MESSAGE", **ids, "message": {"data": "aGk="}})
                assert resp.status_code == 202
                # ... goes to the master as FRAMEWORK_MESSAGE; the other way is MESSAGE.
                sent = await fake_master.wait_for(
                    lambda m: [c for c in m.calls if c["type"] == "FRAMEWORK_MESSAGE"]
                )
                assert sent[0]["framework_message"] == {
                    "framework_id": {"value": FW},
                    "executor_id": {"value": "ex-1"},
                    "data": "aGk=",
                }
                fake_master.send(
                    {
                        "type": "FRAMEWORK_MESSAGE",
                        "framework_message": {**ids, "data": "aG8="},
                    }
                )
                assert await ex.next_event() == {"type": "MESSAGE", "message": {"data": "aG8="}}
                # None of that reached the master; a good update still works.
                assert fake_master.updates("t1") == []
                resp, _ = await ex.update("t1", "TASK_RUNNING")
                assert resp.status_code == 202
                await fake_master.wait_update("t1", "TASK_RUNNING")
            finally:
                await ex.close()
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{server.config.port}/health")
            assert r.status_code == 200


async def test_executor_exit_fails_its_tasks(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_for(lambda m: server.agent.registered)
        fake_master.auto_ack = True
        fake_master.send(executor_task("t1", cmd="env > env.txt; sleep 60 & wait"))
        env = await executor_env(server)
        ex = ExecutorSide(env["MESOS_AGENT_ENDPOINT"], FW, "ex-1")
        try:
            await ex.subscribe()
            assert (await ex.next_event())["type"] == "SUBSCRIBED"
            assert (await ex.next_event())["type"] == "LAUNCH"
            resp, _ = await ex.update("t1", "TASK_RUNNING")
            assert resp.status_code == 202
            await fake_master.wait_update("t1", "TASK_RUNNING")
            assert (await ex.next_event())["type"] == "ACKNOWLEDGED"
            run = server.agent.executors.lookup(FW, "ex-1")
            assert run is not None and run.pid is not None
            os.kill(run.pid, signal.SIGKILL)
            failed = await fake_master.wait_update("t1", "TASK_FAILED")
            assert failed["reason"] == "REASON_EXECUTOR_TERMINATED"
            assert failed["source"] == "SOURCE_AGENT"
            assert failed["executor_id"] == {"value": "ex-1"}
            assert "SIGKILL" in failed["message"]
            assert await ex.next_event() is None
        finally:
            await ex.close()


async def test_registration_timeout_kills_the_executor(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master) as server:
        server.agent.executors.registration_timeout = 0.5
        await fake_master.wait_for(lambda m: server.agent.registered)
        fake_master.send(executor_task("t1"))
        fake_master.send(executor_task("t2"))
        for tid in ("t1", "t2"):
            failed = await fake_master.wait_update(tid, "TASK_FAILED")
            assert failed["reason"] == "REASON_EXECUTOR_REGISTRATION_TIMEOUT"
            assert "did not register within" in failed["message"]
        # Only the terminal update: nothing was ever RUNNING.
        assert [s["state"] for s in fake_master.updates("t1")] == ["TASK_FAILED"]
        assert server.agent.executors.lookup(FW, "ex-1") is None


async def test_kill_before_subscription_and_kill_escalation(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master) as server:
        manager = server.agent.executors
        manager.kill_escalation_slack = 0.3
        await fake_master.wait_for(lambda m: server.agent.registered)
        fake_master.auto_ack = True
        # A task killed while its executor has not subscribed yet never reaches it; an
        # executor all of whose tasks were killed before delivery is shut down.
        fake_master.send(executor_task("early", executor_id="ex-early"))
        await executor_env(server, "ex-early")
        early_run = manager.lookup(FW, "ex-early")
        fake_master.send(
            {
                "type": "KILL_TASK",
                "kill_task": {"framework_id": {"value": FW}, "task_id": {"value": "early"}},
            }
        )
        killed = await fake_master.wait_update("early", "TASK_KILLED")
        assert killed["reason"] == "REASON_TASK_KILLED_DURING_LAUNCH"
        await asyncio.wait_for(early_run.exited.wait(), 10)

        # An executor that ignores KILL is shut down after the grace period + slack.
        fake_master.send(executor_task("t1", shutdown_grace_period={"nanoseconds": 200_000_000}))
        env = await executor_env(server)
        ex = ExecutorSide(env["MESOS_AGENT_ENDPOINT"], FW, "ex-1")
        try:
            await ex.subscribe()
            assert (await ex.next_event())["type"] == "SUBSCRIBED"
            assert (await ex.next_event())["type"] == "LAUNCH"
            await ex.update("t1", "TASK_RUNNING")
            await fake_master.wait_update("t1", "TASK_RUNNING")
            assert (await ex.next_event())["type"] == "ACKNOWLEDGED"
            fake_master.send(
                {
                    "type": "KILL_TASK",
                    "kill_task": {
                        "framework_id": {"value": FW},
                        "task_id": {"value": "t1"},
                        "kill_policy": {"grace_period": {"nanoseconds": 100_000_000}},
                    },
                }
            )
            kill = await ex.next_event()
            assert kill["kill"]["kill_policy"]["grace_period"]["nanoseconds"] == 100_000_000
            assert (await ex.next_event())["type"] == "SHUTDOWN"
            done = await fake_master.wait_update("t1", "TASK_KILLED")
            assert done["reason"] == "REASON_EXECUTOR_TERMINATED"
            assert done["source"] == "SOURCE_AGENT"
            assert "did not kill task t1 in time" in done["message"]
        finally:
            await ex.close()


async def test_agent_stop_shuts_executors_down(tmp_path: Path, fake_master):
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_for(lambda m: server.agent.registered)
        fake_master.send(executor_task("t1", shutdown_grace_period={"nanoseconds": 100_000_000}))
        env = await executor_env(server)
        run = server.agent.executors.lookup(FW, "ex-1")
        ex = ExecutorSide(env["MESOS_AGENT_ENDPOINT"], FW, "ex-1")
        await ex.subscribe()
        assert (await ex.next_event())["type"] == "SUBSCRIBED"
        assert (await ex.next_event())["type"] == "LAUNCH"
    # The agent stopped: it sent SHUTDOWN, then killed the process group.
    assert (await ex.next_event())["type"] == "SHUTDOWN"
    assert run.exited.is_set()
    assert server.agent.tasks[(FW, "t1")].state == "TASK_KILLED"
    await ex.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _agent_process(
    work: Path, master: str, port: int, log: Path, recover: str = "reconnect"
) -> subprocess.Popen:
    env = {**os.environ, "PADDOCK_EXECUTOR_REREGISTRATION_TIMEOUT": "3"}
    return subprocess.Popen(
        [
            sys.executable, "-m", "paddock.cli.main", "agent",
            "--master", master, "--work-dir", str(work), "--port", str(port),
            "--ip", "127.0.0.1", "--hostname", "localhost", "--recover", recover,
            "--resources", "cpus:1;mem:256;disk:100;ports:[31000-31001]",
            "--registration-backoff-factor", "0.05", "--no-cgroups",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
    )  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


async def _sandbox_file(work: Path, executor_id: str, name: str, timeout: float = 15.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pattern = f"slaves/*/frameworks/{FW}/executors/{executor_id}/runs/*/{name}"
    while True:
        for path in work.glob(pattern):
            text = path.read_text()
            if text.endswith("\n"):
                return text
        assert loop.time() < deadline, f"no {name} for {executor_id}"
        await asyncio.sleep(0.05)


async def test_executors_survive_an_agent_kill_9_and_resubscribe(tmp_path, fake_master):
    """kill -9 of the agent: an executor that re-subscribes keeps its task (which then
    finishes normally); one that does not is killed after the re-registration timeout
    and its task is TASK_LOST."""
    work, log, port = tmp_path / "agent", tmp_path / "agent.log", _free_port()
    cmd = "echo $$ > pid; env > env.txt; exec sleep 60"
    proc = _agent_process(work, fake_master.address, port, log)
    sides: list[ExecutorSide] = []
    pids: dict[str, int] = {}
    try:
        await fake_master.wait_registrations(1, timeout=30)
        fake_master.auto_ack = True
        for tid, ex_id in (("t1", "ex-1"), ("t2", "ex-2"), ("t3", "ex-3")):
            event = executor_task(tid, ex_id, cmd=cmd)
            event["run_task"]["framework"]["checkpoint"] = True
            fake_master.send(event)
            pids[ex_id] = int(await _sandbox_file(work, ex_id, "pid"))
            env = dict(
                line.split("=", 1)
                for line in (await _sandbox_file(work, ex_id, "env.txt")).splitlines()
                if "=" in line
            )
            assert env["MESOS_CHECKPOINT"] == "1"
            assert env["MESOS_AGENT_ENDPOINT"] == f"127.0.0.1:{port}"
            side = ExecutorSide(env["MESOS_AGENT_ENDPOINT"], FW, ex_id)
            sides.append(side)
            await side.subscribe()
            assert (await side.next_event())["type"] == "SUBSCRIBED"
            assert (await side.next_event())["type"] == "LAUNCH"
            await side.update(tid, "TASK_RUNNING")
            await fake_master.wait_update(tid, "TASK_RUNNING")
            assert (await side.next_event())["type"] == "ACKNOWLEDGED"
        # ex-3's only task ends before the crash: the executor still runs, taskless.
        await sides[2].update("t3", "TASK_FINISHED")
        await fake_master.wait_update("t3", "TASK_FINISHED")
        assert (await sides[2].next_event())["type"] == "ACKNOWLEDGED"

        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        fake_master.close_stream()
        for side in sides:
            assert await side.next_event() is None  # the agent's end closed the stream
        assert all(_alive(p) for p in pids.values())

        proc = _agent_process(work, fake_master.address, port, log)
        reg = await fake_master.wait_registrations(2, timeout=30)
        states = {t["task_id"]["value"]: t["state"] for t in reg["tasks"]}
        assert states == {"t1": "TASK_RUNNING", "t2": "TASK_RUNNING"}
        assert {t["executor_id"]["value"] for t in reg["tasks"]} == {"ex-1", "ex-2"}

        # The taskless ex-3 is known to the restarted agent too.
        side3 = ExecutorSide(f"127.0.0.1:{port}", FW, "ex-3")
        sides.append(side3)
        assert await side3.try_subscribe() == 200
        assert (await side3.next_event())["type"] == "SUBSCRIBED"

        # ex-1 re-subscribes (as a driver does, with nothing unacknowledged) ...
        side = ExecutorSide(f"127.0.0.1:{port}", FW, "ex-1")
        sides.append(side)
        assert await side.try_subscribe() == 200
        subscribed = await side.next_event()
        assert subscribed["type"] == "SUBSCRIBED"
        resp, done_uuid = await side.update("t1", "TASK_FINISHED")
        assert resp.status_code == 202, resp.text
        # ... and its task was not launched again: the next event is the acknowledgement.
        acked = await side.next_event()
        assert acked["type"] == "ACKNOWLEDGED" and acked["acknowledged"]["uuid"] == done_uuid
        finished = await fake_master.wait_update("t1", "TASK_FINISHED")
        assert finished["executor_id"] == {"value": "ex-1"}
        assert _alive(pids["ex-1"])
        runs = list(work.glob(f"slaves/*/frameworks/{FW}/executors/ex-1/runs/*"))
        assert len(runs) == 1

        # ex-2 never comes back: killed after the re-registration timeout (3 s here).
        lost = await fake_master.wait_update("t2", "TASK_LOST", timeout=20)
        assert lost["reason"] == "REASON_EXECUTOR_REREGISTRATION_TIMEOUT"
        await fake_master.wait_for(lambda m: not _alive(pids["ex-2"]), timeout=10)

        # A graceful stop of the agent shuts the surviving executor down.
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)
        assert not _alive(pids["ex-1"]) and not _alive(pids["ex-3"])
    finally:
        for side in sides:
            await side.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


async def test_executors_that_cannot_run_fail_their_tasks(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_for(lambda m: server.agent.registered)
        no_command = executor_task("invalid", executor_id="ex-invalid")
        del no_command["run_task"]["task"]["executor"]["command"]
        fake_master.send(no_command)
        missing = executor_task("missing", executor_id="ex-missing")
        missing["run_task"]["task"]["executor"]["command"] = {
            "shell": False,
            "value": "/nonexistent/executor",
            "arguments": ["executor"],
        }
        fake_master.send(missing)
        fake_master.send(executor_task("exits", executor_id="ex-exits", cmd="exit 3"))

        error = await fake_master.wait_update("invalid", "TASK_ERROR")
        assert error["reason"] == "REASON_TASK_INVALID"
        assert "no command" in error["message"]
        failed = await fake_master.wait_update("missing", "TASK_FAILED")
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert "/nonexistent/executor" in failed["message"]
        exited = await fake_master.wait_update("exits", "TASK_FAILED")
        assert exited["reason"] == "REASON_EXECUTOR_TERMINATED"
        assert "Executor exited with status 3" in exited["message"]
        assert server.agent.executors.runs == {}


async def test_recover_cleanup_kills_surviving_executors(tmp_path, fake_master):
    work, log, port = tmp_path / "agent", tmp_path / "agent.log", _free_port()
    proc = _agent_process(work, fake_master.address, port, log, recover="cleanup")
    pid = None
    try:
        await fake_master.wait_registrations(1, timeout=30)
        fake_master.auto_ack = True
        fake_master.send(executor_task("t1", cmd="echo $$ > pid; exec sleep 60"))
        pid = int(await _sandbox_file(work, "ex-1", "pid"))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        fake_master.close_stream()
        assert _alive(pid)
        proc = _agent_process(work, fake_master.address, port, log, recover="cleanup")
        lost = await fake_master.wait_update("t1", "TASK_LOST", timeout=30)
        assert lost["reason"] == "REASON_AGENT_RESTARTED"
        await fake_master.wait_for(lambda m: not _alive(pid), timeout=10)
        assert not list(work.glob("meta/frameworks/*/executors/*/executor.json"))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
