"""The whole cluster on the lab's hosts, placed as the OCF did (the nemesis's :class:`Cluster`).

Placement: the first three hosts are "master hosts", each running a keeper (the
coordination ensemble), a master and a marathon; the other hosts run agents. With
fewer than five hosts there would be fewer than two agent hosts, so then every host
also runs an agent (three hosts: everything everywhere). Each daemon is the real
``paddock keeper/master/agent/marathon`` with the flags ``paddock up`` gives it
(``cli/supervisor.py``), on the host's own address and fixed ports (the hosts are
separate network namespaces, so ports never collide).

A fault on a host hits every paddock daemon on it: ``kill`` is ``kill -9`` of all of
them (a crash of the node's software; the agent's tasks survive it, as on Mesos, and
the restarted agent recovers them), ``pause`` is ``SIGSTOP`` of all of them.

Probes (who leads, is everything up) go over HTTP from the observer namespace through
sockets opened there (:func:`paddock.chaos.hosts.connect_in_namespace`): a plain
HTTP/1.0 GET is all they need.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from paddock.chaos.hosts import Lab, connect_in_namespace

KEEPER_PORT = 2181
PEER_PORT = 7001
MASTER_PORT = 5050
REGISTRY_PORT = 5060
AGENT_PORT = 5051
MARATHON_PORT = 8080
TASK_PORTS = (31000, 31049)
MASTER_HOSTS = 3


def placement(hosts: int) -> tuple[list[int], list[int]]:
    """(master hosts, agent hosts) for a lab of ``hosts`` hosts."""
    if hosts < 1:
        raise ValueError("the cluster workload needs at least one host")
    masters = list(range(1, min(MASTER_HOSTS, hosts) + 1))
    if len(masters) % 2 == 0:
        masters = masters[:-1]  # the registry and the keeper ensemble want an odd count
    agents = [h for h in range(1, hosts + 1) if h not in masters]
    if len(agents) < 2:
        agents = list(range(1, hosts + 1))
    return masters, agents


def http_get(lab: Lab, addr: str, port: int, path: str, timeout: float = 1.0) -> Any:
    """GET ``path`` from ``addr:port`` seen from the observer; the JSON body, or None."""
    try:
        s = connect_in_namespace(lab.observer_ns, (addr, port), timeout)
    except OSError:
        return None
    try:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {addr}:{port}\r\n\r\n".encode())
        chunks = []
        deadline = time.monotonic() + timeout * 2
        while time.monotonic() < deadline:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    except OSError:
        return None
    finally:
        s.close()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the runner dies (even by SIGKILL)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class DaemonCluster:
    """Keepers, masters, marathons and agents on the lab's hosts."""

    def __init__(self, lab: Lab, out: Path) -> None:
        self.lab = lab
        self.out = out
        self.master_hosts, self.agent_hosts = placement(lab.hosts)
        self.procs: dict[tuple[int, str], subprocess.Popen[bytes]] = {}
        self.paused: set[int] = set()
        #: Hosts whose daemons the nemesis killed (restarted when the fault ends).
        self.killed: set[int] = set()
        #: Daemons that exited on their own: (monotonic time, host, kind, exit code).
        self.exits: list[tuple[float, int, str, int]] = []
        self._last_supervise = 0.0
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="probe")

    # ------------------------------------------------------------ addresses
    def zk(self, path: str) -> str:
        hosts = ",".join(f"{self.lab.address(h)}:{KEEPER_PORT}" for h in self.master_hosts)
        return f"zk://{hosts}{path}"

    def marathons(self) -> list[str]:
        return [f"{self.lab.address(h)}:{MARATHON_PORT}" for h in self.master_hosts]

    def agents(self) -> list[str]:
        return [f"{self.lab.address(h)}:{AGENT_PORT}" for h in self.agent_hosts]

    def kinds(self, h: int) -> list[str]:
        """The daemons on host h, in start order."""
        out = []
        if h in self.master_hosts:
            out += ["keeper", "master"]
        if h in self.agent_hosts:
            out.append("agent")
        if h in self.master_hosts:
            out.append("marathon")
        return out

    def argv(self, h: int, kind: str) -> list[str]:
        addr, d = self.lab.address(h), self.out / f"h{h}"
        if kind == "keeper":
            peers = ",".join(f"{m}={self.lab.address(m)}:{PEER_PORT}" for m in self.master_hosts)
            args = ["keeper", "--id", str(h), "--client-port", str(KEEPER_PORT),
                    "--client-host", addr, "--data-dir", str(d / "keeper")]  # fmt: skip
            if len(self.master_hosts) > 1:
                args += ["--peers", peers]
            return args
        if kind == "master":
            quorum = len(self.master_hosts) // 2 + 1
            return ["master", "--zk", self.zk("/mesos"), "--quorum", str(quorum),
                    "--work-dir", str(d / "master"), "--port", str(MASTER_PORT),
                    "--registry-port", str(REGISTRY_PORT), "--ip", addr]  # fmt: skip
        if kind == "agent":
            lo, hi = TASK_PORTS
            return ["agent", "--master", self.zk("/mesos"), "--port", str(AGENT_PORT),
                    "--work-dir", str(d / "agent"), "--ip", addr, "--hostname", addr,
                    "--resources", f"cpus:4;mem:4096;ports:[{lo}-{hi}]",
                    "--attributes", f"name:h{h}", "--no-cgroups"]  # fmt: skip
        if kind == "marathon":
            return ["marathon", "--master", self.zk("/mesos"), "--zk", self.zk("/marathon"),
                    "--port", str(MARATHON_PORT), "--hostname", addr, "--bind", addr,
                    "--reconciliation-initial-delay", "2"]  # fmt: skip
        raise ValueError(kind)

    def log_path(self, h: int, kind: str) -> Path:
        return self.out / f"h{h}" / f"{kind}.log"

    # ------------------------------------------------------------ processes
    def start_one(self, h: int, kind: str) -> None:
        path = self.log_path(h, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        argv = [*self.lab.exec_prefix(h), sys.executable, "-m", "paddock.cli.main",
                *self.argv(h, kind)]  # fmt: skip
        with open(path, "ab") as log:
            self.procs[(h, kind)] = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**_env(), "PYTHONUNBUFFERED": "1"},
                preexec_fn=_die_with_parent,
            )

    def start(self, h: int) -> None:
        self.killed.discard(h)
        for kind in self.kinds(h):
            p = self.procs.get((h, kind))
            if p is None or p.poll() is not None:
                self.start_one(h, kind)

    def _host_procs(self, h: int) -> list[subprocess.Popen[bytes]]:
        return [p for (hh, _k), p in self.procs.items() if hh == h and p.poll() is None]

    def kill(self, h: int) -> None:
        procs = self._host_procs(h)
        for p in procs:
            p.kill()
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
        self.paused.discard(h)
        self.killed.add(h)

    def supervise(self) -> None:
        """Restart daemons that exited on their own (at most once a second), as the
        OCF's supervisors and ``paddock up`` do: a master that loses its session while
        leading and a marathon that loses its session exit by design."""
        now = time.monotonic()
        if now - self._last_supervise < 1.0:
            return
        self._last_supervise = now
        for (h, kind), p in list(self.procs.items()):
            if h in self.killed or p.poll() is None:
                continue
            self.exits.append((now, h, kind, p.returncode))
            self.start_one(h, kind)

    def restart(self, h: int) -> None:
        self.kill(h)
        self.start(h)

    def pause(self, h: int) -> None:
        for p in self._host_procs(h):
            p.send_signal(signal.SIGSTOP)
        self.paused.add(h)

    def resume(self, h: int) -> None:
        for p in self._host_procs(h):
            p.send_signal(signal.SIGCONT)
        self.paused.discard(h)

    def heal(self) -> None:
        """Every daemon running and none paused."""
        for h in range(1, self.lab.hosts + 1):
            if h in self.paused:
                self.resume(h)
            self.start(h)

    def stop_all(self) -> None:
        """SIGTERM (marathons first, keepers last), then SIGKILL what is left."""
        order = ["marathon", "agent", "master", "keeper"]
        for kind in order:
            procs = [p for (_h, k), p in self.procs.items() if k == kind and p.poll() is None]
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGCONT)
                    p.terminate()
            deadline = time.monotonic() + 10
            for p in procs:
                try:
                    p.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        p.wait(5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ probes
    def _get(self, h: int, port: int, path: str, timeout: float = 1.0) -> Any:
        return http_get(self.lab, self.lab.address(h), port, path, timeout)

    def _map(self, fn: Callable[[int], Any], hosts: list[int]) -> list[Any]:
        return list(self._pool.map(fn, hosts))

    def master_leader(self) -> int | None:
        """The host whose master the masters name as leader (None: none agreed)."""
        states = self._map(lambda h: self._get(h, MASTER_PORT, "/state"), self.master_hosts)
        named = set()
        for st in states:
            if isinstance(st, dict) and st.get("leader"):
                named.add(str(st["leader"]).split("@", 1)[-1].split(":", 1)[0])
        if len(named) != 1:
            return None
        addr = named.pop()
        for h in self.master_hosts:
            if self.lab.address(h) == addr:
                return h
        return None

    def leader(self) -> int | None:
        """For the nemesis: the leading master's host."""
        return self.master_leader()

    def marathon_leader(self) -> int | None:
        for h in self.master_hosts:
            got = self._get(h, MARATHON_PORT, "/v2/leader")
            if isinstance(got, dict) and got.get("leader"):
                addr = str(got["leader"]).split(":", 1)[0]
                for m in self.master_hosts:
                    if self.lab.address(m) == addr:
                        return m
        return None

    def healthy(self) -> bool:
        """A leading master that sees every agent, and a leading marathon."""
        leader = self.master_leader()
        if leader is None:
            return False
        st = self._get(leader, MASTER_PORT, "/state")
        if not isinstance(st, dict) or st.get("activated_slaves", 0) < len(self.agent_hosts):
            return False
        return self.marathon_leader() is not None


def _env() -> dict[str, str]:
    return dict(os.environ)
