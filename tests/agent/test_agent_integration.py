"""The agent against an in-test master stand-in speaking the master side of the protocol."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from paddock.agent.server import AgentServer

from .conftest import make_config
from .fake_master import FakeMaster

FW = "fw-1"


def run_task(task_id: str, cmd: str, **extra) -> dict:
    task = {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": {"value": "agent-1"},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": 31000, "end": 31001}]},
            },
        ],
        "command": {"value": cmd},
        **extra,
    }
    return {
        "type": "RUN_TASK",
        "run_task": {
            "framework": {"id": {"value": FW}, "name": "test", "user": "root"},
            "task": task,
        },
    }


@contextlib.asynccontextmanager
async def running_agent(tmp_path, master: FakeMaster, *, master_url: str | None = None, **extra):
    server = AgentServer(make_config(tmp_path / "agent", master_url or master.address, **extra))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_register_run_finish_ack(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master) as server:
        reg = await fake_master.wait_registrations(1)
        assert reg["agent_info"]["hostname"] == "localhost"
        assert "id" not in reg["agent_info"]
        names = {r["name"] for r in reg["agent_info"]["resources"]}
        assert names == {"cpus", "mem", "disk", "ports"}
        await fake_master.wait_for(lambda m: server.agent.registered)
        fake_master.send(run_task("t1", "echo hello; echo oops >&2"))
        starting = await fake_master.wait_update("t1", "TASK_STARTING")
        # Only the head is outstanding: RUNNING waits for STARTING's acknowledgement.
        await asyncio.sleep(0.3)
        assert [s["state"] for s in fake_master.updates("t1")] == ["TASK_STARTING"]
        fake_master.ack(FW, starting)
        running = await fake_master.wait_update("t1", "TASK_RUNNING")
        fake_master.ack(FW, running)
        done = await fake_master.wait_update("t1", "TASK_FINISHED")
        assert done["source"] == "SOURCE_EXECUTOR"
        assert done["agent_id"] == {"value": "agent-1"}
        assert isinstance(done["timestamp"], float)
        fake_master.ack(FW, done)
        await fake_master.wait_for(lambda m: ("fw-1", "t1") not in server.agent.tasks)
        task = server.agent.completed[-1]
        assert (task.sandbox / "stdout").read_text() == "hello\n"
        assert (task.sandbox / "stderr").read_text() == "oops\n"
        assert not server.agent.store.task_dir(FW, "t1").exists()


async def test_head_retried_until_acknowledged(tmp_path, fake_master):
    async with running_agent(
        tmp_path, fake_master, status_retry_min=0.1, status_retry_max=0.2
    ) as server:
        await fake_master.wait_registrations(1)
        fake_master.send(run_task("t1", "exit 3"))
        await fake_master.wait_for(lambda m: len(m.updates("t1")) >= 3)
        sent = fake_master.updates("t1")
        # The same head (same uuid) again and again: nothing newer overtakes it.
        assert {s["uuid"] for s in sent} == {sent[0]["uuid"]}
        assert sent[0]["state"] == "TASK_STARTING"
        fake_master.ack(FW, sent[0])
        running = await fake_master.wait_update("t1", "TASK_RUNNING")
        fake_master.ack(FW, running)
        failed = await fake_master.wait_update("t1", "TASK_FAILED")
        assert failed["message"] == "Command exited with status 3"
        # A stale acknowledgement (already acknowledged uuid) is ignored.
        fake_master.ack(FW, running)
        fake_master.ack(FW, failed)
        await fake_master.wait_for(lambda m: not server.agent.tasks)
        assert server.agent.updates.counters["invalid_acks"] == 1


async def test_stream_break_reregisters_same_id_with_tasks(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_registrations(1)
        fake_master.auto_ack = True
        fake_master.send(run_task("long", "sleep 30"))
        await fake_master.wait_update("long", "TASK_RUNNING")
        await fake_master.wait_for(lambda m: not server.agent.updates.unacknowledged())
        fake_master.close_stream()  # master failover: the stream ends
        reg = await fake_master.wait_registrations(2)
        assert reg["agent_info"]["id"] == {"value": "agent-1"}
        [task] = reg["tasks"]
        assert task["task_id"] == {"value": "long"}
        assert task["state"] == "TASK_RUNNING"
        assert task["framework_id"] == {"value": FW}
        assert reg["frameworks"][0]["id"] == {"value": FW}
        assert reg["unacknowledged_updates"] == []
        await fake_master.wait_for(lambda m: server.agent.registered)
        fake_master.send(
            {
                "type": "KILL_TASK",
                "kill_task": {
                    "framework_id": {"value": FW},
                    "task_id": {"value": "long"},
                    "kill_policy": {"grace_period": {"nanoseconds": 0}},
                },
            }
        )
        killed = await fake_master.wait_update("long", "TASK_KILLED")
        assert (
            killed["message"] == "Command terminated with signal SIGTERM"
            or "SIGKILL" in (killed["message"])
        )


async def test_unacknowledged_updates_go_with_reregistration(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_registrations(1)
        fake_master.send(run_task("t1", "sleep 30"))
        starting = await fake_master.wait_update("t1", "TASK_STARTING")
        # RUNNING is recorded (not sent: STARTING is unacknowledged) once it is spawned.
        await fake_master.wait_for(lambda m: server.agent.tasks[(FW, "t1")].state == "TASK_RUNNING")
        fake_master.close_stream()
        reg = await fake_master.wait_registrations(2)
        states = [u["state"] for u in reg["unacknowledged_updates"]]
        assert states[:1] == ["TASK_STARTING"]
        assert "TASK_RUNNING" in states  # the whole stream, in order
        # The head is sent again at once on the new stream, same uuid.
        await fake_master.wait_for(
            lambda m: sum(1 for s in m.updates("t1") if s["uuid"] == starting["uuid"]) >= 2
        )


async def test_ping_answered_with_pong(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master):
        await fake_master.wait_registrations(1)
        fake_master.send({"type": "PING", "ping": {}})
        await fake_master.wait_for(lambda m: any(c["type"] == "PONG" for c in m.calls))


async def test_missing_pings_make_the_agent_reconnect(tmp_path):
    master = await FakeMaster(ping_interval=0.1).start()
    try:
        async with running_agent(tmp_path, master, max_missed_pings=3):
            await master.wait_registrations(1)
            await master.wait_registrations(2, timeout=5)
    finally:
        await master.stop()


async def test_redirect_to_the_leader(tmp_path, fake_master):
    leader = await FakeMaster(agent_id="agent-9").start()
    try:
        fake_master.redirect_to = leader.address
        async with running_agent(tmp_path, fake_master) as server:
            reg = await leader.wait_registrations(1)
            assert reg["agent_info"]["hostname"] == "localhost"
            assert fake_master.registrations == []
            await leader.wait_for(lambda m: server.agent.agent_id == "agent-9")
    finally:
        await leader.stop()


async def test_error_event_and_refusal_lead_to_retries(tmp_path, fake_master):
    fake_master.refuse_status = 503
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_for(lambda m: "503" in server.link.last_error)
        fake_master.refuse_status = None
        await fake_master.wait_registrations(1)
        fake_master.send({"type": "ERROR", "error": {"message": "go away"}})
        await fake_master.wait_registrations(2)


async def test_kill_unknown_task_and_reconcile(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master):
        await fake_master.wait_registrations(1)
        fake_master.auto_ack = True
        fake_master.send(run_task("t1", "sleep 30"))
        await fake_master.wait_update("t1", "TASK_RUNNING")
        fake_master.send(
            {
                "type": "KILL_TASK",
                "kill_task": {"framework_id": {"value": FW}, "task_id": {"value": "nope"}},
            }
        )
        lost = await fake_master.wait_update("nope", "TASK_LOST")
        assert lost["reason"] == "REASON_TASK_UNKNOWN"
        assert "uuid" not in lost  # not reliable: nothing to acknowledge
        fake_master.send(
            {
                "type": "RECONCILE",
                "reconcile": {
                    "tasks": [
                        {"framework_id": {"value": FW}, "task_id": {"value": "t1"}},
                        {"framework_id": {"value": FW}, "task_id": {"value": "ghost"}},
                    ]
                },
            }
        )
        ghost = await fake_master.wait_update("ghost", "TASK_LOST")
        assert ghost["reason"] == "REASON_RECONCILIATION"
        await fake_master.wait_for(
            lambda m: any(s.get("reason") == "REASON_RECONCILIATION" for s in m.updates("t1"))
        )
        fake_master.send(
            {"type": "SHUTDOWN_FRAMEWORK", "shutdown_framework": {"framework_id": {"value": FW}}}
        )
        await fake_master.wait_update("t1", "TASK_KILLED")


async def test_launch_failure_and_invalid_task(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master):
        await fake_master.wait_registrations(1)
        fake_master.auto_ack = True
        msg = run_task("argv", "/nonexistent/binary")
        msg["run_task"]["task"]["command"] = {
            "shell": False,
            "value": "/nonexistent/binary",
            "arguments": ["binary", "-x"],
        }
        fake_master.send(msg)
        failed = await fake_master.wait_update("argv", "TASK_FAILED")
        assert "Failed to launch" in failed["message"]
        assert failed["reason"] == "REASON_COMMAND_EXECUTOR_FAILED"
        fake_master.send(run_task("../escape", "true"))
        bad = await fake_master.wait_update("../escape", "TASK_ERROR")
        assert bad["reason"] == "REASON_TASK_INVALID"


async def test_http_endpoints_and_sandbox_files(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_registrations(1)
        fake_master.auto_ack = True
        fake_master.send(run_task("web", "echo out-$PORT0-$PORTS; exec sleep 30"))
        await fake_master.wait_update("web", "TASK_RUNNING")
        base = f"http://127.0.0.1:{server.config.port}"
        async with httpx.AsyncClient(base_url=base, timeout=5) as c:
            state = (await c.get("/state")).json()
            assert state["id"] == "agent-1"
            assert state["resources"]["cpus"] == 2.0
            assert state["resources"]["ports"] == "[31000-31010]"
            assert state["attributes"] == {"rack": "a"}
            assert "available" in state["cgroups"]
            [fw] = state["frameworks"]
            [ex] = fw["executors"]
            assert ex["tasks"][0]["state"] == "TASK_RUNNING"
            directory = ex["directory"]
            assert (await c.get("/health")).status_code == 200
            assert (await c.get("/version")).json()["version"]
            snap = (await c.get("/metrics/snapshot")).json()
            assert snap["slave/tasks_running"] == 1.0
            assert snap["slave/registered"] == 1.0
            assert snap["slave/cpus_used"] == pytest.approx(0.1)
            prom = (await c.get("/metrics")).text
            assert "paddock_agent_tasks_running 1.0" in prom

            async def stdout() -> dict:
                return (
                    await c.get("/files/read", params={"path": f"{directory}/stdout", "offset": 0})
                ).json()

            await fake_master.wait_for(
                lambda m: (
                    (task := server.agent.tasks.get((FW, "web")))
                    and (task.sandbox / "stdout").stat().st_size > 0
                )
            )
            assert (await stdout()) == {"data": "out-31000-31000,31001\n", "offset": 0}
            size = (await c.get("/files/read", params={"path": f"{directory}/stdout"})).json()
            assert size == {"data": "", "offset": len("out-31000-31000,31001\n")}
            virtual = f"/frameworks/{FW}/executors/web/runs/latest/stdout"
            r = await c.get("/files/read", params={"path": virtual, "offset": 4, "length": 5})
            assert r.json() == {"data": "31000", "offset": 4}
            listing = (await c.get("/files/browse", params={"path": directory})).json()
            assert {e["path"].rsplit("/", 1)[1] for e in listing} >= {"stdout", "stderr"}
            v1 = (await c.post("/api/v1", json={"type": "GET_STATE"})).json()
            [launched] = v1["get_state"]["get_tasks"]["launched_tasks"]
            assert launched["task_id"] == {"value": "web"}
            assert launched["state"] == "TASK_RUNNING"
            agent_v1 = (await c.post("/api/v1", json={"type": "GET_AGENT"})).json()
            assert agent_v1["get_agent"]["agent_info"]["id"] == {"value": "agent-1"}
            health = (await c.post("/api/v1/operator", json={"type": "GET_HEALTH"})).json()
            assert health == {"type": "GET_HEALTH", "get_health": {"healthy": True}}
            assert (await c.post("/api/v1", json={"type": "NOPE"})).status_code == 400
            assert (await c.post("/api/v1", content=b"{")).status_code == 400
            dl = await c.get("/files/download", params={"path": f"{directory}/stdout"})
            assert dl.content == b"out-31000-31000,31001\n"
            for bad in (
                f"{directory}/../../../../../../etc/passwd",
                f"/frameworks/{FW}/executors/web/runs/latest/../../../../../meta/agent.json",
                "/etc/passwd",
            ):
                r = await c.get("/files/read", params={"path": bad, "offset": 0})
                assert r.status_code in (403, 404), bad
                assert "data" not in r.json()


async def test_finished_sandboxes_are_garbage_collected(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master, gc_delay=0.3) as server:
        await fake_master.wait_registrations(1)
        fake_master.auto_ack = True
        fake_master.send(run_task("keep", "sleep 30"))
        fake_master.send(run_task("gone", "echo bye"))
        await fake_master.wait_update("gone", "TASK_FINISHED")
        await fake_master.wait_for(lambda m: server.agent.completed)
        done = server.agent.completed[-1]
        live = server.agent.tasks[(FW, "keep")].sandbox
        # The run directory goes, and with it the emptied .../executors/gone.
        await fake_master.wait_for(lambda m: not done.sandbox.parent.parent.exists(), timeout=10)
        assert live.is_dir()
    # After a restart, leftover sandboxes (the killed "keep") are collected too.
    async with running_agent(tmp_path, fake_master, gc_delay=0.0):
        await fake_master.wait_for(lambda m: not live.exists(), timeout=10)


async def test_task_killing_state_for_frameworks_that_ask(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master):
        await fake_master.wait_registrations(1)
        fake_master.auto_ack = True
        for task_id, caps in (("plain", []), ("aware", [{"type": "TASK_KILLING_STATE"}])):
            msg = run_task(task_id, "sleep 30")
            msg["run_task"]["framework"] = {"id": {"value": f"fw-{task_id}"}, "capabilities": caps}
            fake_master.send(msg)
            await fake_master.wait_update(task_id, "TASK_RUNNING")
            fake_master.send(
                {
                    "type": "KILL_TASK",
                    "kill_task": {
                        "framework_id": {"value": f"fw-{task_id}"},
                        "task_id": {"value": task_id},
                    },
                }
            )
            await fake_master.wait_update(task_id, "TASK_KILLED")
        assert [s["state"] for s in fake_master.updates("aware")][-2:] == [
            "TASK_KILLING",
            "TASK_KILLED",
        ]
        assert "TASK_KILLING" not in [s["state"] for s in fake_master.updates("plain")]


async def test_new_agent_id_from_the_master_drops_old_tasks(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_registrations(1)
        fake_master.auto_ack = True
        fake_master.send(run_task("old", "sleep 30"))
        await fake_master.wait_update("old", "TASK_RUNNING")
        pid = server.agent.tasks[(FW, "old")].pid
        fake_master.agent_id = "agent-2"  # the master no longer knows agent-1
        fake_master.close_stream()
        reg = await fake_master.wait_registrations(2)
        assert reg["agent_info"]["id"] == {"value": "agent-1"}
        await fake_master.wait_for(lambda m: server.agent.agent_id == "agent-2")
        assert (FW, "old") not in server.agent.tasks
        assert server.agent.store.load_agent()["agent_id"] == "agent-2"

        def gone() -> bool:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    return f.read().split(") ")[1][0] == "Z"
            except OSError:
                return True

        await fake_master.wait_for(lambda m: gone())


async def test_duplicate_run_task_is_ignored(tmp_path, fake_master):
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_registrations(1)
        fake_master.auto_ack = True
        fake_master.send(run_task("dup", "sleep 30"))
        await fake_master.wait_update("dup", "TASK_RUNNING")
        fake_master.send(run_task("dup", "echo second"))  # ignored: already running here
        fake_master.send({"type": "PING", "ping": {}})
        await fake_master.wait_for(lambda m: any(c["type"] == "PONG" for c in m.calls))
        assert server.agent.counters["tasks_launched"] == 1
