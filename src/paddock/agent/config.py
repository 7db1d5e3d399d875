"""The agent's settings: flag validation and host resource detection.

Resource defaults follow Mesos (``src/slave/containerizer/containerizer.cpp``): any of
``cpus``, ``mem``, ``disk`` and ``ports`` not named in ``--resources`` is detected from the
host.  ``mem`` leaves a reserve for the operating system (1 GB, or half of a machine with
less than 2 GB); ``disk`` is the size of the work dir's filesystem less 5 GB (or half when
it is smaller than 10 GB); ``ports`` defaults to ``[31000-32000]``.

Every check raises :class:`ConfigError` with one line naming the bad flag, which the CLI
prints before exiting with status 2.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paddock.master.attributes import Attribute, attributes_to_json, parse_attributes
from paddock.master.resources import Resources, format_scalar, to_fixed

__all__ = [
    "AgentConfig",
    "ConfigError",
    "MasterAddress",
    "detect_resources",
    "parse_containerizers",
    "parse_docker_socket",
    "parse_master",
]

DEFAULT_PORTS = ((31000, 32000),)
MEM_RESERVE_MB = 1024
DISK_RESERVE_MB = 5 * 1024
KNOWN_CONTAINERIZERS = ("docker", "mesos")
DEFAULT_DOCKER_SOCKET = "unix:///var/run/docker.sock"


class ConfigError(ValueError):
    """A bad flag value; the message is one line that names the flag."""


@dataclass(frozen=True)
class MasterAddress:
    """``--master``: either ZooKeeper (``zk_hosts`` + ``zk_path``) or a fixed host/port."""

    zk_hosts: str | None = None
    zk_path: str | None = None
    host: str | None = None
    port: int | None = None

    @property
    def is_zk(self) -> bool:
        return self.zk_hosts is not None

    def __str__(self) -> str:
        if self.is_zk:
            return f"zk://{self.zk_hosts}{self.zk_path}"
        return f"{self.host}:{self.port}"


def _parse_host_port(text: str, what: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{what}: expected HOST:PORT, got {text!r}")
    return host, int(port_text)


def parse_master(text: str) -> MasterAddress:
    """``zk://h1:p,h2:p/path`` or ``HOST:PORT`` (an ``http://`` prefix is accepted)."""
    text = text.strip()
    if not text:
        raise ConfigError("--master is required (zk://host:port,.../mesos or HOST:PORT)")
    if text.startswith("zk://"):
        rest = text[len("zk://") :]
        hosts_part, sep, path = rest.partition("/")
        if "@" in hosts_part:
            raise ConfigError("--master: ZooKeeper credentials in the URL are not supported")
        if not hosts_part or not sep or not path.strip("/"):
            raise ConfigError(
                f"--master: a ZooKeeper URL names hosts and a path (zk://h1:2181/mesos), "
                f"got {text!r}"
            )
        for h in hosts_part.split(","):
            _parse_host_port(h, "--master")
        return MasterAddress(zk_hosts=hosts_part, zk_path="/" + path.strip("/"))
    for prefix in ("http://", "master@"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    host, port = _parse_host_port(text.rstrip("/"), "--master")
    return MasterAddress(host=host, port=port)


def parse_containerizers(text: str) -> tuple[str, ...]:
    """``--containerizers docker,mesos``: known names, no repeats; the order is the preference."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ConfigError("--containerizers: name at least one of docker, mesos")
    for name in names:
        if name not in KNOWN_CONTAINERIZERS:
            raise ConfigError(f"--containerizers: unknown containerizer {name!r} (docker, mesos)")
    if len(set(names)) != len(names):
        raise ConfigError(f"--containerizers: {text!r} names one twice")
    return names


def parse_docker_socket(text: str) -> str:
    """``--docker-socket``: ``unix:///path`` (Docker, or podman's Docker-compatible service),
    or ``tcp://host:port``."""
    text = text.strip()
    if text.startswith("unix://") and len(text) > len("unix://"):
        return text
    if text.startswith("tcp://"):
        _parse_host_port(text[len("tcp://") :].rstrip("/"), "--docker-socket")
        return text
    if text.startswith("/"):
        return "unix://" + text
    raise ConfigError(f"--docker-socket: expected unix:///path or tcp://host:port, got {text!r}")


def _meminfo_total_mb(meminfo: Path = Path("/proc/meminfo")) -> int:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024  # kB -> MB
    except (OSError, ValueError, IndexError):
        pass
    return 0


def detect_resources(work_dir: Path) -> dict[str, Resources]:
    """What this host offers when the operator does not say: cpus, mem, disk and ports."""
    out: dict[str, Resources] = {}
    out["cpus"] = Resources.scalar("cpus", float(os.cpu_count() or 1))
    total_mb = _meminfo_total_mb()
    if total_mb > 0:
        mem = total_mb - MEM_RESERVE_MB if total_mb >= 2 * MEM_RESERVE_MB else total_mb // 2
        out["mem"] = Resources.scalar("mem", float(mem))
    probe = work_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
        disk_mb = st.f_blocks * st.f_frsize // (1024 * 1024)
    except OSError:
        disk_mb = 0
    if disk_mb > 0:
        disk = disk_mb - DISK_RESERVE_MB if disk_mb >= 2 * DISK_RESERVE_MB else disk_mb // 2
        out["disk"] = Resources.scalar("disk", float(disk))
    out["ports"] = Resources.ranges("ports", DEFAULT_PORTS)
    return out


def build_resources(text: str | None, work_dir: Path) -> Resources:
    """``--resources`` with the unnamed standard resources filled in from the host."""
    given = Resources()
    if text:
        try:
            given = Resources.parse(text)
        except ValueError as exc:
            raise ConfigError(f"--resources: {exc}") from None
    named = set(given.names())
    total = given
    for name, detected in detect_resources(work_dir).items():
        if name not in named:
            total = total + detected
    for name in ("cpus", "mem"):
        if total.get_scalar(name) <= 0:
            raise ConfigError(f"--resources: the agent must offer some {name}")
    return total


@dataclass
class AgentConfig:
    """Everything the agent daemon needs; built by :meth:`from_flags` from the CLI flags."""

    master: MasterAddress
    work_dir: Path
    port: int = 5051
    hostname: str = ""
    ip: str = "127.0.0.1"
    resources: Resources = field(default_factory=Resources)
    attributes: list[Attribute] = field(default_factory=list)
    credential: dict[str, str] | None = None
    recover: str = "reconnect"
    #: First registration retry delay; doubles (with jitter) up to ``registration_backoff_max``.
    registration_backoff: float = 1.0
    registration_backoff_max: float = 60.0
    #: Status update retry: first interval and cap (Mesos: 10 s doubling to 10 min).
    status_retry_min: float = 10.0
    status_retry_max: float = 600.0
    #: How long to wait for a master's PING before treating the stream as dead, in ping intervals.
    max_missed_pings: int = 5
    default_kill_grace: float = 3.0
    #: Finished tasks' sandboxes are removed this long after the task ended (Mesos: 1 week).
    gc_delay: float = 7 * 24 * 3600.0
    cgroups_root: str = "paddock"
    cgroups_enabled: bool = True
    zk_session_timeout: float = 10.0
    #: ``--containerizers``: which kinds of container this agent runs, in order of preference.
    containerizers: tuple[str, ...] = ("mesos",)
    #: ``--docker-socket``: the Docker Engine API the docker containerizer talks to.
    docker_socket: str = DEFAULT_DOCKER_SOCKET
    #: ``--[no-]switch-user`` (Mesos's ``--switch_user``): run a task as its
    #: ``command.user``; off: every task runs as the agent's user.
    switch_user: bool = True
    #: ``--docker-config`` (Mesos's ``--docker_config``): registry credentials for image
    #: pulls, {registry: auth_config} (:mod:`paddock.agent.docker_auth`).
    docker_auths: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_flags(
        cls,
        *,
        master: str,
        work_dir: str,
        port: int = 5051,
        hostname: str = "",
        ip: str = "",
        resources: str | None = None,
        attributes: str | None = None,
        credential: str | None = None,
        recover: str = "reconnect",
        **extra: Any,
    ) -> AgentConfig:
        addr = parse_master(master)
        if not work_dir:
            raise ConfigError("--work-dir is required")
        wd = Path(work_dir).absolute()
        if wd.exists() and not wd.is_dir():
            raise ConfigError(f"--work-dir: {wd} exists and is not a directory")
        if not 0 <= port < 65536:
            raise ConfigError(f"--port: {port} is not a TCP port")
        if recover not in ("reconnect", "cleanup"):
            raise ConfigError(f"--recover: expected reconnect or cleanup, got {recover!r}")
        ip = ip or "127.0.0.1"
        try:
            socket.inet_aton(ip)
        except OSError:
            raise ConfigError(f"--ip: {ip!r} is not an IPv4 address") from None
        attrs: list[Attribute] = []
        if attributes:
            try:
                attrs = parse_attributes(attributes)
            except ValueError as exc:
                raise ConfigError(f"--attributes: {exc}") from None
        cred = None
        if credential:
            cred = load_credential(Path(credential))
        return cls(
            master=addr,
            work_dir=wd,
            port=port,
            hostname=hostname or socket.gethostname(),
            ip=ip,
            resources=build_resources(resources, wd),
            attributes=attrs,
            credential=cred,
            recover=recover,
            **extra,
        )

    def flags_json(self) -> dict[str, str]:
        """The flags as Mesos's ``/state`` shows them (all values strings)."""
        return {
            "master": str(self.master),
            "work_dir": str(self.work_dir),
            "port": str(self.port),
            "hostname": self.hostname,
            "ip": self.ip,
            "resources": str(self.resources),
            "attributes": ";".join(str(a) for a in self.attributes),
            "recover": self.recover,
            "containerizers": ",".join(self.containerizers),
            "docker_socket": self.docker_socket,
            "switch_user": "true" if self.switch_user else "false",
            "gc_delay": f"{self.gc_delay}secs",
            "cgroups_root": self.cgroups_root,
            "registration_backoff_factor": f"{self.registration_backoff}secs",
            "status_update_retry_min": f"{self.status_retry_min}secs",
            "status_update_retry_max": f"{self.status_retry_max}secs",
        }

    def attributes_json(self) -> list[dict[str, Any]]:
        return attributes_to_json(self.attributes)


def load_credential(path: Path) -> dict[str, str]:
    """A Mesos credential file: JSON ``{"principal", "secret"}`` or one line
    ``principal secret``."""
    import json

    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"--credential: cannot read {path}: {exc.strerror}") from None
    if text.startswith("{"):
        try:
            obj = json.loads(text)
            principal, secret = str(obj["principal"]), str(obj.get("secret", ""))
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"--credential: {path} must hold JSON {{'principal', 'secret'}}"
            ) from None
    else:
        parts = text.split()
        if len(parts) != 2:
            raise ConfigError(f"--credential: {path} must hold 'principal secret' on one line")
        principal, secret = parts
    if not principal:
        raise ConfigError(f"--credential: {path} has an empty principal")
    return {"principal": principal, "secret": secret}


def describe_scalar(value: float) -> str:
    return format_scalar(to_fixed(value))
