"""Separate hosts on one machine: network namespaces joined by a bridge.

Why: a cluster manager is only tested for real when its parts can be cut off
from each other. Each lab host ``hN`` is a network namespace with one veth link
(``veth-hN``, address ``10.77.0.1N/24``) whose other end sits on a bridge in a
hub namespace. Nothing is added to the root namespace: both ends of every veth
are created directly inside namespaces the lab owns, so the only addresses the
lab ever uses are its own, inside its own namespaces.

Faults are applied per host: iptables ``INPUT`` drops (partitions, one-way or
both ways), ``tc netem`` on the host's link (delay, loss). ``heal`` removes
them all. ``destroy`` kills whatever still runs inside the lab's namespaces and
deletes them; ``remove_stale`` does the same for namespaces left by an earlier
run that died (names are ``pdkc<pid>-...``; see :func:`remove_stale`).

Sockets for the lab's hosts are opened from the root process by switching one
short-lived thread into the namespace (``setns`` affects only the calling
thread), so probes need no child process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

PREFIX = "pdkc"
SUBNET = "10.77.0"
CLONE_NEWNET = 0x40000000
_CMD_TIMEOUT = 20.0


class LabError(RuntimeError):
    """A namespace, link or rule could not be set up."""


def _run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=_CMD_TIMEOUT, check=False
    )
    if check and res.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def unavailable_reason() -> str | None:
    """Why this machine cannot host the lab (None when it can)."""
    if os.geteuid() != 0:
        return "the chaos lab needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed"
    probe = f"{PREFIX}{os.getpid()}-probe"
    res = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return f"`ip netns add` does not work here: {res.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    if shutil.which("iptables") is None:
        return "iptables is not installed (apt-get install iptables)"
    if shutil.which("tc") is None:
        return "tc (iproute2) is not installed"
    return None


def list_namespaces(prefix: str = PREFIX) -> list[str]:
    """The namespaces whose name starts with ``prefix``."""
    res = _run(["ip", "netns", "list"], check=False)
    names = []
    for line in res.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(prefix):
            names.append(name)
    return names


def _owner(ns: str) -> int | None:
    """The pid of the run that created ``ns`` (named ``pdkc<pid>-...``)."""
    head = ns[len(PREFIX) :].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_namespace_processes(ns: str) -> None:
    """SIGKILL every process inside ``ns`` (they are the lab's own)."""
    res = _run(["ip", "netns", "pids", ns], check=False)
    for tok in res.stdout.split():
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.kill(int(tok), signal.SIGCONT)
            os.kill(int(tok), signal.SIGKILL)


def remove_stale() -> list[str]:
    """Delete namespaces (and their processes) left by lab runs that died.

    Each run names its namespaces ``pdkc<pid>-...``; a namespace whose run is
    no longer alive (or is this very process) is stale. Live runs of other
    processes are left alone: separate hubs, so several labs can coexist."""
    removed = []
    for ns in list_namespaces(PREFIX):
        owner = _owner(ns)
        if owner is not None and owner != os.getpid() and _alive(owner):
            continue
        _kill_namespace_processes(ns)
        if _run(["ip", "netns", "del", ns], check=False).returncode == 0:
            removed.append(ns)
    return removed


_libc: ctypes.CDLL | None = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def socket_in_namespace(ns: str, timeout: float = 5.0) -> socket.socket:
    """A TCP socket created inside namespace ``ns`` (usable from any thread)."""
    result: list[socket.socket | BaseException] = []

    def work() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(timeout)
            finally:
                _setns(own)
            result.append(s)
        except BaseException as exc:  # handed to the caller
            result.append(exc)
        finally:
            os.close(own)
            os.close(target)

    t = threading.Thread(target=work, name=f"setns-{ns}", daemon=True)
    t.start()
    t.join(10)
    if not result:
        raise LabError(f"could not open a socket in {ns}")
    got = result[0]
    if isinstance(got, BaseException):
        raise got
    return got


def connect_in_namespace(ns: str, addr: tuple[str, int], timeout: float) -> socket.socket:
    """A TCP socket created inside namespace ``ns`` and connected to ``addr``."""
    s = socket_in_namespace(ns, timeout)
    try:
        s.connect(addr)
    except OSError:
        s.close()
        raise
    return s


@dataclass
class Lab:
    """``hosts`` namespaces ``{prefix}-h1..hN`` on a bridge in ``{prefix}-hub``."""

    hosts: int
    #: Namespace names start with this: ``pdkc<pid>`` of the creating process.
    prefix: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}")
    created: list[str] = field(default_factory=list)
    #: Per host: the iptables rules currently installed (for the report and heal).
    rules: dict[int, list[list[str]]] = field(default_factory=dict)
    netem: dict[int, str] = field(default_factory=dict)
    #: Also create the observer: namespace ``{prefix}-obs`` at ``10.77.0.10`` on the
    #: same bridge, never the target of a fault (the workload's client and sampler
    #: live there, as a Jepsen control node does).
    observer: bool = False
    _netem_ok: bool | None = None

    @property
    def hub(self) -> str:
        return f"{self.prefix}-hub"

    def ns(self, host: int) -> str:
        return f"{self.prefix}-h{host}"

    @staticmethod
    def address(host: int) -> str:
        if not 1 <= host <= 9:
            raise ValueError("the lab has hosts 1..9 (addresses 10.77.0.11-19)")
        return f"{SUBNET}.1{host}"

    @property
    def observer_ns(self) -> str:
        return f"{self.prefix}-obs"

    @staticmethod
    def observer_address() -> str:
        return f"{SUBNET}.10"

    @staticmethod
    def dev(host: int) -> str:
        return f"veth-h{host}"

    def exec_prefix(self, host: int) -> list[str]:
        return ["ip", "netns", "exec", self.ns(host)]

    def _in(self, host: int, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([*self.exec_prefix(host), *argv], check=check)

    # ------------------------------------------------------------ lifecycle
    def create(self) -> None:
        if not 1 <= self.hosts <= 9:
            raise ValueError("--hosts must be 1..9")
        remove_stale()
        _run(["ip", "netns", "add", self.hub])
        self.created.append(self.hub)
        hub = ["ip", "netns", "exec", self.hub]
        _run([*hub, "ip", "link", "add", "br0", "type", "bridge"])
        _run([*hub, "ip", "link", "set", "br0", "up"])
        for h in range(1, self.hosts + 1):
            ns = self.ns(h)
            _run(["ip", "netns", "add", ns])
            self.created.append(ns)
            _run(
                [
                    "ip", "link", "add", self.dev(h), "netns", ns, "type", "veth",
                    "peer", "name", f"br-h{h}", "netns", self.hub,
                ]
            )  # fmt: skip
            _run([*hub, "ip", "link", "set", f"br-h{h}", "master", "br0"])
            _run([*hub, "ip", "link", "set", f"br-h{h}", "up"])
            self._in(h, "ip", "addr", "add", f"{self.address(h)}/24", "dev", self.dev(h))
            self._in(h, "ip", "link", "set", self.dev(h), "up")
            self._in(h, "ip", "link", "set", "lo", "up")
            self.rules[h] = []
        if self.observer:
            self._add_link(self.observer_ns, "veth-obs", "br-obs", self.observer_address())

    def _add_link(self, ns: str, dev: str, peer: str, address: str) -> None:
        _run(["ip", "netns", "add", ns])
        self.created.append(ns)
        _run(["ip", "link", "add", dev, "netns", ns, "type", "veth", "peer", "name", peer,
              "netns", self.hub])  # fmt: skip
        hub = ["ip", "netns", "exec", self.hub]
        _run([*hub, "ip", "link", "set", peer, "master", "br0"])
        _run([*hub, "ip", "link", "set", peer, "up"])
        inside = ["ip", "netns", "exec", ns]
        _run([*inside, "ip", "addr", "add", f"{address}/24", "dev", dev])
        _run([*inside, "ip", "link", "set", dev, "up"])
        _run([*inside, "ip", "link", "set", "lo", "up"])

    def destroy(self) -> None:
        """Kill every process left in the lab's namespaces and delete them."""
        for ns in reversed(self.created):
            _kill_namespace_processes(ns)
        deadline = time.monotonic() + 10
        for ns in reversed(self.created):
            while True:
                if _run(["ip", "netns", "del", ns], check=False).returncode == 0:
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        self.created.clear()
        for ns in list_namespaces(self.prefix + "-"):
            _kill_namespace_processes(ns)
            _run(["ip", "netns", "del", ns], check=False)

    def __enter__(self) -> Lab:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # ------------------------------------------------------------ faults
    def drop_from(self, host: int, sources: Sequence[int]) -> None:
        """Host ``host`` drops every packet coming from ``sources`` (one way)."""
        for src in sources:
            if src == host:
                continue
            rule = ["INPUT", "-s", self.address(src), "-j", "DROP"]
            self._in(host, "iptables", "-w", "5", "-A", *rule)
            self.rules.setdefault(host, []).append(rule)

    def partition(self, groups: Sequence[Sequence[int]]) -> None:
        """Cut the lab into ``groups``: no packet crosses between two groups.
        Hosts in no group are cut off from everyone."""
        member = {h: i for i, g in enumerate(groups) for h in g}
        for h in range(1, self.hosts + 1):
            mine = member.get(h)
            others = [o for o in range(1, self.hosts + 1) if o != h]
            self.drop_from(h, [o for o in others if mine is None or member.get(o) != mine])

    def connect_only(self, links: dict[int, Sequence[int]]) -> None:
        """Each host hears only the hosts listed for it (a non-transitive cut)."""
        for h in range(1, self.hosts + 1):
            allowed = set(links.get(h, ()))
            self.drop_from(h, [o for o in range(1, self.hosts + 1) if o != h and o not in allowed])

    def slow(self, host: int, delay_ms: int, jitter_ms: int, loss_pct: float) -> str:
        """Make host's link slow and lossy; returns what was applied.

        netem where the kernel has it; otherwise (kernels without sch_netem, such
        as this lab's micro-VMs) a token-bucket rate limit whose queue adds up to
        ``delay_ms`` under load, plus random loss of packets from the other hosts
        through iptables' ``statistic`` match."""
        dev = self.dev(host)
        if self._netem_ok is not False:
            spec = ["delay", f"{delay_ms}ms", f"{jitter_ms}ms", "loss", f"{loss_pct:.1f}%"]
            res = self._in(host, "tc", "qdisc", "replace", "dev", dev, "root", "netem", *spec,
                           check=False)  # fmt: skip
            if res.returncode == 0:
                self._netem_ok = True
                self.netem[host] = "netem " + " ".join(spec)
                return self.netem[host]
            if "unknown" not in res.stderr:
                raise LabError(f"tc netem on {dev}: {res.stderr.strip()}")
            self._netem_ok = False
        rate_kbit = max(64, 2_000 - 8 * delay_ms)
        spec = ["rate", f"{rate_kbit}kbit", "burst", "4kb", "latency", f"{delay_ms + jitter_ms}ms"]
        self._in(host, "tc", "qdisc", "replace", "dev", dev, "root", "tbf", *spec)
        applied = "tbf " + " ".join(spec)
        if loss_pct > 0:
            for src in range(1, self.hosts + 1):
                if src == host:
                    continue
                rule = ["INPUT", "-s", self.address(src), "-m", "statistic", "--mode", "random",
                        "--probability", f"{loss_pct / 100:.3f}", "-j", "DROP"]  # fmt: skip
                self._in(host, "iptables", "-w", "5", "-A", *rule)
                self.rules.setdefault(host, []).append(rule)
            applied += f" + iptables loss {loss_pct:.1f}%"
        self.netem[host] = applied
        return applied

    def heal(self) -> None:
        """Remove every partition rule and netem qdisc."""
        for h in range(1, self.hosts + 1):
            if self.rules.get(h):
                self._in(h, "iptables", "-w", "5", "-F", "INPUT", check=False)
                self.rules[h] = []
            if h in self.netem:
                self._in(h, "tc", "qdisc", "del", "dev", self.dev(h), "root", check=False)
                del self.netem[h]
