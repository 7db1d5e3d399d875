"""End to end: real ZooKeeper, a real ``paddock master`` (with authentication on), a real
``paddock agent`` that finds the master through ZooKeeper and authenticates, and a small
v1 scheduler client launching a task."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from paddock.recordio import RecordIODecoder
from paddock.testing.ports import free_ports

pytestmark = pytest.mark.timeout(120)
HOST = "127.0.0.1"


class Proc:
    """A paddock daemon process started (and always stopped) by the test."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.args = args
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "paddock.cli.main", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        return ""


class Framework:
    """A minimal v1 scheduler: SUBSCRIBE, read events, ACCEPT, ACKNOWLEDGE."""

    def __init__(self, base: str, auth: tuple[str, str] | None = None) -> None:
        self.base = base
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None), auth=auth)
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.framework_id: str | None = None
        self.stream_id = ""
        self._reader: asyncio.Task[None] | None = None

    async def subscribe(self) -> None:
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(ready))
        await asyncio.wait_for(ready, 20)
        ev = await self.next("SUBSCRIBED")
        self.framework_id = ev["subscribed"]["framework_id"]["value"]

    async def _read(self, ready: asyncio.Future[None]) -> None:
        body = {
            "type": "SUBSCRIBE",
            "subscribe": {"framework_info": {"user": "root", "name": "agent-e2e"}},
        }
        async with self.client.stream("POST", self.base + "/api/v1/scheduler", json=body) as resp:
            assert resp.status_code == 200, resp.status_code
            self.stream_id = resp.headers["Mesos-Stream-Id"]
            ready.set_result(None)
            dec = RecordIODecoder()
            async for chunk in resp.aiter_bytes():
                for rec in dec.feed(chunk):
                    self.events.put_nowait(json.loads(rec))

    async def next(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            ev = await asyncio.wait_for(self.events.get(), max(0.01, end - time.monotonic()))
            if ev["type"] == kind:
                return ev

    async def call(self, kind: str, **body: Any) -> int:
        payload = {
            "type": kind,
            "framework_id": {"value": self.framework_id},
            kind.lower(): body,
        }
        r = await self.client.post(
            self.base + "/api/v1/scheduler",
            json=payload,
            headers={"Mesos-Stream-Id": self.stream_id},
        )
        return r.status_code

    async def update(self, task_id: str, timeout: float = 30) -> dict[str, Any]:
        """The next status of ``task_id``, acknowledged when it carries a uuid."""
        while True:
            st = (await self.next("UPDATE", timeout))["update"]["status"]
            if st["task_id"]["value"] != task_id:
                continue
            if "uuid" in st:
                code = await self.call(
                    "ACKNOWLEDGE", agent_id=st["agent_id"], task_id=st["task_id"], uuid=st["uuid"]
                )
                assert code == 202
            return st

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        await self.client.aclose()


def _wait(cond, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _get(url: str) -> Any:
    try:
        r = httpx.get(url, timeout=2)
        return r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


async def test_task_runs_on_a_real_agent_found_through_zookeeper(zk, tmp_path):
    master_port, registry_port, agent_port = free_ports(3)
    zk_url = f"zk://{zk.hosts}/agent-e2e"
    creds = tmp_path / "credentials.json"
    creds.write_text(
        json.dumps(
            {
                "credentials": [
                    {"principal": "agent", "secret": "a-secret"},
                    {"principal": "fw", "secret": "f-secret"},
                ]
            }
        )
    )
    (tmp_path / "agent.cred").write_text("agent a-secret\n")
    master = Proc(
        [
            "master", "--zk", zk_url, "--quorum", "1", "--work-dir", str(tmp_path / "m"),
            "--port", str(master_port), "--registry-port", str(registry_port), "--ip", HOST,
            "--allocation-interval", "0.1s", "--credentials", str(creds),
        ],
        tmp_path / "master.log",
    )  # fmt: skip
    agent_args = [
        "agent", "--master", zk_url, "--port", str(agent_port), "--work-dir",
        str(tmp_path / "a"), "--ip", HOST, "--hostname", HOST,
        "--resources", "cpus:2;mem:512;disk:100;ports:[32100-32110]", "--attributes", "rack:e2e",
        "--registration-backoff-factor", "0.1", "--status-update-retry-min", "1",
        "--credential", str(tmp_path / "agent.cred"),
    ]  # fmt: skip
    agent = Proc(agent_args, tmp_path / "agent.log")
    fw: Framework | None = None
    try:
        master.start()
        agent.start()
        mbase = f"http://{HOST}:{master_port}"
        abase = f"http://{HOST}:{agent_port}"
        _wait(lambda: (_get(mbase + "/metrics/snapshot") or {}).get("master/elected"), 60, "leader")
        agent_id = _wait(lambda: (_get(abase + "/state") or {}).get("id"), 30, "agent registered")
        # Authentication is really on: the same REGISTER without the credential is refused.
        anonymous = {"type": "REGISTER", "register": {"agent_info": {"hostname": "x"}}}
        r = httpx.post(mbase + "/paddock/v1/agent", json=anonymous, timeout=5)
        assert r.status_code == 401, r.text

        fw = Framework(mbase, auth=("fw", "f-secret"))
        await fw.subscribe()
        offer = (await fw.next("OFFERS"))["offers"]["offers"][0]
        assert offer["agent_id"]["value"] == agent_id
        port = 32100
        task = {
            "name": "hello",
            "task_id": {"value": "hello"},
            "agent_id": offer["agent_id"],
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                {
                    "name": "ports",
                    "type": "RANGES",
                    "ranges": {"range": [{"begin": port, "end": port}]},
                },
            ],
            "command": {"value": 'echo "hi $PORT0 $MESOS_TASK_ID"; sleep 0.3'},
        }
        code = await fw.call(
            "ACCEPT",
            offer_ids=[offer["id"]],
            operations=[{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
        )
        assert code == 202
        states = []
        while not states or states[-1] not in ("TASK_FINISHED", "TASK_FAILED", "TASK_LOST"):
            states.append((await fw.update("hello"))["state"])
        assert "TASK_RUNNING" in states
        assert states[-1] == "TASK_FINISHED", states

        # The sandbox's stdout through the agent's /files/read.
        path = f"/frameworks/{fw.framework_id}/executors/hello/runs/latest/stdout"
        read = _get(abase + f"/files/read?path={path}&offset=0")
        assert read == {"data": f"hi {port} hello\n", "offset": 0}

        # A restarted agent (same work dir) keeps its id with the real master.
        assert agent.stop() == 0
        agent = Proc(agent_args, tmp_path / "agent.log").start()
        _wait(lambda: (_get(abase + "/state") or {}).get("registered"), 30, "re-registration")
        assert _get(abase + "/state")["id"] == agent_id
        slaves = _get(mbase + "/master/slaves")["slaves"]
        assert [s["id"] for s in slaves] == [agent_id]
    except BaseException:
        print("--- master ---\n" + master.tail() + "\n--- agent ---\n" + agent.tail())
        raise
    finally:
        if fw is not None:
            await fw.close()
        agent.stop()
        master.stop()
