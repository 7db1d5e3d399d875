"""Test-side clients of the master: a v1 scheduler client and a fake agent (both httpx +
RecordIO), and helpers that run ``paddock master`` processes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from paddock.recordio import RecordIODecoder

HOST = "127.0.0.1"

_handed_out: set[int] = set()
_rng = random.Random(os.getpid())


def fixed_ports(count: int) -> list[int]:
    """Ports below the kernel's ephemeral range (32768+ on Linux) that are free now.

    Masters keep their ports across restarts and bind them seconds after the test
    picked them; a port from the ephemeral range can meanwhile become the local end
    of some outgoing connection, so these come from 20000-32767 instead."""
    out: list[int] = []
    while len(out) < count:
        port = _rng.randrange(20000, 32768)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        _handed_out.add(port)
        out.append(port)
    return out


class HttpStatusError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}")
        self.status = status
        self.text = text


class EventStreamClient:
    """POSTs a subscribing call and reads the RecordIO event stream in the background.

    Follows 307 (``Location: //host:port/path``) and retries 503 until ``deadline``.
    """

    stream_header = "Mesos-Stream-Id"
    path = "/api/v1/scheduler"

    def __init__(self) -> None:
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None))
        self.base: str | None = None
        self.stream_id: str | None = None
        self.events: list[dict[str, Any]] = []
        self._consumed: set[int] = set()
        self._new = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.auth: tuple[str, str] | None = None

    async def open(self, base: str, body: dict[str, Any], deadline: float = 20.0) -> None:
        end = time.monotonic() + deadline
        last = ""
        while time.monotonic() < end:
            started: asyncio.Future[httpx.Response] = asyncio.get_running_loop().create_future()
            self.closed.clear()
            self._reader = asyncio.create_task(self._read(base, body, started))
            try:
                resp = await started
            except httpx.TransportError as exc:
                last = repr(exc)
                await asyncio.sleep(0.1)
                continue
            if resp.status_code == 200:
                self.base = base
                self.stream_id = resp.headers.get(self.stream_header)
                return
            if resp.status_code == 307:
                loc = resp.headers["location"]
                base = "http://" + loc[2:].split("/", 1)[0]
                continue
            if resp.status_code == 503:
                last = "503"
                await asyncio.sleep(0.1)
                continue
            raise HttpStatusError(resp.status_code, resp.text)
        raise TimeoutError(f"could not subscribe: {last}")

    async def _read(
        self, base: str, body: dict[str, Any], started: asyncio.Future[httpx.Response]
    ) -> None:
        try:
            async with self.client.stream(
                "POST", base + self.path, json=body, auth=self.auth
            ) as resp:
                if resp.status_code != 200:
                    await resp.aread()
                    started.set_result(resp)
                    return
                started.set_result(resp)
                dec = RecordIODecoder()
                async for chunk in resp.aiter_raw():
                    for rec in dec.feed(chunk):
                        self.events.append(json.loads(rec))
                        self._on_event(self.events[-1])
                        self._new.set()
        except Exception as exc:
            if not started.done():
                started.set_exception(exc)
        finally:
            self.closed.set()
            self._new.set()

    def _on_event(self, event: dict[str, Any]) -> None:
        pass

    async def next(self, etype: str, timeout: float = 10.0, pred: Any = None) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if i in self._consumed or ev.get("type") != etype:
                    continue
                if pred is None or pred(ev):
                    self._consumed.add(i)
                    return ev
            remaining = end - time.monotonic()
            if remaining <= 0:
                types = [e.get("type") for e in self.events]
                raise TimeoutError(f"no {etype} event within {timeout}s (saw {types})")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), remaining)

    async def post(self, body: dict[str, Any]) -> httpx.Response:
        assert self.base is not None
        headers = {self.stream_header: self.stream_id or ""}
        return await self.client.post(
            self.base + self.path, json=body, headers=headers, auth=self.auth
        )

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        await self.client.aclose()


class Scheduler(EventStreamClient):
    def __init__(self, name: str = "test-fw", **info: Any) -> None:
        super().__init__()
        self.info: dict[str, Any] = {"user": "root", "name": name, **info}
        self.framework_id: str | None = None
        self.auto_ack = False

    def _on_event(self, event: dict[str, Any]) -> None:
        if self.auto_ack and event.get("type") == "UPDATE":
            status = event["update"]["status"]
            if "uuid" in status:
                asyncio.get_running_loop().create_task(self._ack(status))

    async def _ack(self, status: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            await self.call(
                "ACKNOWLEDGE",
                agent_id=status["agent_id"],
                task_id=status["task_id"],
                uuid=status["uuid"],
            )

    async def subscribe(self, base: str, deadline: float = 20.0) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": self.info}}
        if self.framework_id:
            body["framework_id"] = {"value": self.framework_id}
            self.info["id"] = {"value": self.framework_id}
        await self.open(base, body, deadline)
        ev = await self.next("SUBSCRIBED")
        self.framework_id = ev["subscribed"]["framework_id"]["value"]
        return ev

    async def call(self, ctype: str, **body: Any) -> int:
        msg = {"type": ctype, "framework_id": {"value": self.framework_id}}
        if body:
            msg[ctype.lower()] = body
        resp = await self.post(msg)
        return resp.status_code

    async def launch(self, offer: dict[str, Any], task_id: str, cpus: float, mem: float) -> int:
        task = {
            "name": task_id,
            "task_id": {"value": task_id},
            "agent_id": offer["agent_id"],
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
            ],
            "command": {"value": "true"},
        }
        return await self.call(
            "ACCEPT",
            offer_ids=[offer["id"]],
            operations=[{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
            filters={"refuse_seconds": 0.5},
        )


class FakeAgent(EventStreamClient):
    """Speaks docs/agent-protocol.md; answers PINGs unless ``ponging`` is False."""

    stream_header = "Paddock-Agent-Stream-Id"
    path = "/paddock/v1/agent"

    def __init__(self, hostname: str = "agent1", resources: str = "cpus:4;mem:4096") -> None:
        super().__init__()
        self.hostname = hostname
        self.resources = resources
        self.agent_id: str | None = None
        self.ponging = True
        self.tasks: dict[str, dict[str, Any]] = {}
        self.credential: dict[str, str] | None = None

    def _res_json(self) -> list[dict[str, Any]]:
        out = []
        for part in self.resources.split(";"):
            name, value = part.split(":")
            out.append({"name": name, "type": "SCALAR", "scalar": {"value": float(value)}})
        return out

    async def register(self, base: str, deadline: float = 20.0) -> dict[str, Any]:
        info: dict[str, Any] = {
            "hostname": self.hostname,
            "port": 5051,
            "resources": self._res_json(),
            "attributes": [{"name": "rack", "type": "TEXT", "text": {"value": "r1"}}],
        }
        if self.agent_id:
            info["id"] = {"value": self.agent_id}
        reg: dict[str, Any] = {
            "agent_info": info,
            "tasks": list(self.tasks.values()),
            "frameworks": [],
            "version": "test",
        }
        if self.credential:
            reg["credential"] = self.credential
        await self.open(base, {"type": "REGISTER", "register": reg}, deadline)
        ev = await self.next("REGISTERED")
        self.agent_id = ev["registered"]["agent_id"]["value"]
        return ev

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "PING" and self.ponging:
            asyncio.get_running_loop().create_task(self._pong())
        if event.get("type") == "RUN_TASK":
            t = event["run_task"]["task"]
            fid = event["run_task"]["framework"]["id"]
            self.tasks[t["task_id"]["value"]] = {
                "name": t.get("name", ""),
                "task_id": t["task_id"],
                "framework_id": fid,
                "agent_id": {"value": self.agent_id},
                "state": "TASK_STAGING",
                "resources": t["resources"],
            }

    async def _pong(self) -> None:
        with contextlib.suppress(Exception):
            await self.post({"type": "PONG", "pong": {}})

    async def update(self, framework_id: str, task_id: str, state: str) -> tuple[int, str]:
        u = base64.b64encode(uuid.uuid4().bytes).decode()
        if task_id in self.tasks:
            self.tasks[task_id]["state"] = state
        status = {
            "task_id": {"value": task_id},
            "state": state,
            "source": "SOURCE_EXECUTOR",
            "uuid": u,
            "agent_id": {"value": self.agent_id},
            "timestamp": time.time(),
        }
        resp = await self.post(
            {
                "type": "UPDATE",
                "update": {"framework_id": {"value": framework_id}, "status": status},
            }
        )
        return resp.status_code, u


# ---------------------------------------------------------------- master processes


class MasterProcess:
    def __init__(self, zk: str, quorum: int, work_dir: Path, *extra: str) -> None:
        self.port, self.registry_port = fixed_ports(2)
        self.zk = zk
        self.quorum = quorum
        self.work_dir = work_dir
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = work_dir.with_suffix(".log")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> MasterProcess:
        cmd = [
            sys.executable, "-m", "paddock.cli.main", "master",
            "--zk", self.zk, "--quorum", str(self.quorum), "--work-dir", str(self.work_dir),
            "--port", str(self.port), "--registry-port", str(self.registry_port),
            "--ip", HOST, *self.extra,
        ]  # fmt: skip
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def metrics(self) -> dict[str, Any] | None:
        try:
            r = httpx.get(self.url + "/metrics/snapshot", timeout=5)
            return r.json() if r.status_code == 200 else None
        except httpx.HTTPError:
            return None


def wait_until(cond: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout}s")


async def await_until(cond: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        await asyncio.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout}s")


def elected(masters: list[MasterProcess]) -> list[MasterProcess]:
    out = []
    for m in masters:
        if m.alive():
            snap = m.metrics()
            if snap and snap.get("master/elected") == 1.0:
                out.append(m)
    return out


class AgentProcess:
    """A real ``paddock agent`` (started by the test, stopped by it)."""

    def __init__(self, master: str, work_dir: Path, resources: str = "cpus:2;mem:1024") -> None:
        (self.port,) = fixed_ports(1)
        self.master = master
        self.work_dir = work_dir
        self.resources = resources
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = work_dir.with_suffix(".agent.log")

    def start(self) -> AgentProcess:
        cmd = [
            sys.executable, "-m", "paddock.cli.main", "agent",
            "--master", self.master, "--port", str(self.port), "--work-dir", str(self.work_dir),
            "--ip", HOST, "--hostname", "127.0.0.1", "--resources", self.resources,
            "--attributes", "rack:r1", "--no-cgroups", "--registration-backoff-factor", "0.2",
            "--status-update-retry-min", "1",
        ]  # fmt: skip
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        log.close()
        return self

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""
