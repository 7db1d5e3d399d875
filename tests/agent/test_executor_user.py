"""``ExecutorInfo.command.user``: a custom executor runs as that user (Mesos's
``--switch_user``), with the rules of process tasks (:mod:`paddock.agent.task_user`).

The executor is a real one: a small v1 executor written against the stdlib only (the
venv's python lives where ``nobody`` may not go, so it runs with the system
``python3``), fetched into its sandbox through ``command.uris``.  It subscribes, and for
each LAUNCH reports TASK_RUNNING then TASK_FINISHED whose message says who it runs as and
who owns the file it wrote in its sandbox.
"""

from __future__ import annotations

import os
import pwd
import shutil

import pytest

from .test_agent_integration import FW, run_task, running_agent

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root"),
    pytest.mark.skipif(shutil.which("python3", path="/usr/bin:/bin") is None, reason="no python3"),
]

NOBODY = pwd.getpwnam("nobody")

# A stdlib-only v1 executor (docs/executor-http-api.md): SUBSCRIBE, then per LAUNCH
# UPDATE TASK_RUNNING and TASK_FINISHED; relative paths only (its cwd is the sandbox, whose
# parents, pytest's 0700 tmp dirs, nobody may not enter; hence also "python3 - < file").
EXECUTOR = r"""
import base64, http.client, json, os, pwd, uuid

host, port = os.environ["MESOS_AGENT_ENDPOINT"].rsplit(":", 1)
ids = {"framework_id": {"value": os.environ["MESOS_FRAMEWORK_ID"]},
       "executor_id": {"value": os.environ["MESOS_EXECUTOR_ID"]}}
me = pwd.getpwuid(os.getuid()).pw_name


def call(body):
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", "/api/v1/executor", json.dumps(body),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status == 202, resp.status


def update(task_id, state, message):
    status = {"task_id": task_id, "state": state, "message": message,
              "uuid": base64.b64encode(uuid.uuid4().bytes).decode()}
    call({"type": "UPDATE", **ids, "update": {"status": status}})


conn = http.client.HTTPConnection(host, int(port), timeout=300)
conn.request("POST", "/api/v1/executor", json.dumps({"type": "SUBSCRIBE", **ids, "subscribe": {}}),
             {"Content-Type": "application/json", "Accept": "application/json"})
stream = conn.getresponse()
assert stream.status == 200, stream.status
while True:
    size = stream.readline()
    if not size:
        break
    event = json.loads(stream.read(int(size)))
    if event["type"] == "LAUNCH":
        task_id = event["launch"]["task"]["task_id"]
        update(task_id, "TASK_RUNNING", "running as " + me)
        with open("written-by-executor", "w") as f:
            f.write(me)
        owner = pwd.getpwuid(os.stat("written-by-executor").st_uid).pw_name
        fetched = pwd.getpwuid(os.stat("executor.py").st_uid).pw_name
        update(task_id, "TASK_FINISHED", f"ran as {me}, wrote a file owned by {owner}, "
                                         f"fetched file owned by {fetched}")
    elif event["type"] == "SHUTDOWN":
        break
"""


def executor_task(task_id: str, script: str, user: str | None, executor_id: str = "ex-u") -> dict:
    event = run_task(task_id, "unused")
    info = event["run_task"]["task"]
    del info["command"]
    command: dict = {"value": "exec /usr/bin/python3 - < executor.py", "uris": [{"value": script}]}
    if user is not None:
        command["user"] = user
    info["executor"] = {"executor_id": {"value": executor_id}, "command": command}
    return event


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "executor.py"
    path.write_text(EXECUTOR)
    return str(path)


async def test_executor_runs_as_its_command_user(tmp_path, fake_master, script):
    fake_master.auto_ack = True
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_for(lambda m: server.agent.registered, timeout=30)
        fake_master.send(executor_task("as-nobody", script, "nobody"))
        running = await fake_master.wait_update("as-nobody", "TASK_RUNNING", timeout=30)
        assert running["message"] == "running as nobody"
        done = await fake_master.wait_update("as-nobody", "TASK_FINISHED", timeout=30)
        assert done["message"] == (
            "ran as nobody, wrote a file owned by nobody, fetched file owned by nobody"
        )
        run = server.agent.executors.lookup(FW, "ex-u")
        assert run is not None and run.process is not None
        # every update names the executor run holding the task (the master counts runs)
        for status in (running, done):
            assert status["container_status"]["container_id"] == {"value": run.run_id}
        assert os.stat(f"/proc/{run.process.pid}").st_uid == NOBODY.pw_uid
        assert run.sandbox.stat().st_uid == NOBODY.pw_uid  # the sandbox is the user's
        assert (run.sandbox / "stdout").stat().st_uid == NOBODY.pw_uid

        # Without a user the executor runs as the agent (root), as before.
        fake_master.send(executor_task("as-agent", script, None, executor_id="ex-root"))
        done = await fake_master.wait_update("as-agent", "TASK_FINISHED", timeout=30)
        assert (
            done["message"] == "ran as root, wrote a file owned by root, fetched file owned by root"
        )


async def test_unknown_executor_user_fails_its_tasks(tmp_path, fake_master, script):
    fake_master.auto_ack = True
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_for(lambda m: server.agent.registered, timeout=30)
        fake_master.send(executor_task("missing", script, "no-such-user-x"))
        failed = await fake_master.wait_update("missing", "TASK_FAILED", timeout=30)
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert failed["source"] == "SOURCE_AGENT"
        assert failed["message"] == (
            "Failed to launch executor 'ex-u' as user 'no-such-user-x': no such user on this agent"
        )
        # never started; the master is told it is gone (its resources come back)
        exited = await fake_master.wait_for(
            lambda m: [c for c in m.calls if c.get("type") == "EXITED_EXECUTOR"], timeout=30
        )
        body = exited[0]["exited_executor"]
        assert body["executor_id"] == {"value": "ex-u"}
        # the run that never started is named, as in the task's update
        assert body["container_id"] == failed["container_status"]["container_id"]
        assert server.agent.executors.lookup(FW, "ex-u") is None


async def test_no_switch_user_runs_the_executor_as_the_agent(tmp_path, fake_master, script):
    fake_master.auto_ack = True
    async with running_agent(tmp_path, fake_master, switch_user=False) as server:
        await fake_master.wait_for(lambda m: server.agent.registered, timeout=30)
        fake_master.send(executor_task("unswitched", script, "nobody"))
        done = await fake_master.wait_update("unswitched", "TASK_FINISHED", timeout=30)
        assert done["message"].startswith("ran as root,")


async def test_non_root_agent_refuses_another_executor_user(tmp_path, fake_master, script):
    """An agent that is not root cannot switch: the executor's tasks fail saying why (the
    agent's euid is faked: the check is the agent's, before anything is started)."""
    from paddock.agent import task_user

    fake_master.auto_ack = True
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_for(lambda m: server.agent.registered, timeout=30)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(task_user.os, "geteuid", lambda: NOBODY.pw_uid)
            fake_master.send(executor_task("refused", script, "root"))
            failed = await fake_master.wait_update("refused", "TASK_FAILED", timeout=30)
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert failed["message"].startswith(
            "Failed to launch executor 'ex-u' as user 'root': the agent runs as 'nobody', not root"
        )
        assert "--no-switch-user" in failed["message"]
