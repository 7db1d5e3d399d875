"""A real local cluster for marathon's scheduler tests and the deploy benchmark:
ZooKeeper (started by the caller), one ``paddock master``, agents with distinct loopback
hostnames (127.0.0.1, .2, .3 ...), attributes and port ranges, and ``paddock marathon``
processes. Every process started here is stopped by :meth:`Cluster.stop`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from paddock.testing.ports import free_ports

HOST = "127.0.0.1"


@dataclass
class Proc:
    name: str
    cmd: list[str]
    log_path: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGTERM, wait: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass
class Cluster:
    zk_hosts: str
    work: Path
    chroot: str = "/c"
    procs: list[Proc] = field(default_factory=list)
    masters: list[Proc] = field(default_factory=list)
    agents: list[Proc] = field(default_factory=list)
    marathons: list[Proc] = field(default_factory=list)
    marathon_extra: list[str] = field(default_factory=list)

    @property
    def master_zk(self) -> str:
        return f"zk://{self.zk_hosts}{self.chroot}/mesos"

    @property
    def marathon_zk(self) -> str:
        return f"zk://{self.zk_hosts}{self.chroot}/marathon"

    def _py(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "paddock.cli.main", *args]

    def start_master(self, *extra: str) -> Proc:
        port, reg = free_ports(2)
        name = f"master{len(self.masters)}"
        cmd = self._py(
            "master", "--zk", self.master_zk, "--quorum", "1",
            "--work-dir", str(self.work / name), "--port", str(port),
            "--registry-port", str(reg), "--ip", HOST,
            "--allocation-interval", "0.2s", "--zk-session-timeout", "4s", *extra,
        )  # fmt: skip
        p = Proc(name, cmd, self.work / f"{name}.log", port).start()
        self.masters.append(p)
        self.procs.append(p)
        return p

    def start_agent(
        self,
        hostname: str,
        attributes: str,
        ports: str,
        resources: str = "cpus:4;mem:4096",
        status_retry: float = 1.0,
    ) -> Proc:
        (port,) = free_ports(1)
        name = f"agent{len(self.agents)}"
        cmd = self._py(
            "agent", "--master", self.master_zk, "--port", str(port),
            "--work-dir", str(self.work / name), "--ip", hostname, "--hostname", hostname,
            "--resources", f"{resources};disk:1000;ports:[{ports}]",
            "--attributes", attributes, "--no-cgroups",
            "--registration-backoff-factor", "0.2", "--status-update-retry-min", str(status_retry),
            "--default-kill-grace", "1",
        )  # fmt: skip
        p = Proc(name, cmd, self.work / f"{name}.log", port).start()
        self.agents.append(p)
        self.procs.append(p)
        return p

    def start_marathon(self, *extra: str) -> Proc:
        (port,) = free_ports(1)
        name = f"marathon{len(self.marathons)}"
        cmd = self._py(
            "marathon", "--master", self.master_zk, "--zk", self.marathon_zk,
            "--port", str(port), "--hostname", HOST, "--bind", HOST,
            "--zk-session-timeout", "4", "--reconciliation-initial-delay", "1",
            "--reconciliation-interval", "30", *extra, *self.marathon_extra,
        )  # fmt: skip
        p = Proc(name, cmd, self.work / f"{name}.log", port).start()
        self.marathons.append(p)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.kill()

    def logs(self, n: int = 40) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log_tail(n)}" for p in self.procs)


def url(p: Proc) -> str:
    return f"http://{HOST}:{p.port}"


def wait_until(cond: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        try:
            last = cond()
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout}s (last: {last!r})")


def leader_of(marathons: list[Proc]) -> Proc | None:
    for m in marathons:
        if not m.alive():
            continue
        try:
            r = httpx.get(url(m) + "/v2/info", timeout=2)
        except httpx.HTTPError:
            continue
        if r.status_code == 200 and r.json().get("elected"):
            return m
    return None


def app_tasks(base: str, app_id: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{base}/v2/apps{app_id}/tasks", timeout=5)
    r.raise_for_status()
    tasks: list[dict[str, Any]] = r.json()["tasks"]
    return tasks


def healthy_running(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        t
        for t in tasks
        if t["state"] == "TASK_RUNNING"
        and t.get("healthCheckResults")
        and all(r["alive"] for r in t["healthCheckResults"])
    ]
