"""A local cluster's layout and the process supervisor that keeps it running.

``paddock up`` decides a layout once (which daemons, on which loopback ports, with
which data directories), writes it to ``DIR/layout.json`` and reuses it on every later
``up`` of the same work dir, so a resumed cluster keeps its ports and state. The
supervisor (``paddock supervise``, started by ``up``) runs every daemon as its own OS
process in its own session, restarts one that exits (``Restart=always`` with
exponential backoff), and on SIGTERM/SIGINT stops them in reverse dependency order
(marathons, agents, masters, keepers), killing what each left behind (task processes)
so nothing outlives the cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
LAYOUT_FILE = "layout.json"
CLUSTER_FILE = "cluster.json"
PIDS_FILE = "pids.json"
SUPERVISOR_PID_FILE = "supervisor.pid"
AGENT_PORT_RANGE = 50  # task ports per agent


class LayoutError(Exception):
    """The requested cluster cannot be laid out (bad sizes, no free ports)."""


def paddock_argv() -> list[str]:
    """How to run the ``paddock`` command of this very installation."""
    return [sys.executable, "-m", "paddock.cli.main"]


def _free_port(host: str, taken: set[int]) -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            taken.add(port)
            return port
    raise LayoutError(f"no free port on {host}")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _free_range(host: str, size: int, taken: set[int], seed: int) -> tuple[int, int]:
    """A run of ``size`` ports below the ephemeral range, free on ``host`` right now."""
    base = 20000 + (seed * 997) % 9000
    for _ in range(200):
        ports = range(base, base + size)
        if not (set(ports) & taken) and all(_port_free(host, p) for p in ports):
            taken.update(ports)
            return base, base + size - 1
        base = 20000 + (base - 20000 + 523) % 9000
    raise LayoutError(f"no free run of {size} ports on {host}")


@dataclass
class Layout:
    """Everything needed to (re)start the same cluster: ports, addresses, sizes."""

    work_dir: str
    external_zk: str | None = None  # zk://hosts[/chroot] of an existing ensemble
    keepers: list[dict[str, Any]] = field(default_factory=list)  # id, client_port, peer_port
    masters: list[dict[str, Any]] = field(default_factory=list)  # port, registry_port
    agents: list[dict[str, Any]] = field(default_factory=list)  # name, ip, port, ports
    marathons: list[dict[str, Any]] = field(default_factory=list)  # port
    # A TOML file whose [keeper]/[master]/[agent]/[marathon] tables the daemons read
    # (``up --config``); the flags chosen here win over it.
    config_file: str | None = None

    # -- creation and persistence ---------------------------------------------------
    @classmethod
    def new(
        cls, work_dir: Path, keepers: int, masters: int, agents: int, marathons: int, zk: str | None
    ) -> Layout:
        if zk is None and keepers < 1:
            raise LayoutError("--keepers must be at least 1 (or pass --zk)")
        if masters < 1 or masters % 2 == 0:
            raise LayoutError("--masters must be odd (1, 3, 5): the registry needs a majority")
        if agents < 0 or marathons < 1:
            raise LayoutError("--agents must be >= 0 and --marathons >= 1")
        if zk is not None and not zk.startswith("zk://"):
            raise LayoutError(f"--zk must look like zk://host:port[,host:port]/path, got {zk!r}")
        taken: set[int] = set()
        layout = cls(work_dir=str(work_dir.resolve()), external_zk=zk.rstrip("/") if zk else None)
        if zk is None:
            for i in range(keepers):
                layout.keepers.append(
                    {
                        "id": i + 1,
                        "client_port": _free_port(LOOPBACK, taken),
                        "peer_port": _free_port(LOOPBACK, taken),
                    }
                )
        for _ in range(masters):
            port = _free_port(LOOPBACK, taken)
            layout.masters.append({"port": port, "registry_port": _free_port(LOOPBACK, taken)})
        for i in range(agents):
            # Distinct loopback addresses: each agent is its own "host" (UNIQUE hostname
            # constraints mean something) and its name resolves without /etc/hosts.
            ip = f"127.0.1.{i + 1}"
            lo, hi = _free_range(ip, AGENT_PORT_RANGE, set(), os.getpid() + i)
            layout.agents.append(
                {
                    "name": f"agent{i + 1}",
                    "ip": ip,
                    "port": _free_port(ip, set()),
                    "ports": [lo, hi],
                }
            )
        for _ in range(marathons):
            layout.marathons.append({"port": _free_port(LOOPBACK, taken)})
        return layout

    @classmethod
    def load(cls, work_dir: Path) -> Layout | None:
        path = work_dir / LAYOUT_FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise LayoutError(f"{path} is unreadable ({exc}); remove it to start afresh") from None

    def save(self) -> None:
        d = Path(self.work_dir)
        d.mkdir(parents=True, exist_ok=True)
        _atomic_write(d / LAYOUT_FILE, json.dumps(asdict(self), indent=2) + "\n")
        _atomic_write(d / CLUSTER_FILE, json.dumps(self.endpoints(), indent=2) + "\n")

    # -- addresses -----------------------------------------------------------------
    @property
    def zk_hosts(self) -> str:
        """``zk://h:p,h:p[/chroot]`` of the coordination service."""
        if self.external_zk is not None:
            return self.external_zk
        return "zk://" + ",".join(f"{LOOPBACK}:{k['client_port']}" for k in self.keepers)

    def endpoints(self) -> dict[str, Any]:
        marathons = [f"{LOOPBACK}:{m['port']}" for m in self.marathons]
        return {
            "zk": self.zk_hosts,
            "keepers": [f"{LOOPBACK}:{k['client_port']}" for k in self.keepers]
            or self.zk_hosts[len("zk://") :].split("/")[0].split(","),
            "masters": [f"{LOOPBACK}:{m['port']}" for m in self.masters],
            "agents": [f"{a['ip']}:{a['port']}" for a in self.agents],
            "marathons": marathons,
            "ui": f"http://{marathons[0]}/ui/",
            "work_dir": self.work_dir,
            "external_zk": self.external_zk is not None,
        }

    # -- the daemons -----------------------------------------------------------------
    def daemons(self) -> list[DaemonSpec]:
        """Every daemon in start order (keepers first)."""
        d = Path(self.work_dir)
        zk = self.zk_hosts
        out: list[DaemonSpec] = []
        peers = ",".join(f"{k['id']}={LOOPBACK}:{k['peer_port']}" for k in self.keepers)
        for k in self.keepers:
            argv = [
                "keeper", "--id", str(k["id"]), "--client-port", str(k["client_port"]),
                "--client-host", LOOPBACK, "--data-dir", str(d / f"keeper{k['id']}"),
            ]  # fmt: skip
            if len(self.keepers) > 1:
                argv += ["--peers", peers]
            out.append(DaemonSpec(f"keeper{k['id']}", "keeper", argv))
        quorum = len(self.masters) // 2 + 1
        for i, m in enumerate(self.masters):
            argv = [
                "master", "--zk", f"{zk}/mesos", "--quorum", str(quorum),
                "--work-dir", str(d / f"master{i + 1}"), "--port", str(m["port"]),
                "--registry-port", str(m["registry_port"]), "--ip", LOOPBACK,
            ]  # fmt: skip
            out.append(DaemonSpec(f"master{i + 1}", "master", argv))
        for a in self.agents:
            lo, hi = a["ports"]
            argv = [
                "agent", "--master", f"{zk}/mesos", "--port", str(a["port"]),
                "--work-dir", str(d / a["name"]), "--ip", a["ip"], "--hostname", a["ip"],
                "--resources", f"ports:[{lo}-{hi}]", "--attributes", f"name:{a['name']}",
                "--no-cgroups",
            ]  # fmt: skip
            out.append(DaemonSpec(a["name"], "agent", argv))
        for i, m in enumerate(self.marathons):
            argv = [
                "marathon", "--master", f"{zk}/mesos", "--zk", f"{zk}/marathon",
                "--port", str(m["port"]), "--hostname", LOOPBACK, "--bind", LOOPBACK,
                "--reconciliation-initial-delay", "2",
            ]  # fmt: skip
            out.append(DaemonSpec(f"marathon{i + 1}", "marathon", argv))
        if self.config_file is not None:
            for spec in out:
                spec.args.extend(["--config", self.config_file])
        return out


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class DaemonSpec:
    name: str
    kind: str
    args: list[str]


@dataclass
class Supervised:
    """One daemon under supervision: its process, restarts and backoff."""

    spec: DaemonSpec
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start: float = 0.0
    backoff: float = 1.0
    last_exit: int | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*paddock_argv(), *self.spec.args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # our signals, not the terminal's, stop it
            )
        self.started_at = time.monotonic()


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc; task processes of an agent)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def _become_subreaper() -> None:
    """Orphaned task processes are re-parented to us, so ``down`` can find and stop them."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


class Supervisor:
    """Runs a layout's daemons until told to stop; see the module docstring."""

    def __init__(self, layout: Layout, restart: bool = True, parent_pid: int | None = None):
        self.layout = layout
        self.restart = restart
        self.parent_pid = parent_pid
        self.work_dir = Path(layout.work_dir)
        logs = self.work_dir / "logs"
        self.daemons = [Supervised(s, logs / f"{s.name}.log") for s in layout.daemons()]
        self.stopping = False

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def write_pids(self) -> None:
        pids = {d.spec.name: d.proc.pid for d in self.daemons if d.proc is not None}
        _atomic_write(self.work_dir / PIDS_FILE, json.dumps(pids, indent=2) + "\n")

    def _keepers_serving(self) -> bool:
        from paddock.cli.endpoints import keeper_mode

        return all(
            keeper_mode(f"{LOOPBACK}:{k['client_port']}") not in (None, "")
            for k in self.layout.keepers
        )

    def run(self) -> int:
        _become_subreaper()
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_signal)
        _atomic_write(self.work_dir / SUPERVISOR_PID_FILE, f"{os.getpid()}\n")
        try:
            keepers = [d for d in self.daemons if d.spec.kind == "keeper"]
            others = [d for d in self.daemons if d.spec.kind != "keeper"]
            for d in keepers:
                d.start()
            self.write_pids()
            # Masters need the coordination service to elect; give keepers a head start.
            deadline = time.monotonic() + 30
            while keepers and not self.stopping and time.monotonic() < deadline:
                if self._keepers_serving():
                    break
                self._tick(keepers)
                time.sleep(0.1)
            for d in others:
                if not self.stopping:
                    d.start()
            self.write_pids()
            while not self.stopping:
                if self.parent_pid is not None and os.getppid() != self.parent_pid:
                    break  # the foreground `paddock up` is gone: do not linger as an orphan
                if self._tick(self.daemons):
                    self.write_pids()
                self._reap_orphans()
                time.sleep(0.2)
        finally:
            self.stop_all()
            self._stop_orphans()
            with contextlib.suppress(OSError):
                (self.work_dir / SUPERVISOR_PID_FILE).unlink()
            with contextlib.suppress(OSError):
                (self.work_dir / PIDS_FILE).unlink()
        return 0

    def _tick(self, daemons: list[Supervised]) -> bool:
        """Restart exited daemons whose backoff is over; True if a pid changed."""
        changed = False
        now = time.monotonic()
        for d in daemons:
            if d.proc is None or d.running:
                continue
            if d.last_exit is None:
                d.last_exit = d.proc.returncode
                self._reap_leftovers(d)
                if now - d.started_at > 60:
                    d.backoff = 1.0  # it ran a good while: start over with a short backoff
                d.next_start = now + d.backoff
                d.backoff = min(d.backoff * 2, 30.0)
                self._log(f"{d.spec.name} exited with {d.last_exit}")
            if self.restart and now >= d.next_start:
                d.restarts += 1
                d.last_exit = None
                d.start()
                self._log(f"{d.spec.name} restarted (pid {d.proc.pid if d.proc else '?'})")
                changed = True
        return changed

    def _own_pids(self) -> set[int]:
        return {d.proc.pid for d in self.daemons if d.proc is not None}

    def _orphans(self) -> list[int]:
        """Direct children that are not daemons: tasks whose agent died (we are their
        subreaper, so a restarted agent's recovery sees them exit instead of zombies)."""
        own = self._own_pids()
        me = os.getpid()
        out = []
        for pid in descendants(me):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
                if int(f.read().rsplit(")", 1)[-1].split()[1]) == me and pid not in own:
                    out.append(pid)
        return out

    def _reap_orphans(self) -> None:
        now = time.monotonic()
        if now < getattr(self, "_next_reap", 0.0):
            return
        self._next_reap = now + 1.0
        for pid in self._orphans():
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)

    def _stop_orphans(self) -> None:
        own = self._own_pids()
        rest = [p for p in descendants(os.getpid()) if p not in own]
        for pid in rest:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 3
        while any(pid_alive(p) for p in rest) and time.monotonic() < deadline:
            self._reap_orphans_now(rest)
            time.sleep(0.05)
        for pid in rest:
            if pid_alive(pid):
                _signal(pid, signal.SIGKILL)
        self._reap_orphans_now(rest)

    @staticmethod
    def _reap_orphans_now(pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)

    def _log(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        with (
            contextlib.suppress(OSError),
            open(self.work_dir / "logs" / "supervisor.log", "a") as f,
        ):
            f.write(f"{stamp} {text}\n")

    def _reap_leftovers(self, d: Supervised) -> None:
        if d.proc is not None:
            _signal(-d.proc.pid, signal.SIGKILL)  # its session's process group, if any is left

    def stop_all(self, grace: float = 10.0) -> None:
        """Stop daemons in reverse start order, then anything they left running."""
        order = {"marathon": 0, "agent": 1, "master": 2, "keeper": 3}
        for kind in sorted(order, key=order.__getitem__):
            group = [d for d in self.daemons if d.spec.kind == kind and d.running]
            leftovers: list[int] = []
            for d in group:
                assert d.proc is not None
                leftovers += descendants(d.proc.pid)
                d.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            for d in group:
                assert d.proc is not None
                try:
                    d.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _signal(-d.proc.pid, signal.SIGKILL)
                    d.proc.kill()
                    d.proc.wait(5)
                _signal(-d.proc.pid, signal.SIGKILL)
            for pid in leftovers:
                _signal(pid, signal.SIGTERM)
            deadline = time.monotonic() + 3
            while any(pid_alive(p) for p in leftovers) and time.monotonic() < deadline:
                time.sleep(0.05)
            for pid in leftovers:
                if pid_alive(pid):
                    _signal(pid, signal.SIGKILL)
