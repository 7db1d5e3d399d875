"""What a DOCKER TaskInfo asks of the Docker Engine: the container to create.

Pure translation (no I/O), so every rule is testable without an engine:

* command: ``shell`` true runs ``/bin/sh -c value`` (the image's entrypoint replaced, as
  Mesos does); ``shell`` false passes ``value`` (if any) and ``arguments`` as the
  container's command after the image's entrypoint; no command keeps the image default;
* environment: what process tasks get (``MESOS_*``, ``HOST``, ``PORT*``) plus
  ``command.environment``; ``MESOS_SANDBOX`` is the sandbox mounted at
  ``/mnt/mesos/sandbox`` inside the container (Mesos's layout);
* network ``HOST`` (the host's network namespace), ``BRIDGE`` with ``port_mappings``
  (host ports must be among the task's ``ports`` resources; a mapping without one takes
  the task's ports in order), ``NONE``, or ``USER`` with the named network;
* volumes: ``host_path`` (relative ones are inside the sandbox) mounted at
  ``container_path``, ``RW`` or ``RO``; a volume without ``host_path`` is anonymous;
* ``command.user`` (Marathon's app ``user``) is the container's ``User``, a name the
  image's ``/etc/passwd`` resolves (or ``uid[:gid]``); a ``user`` parameter wins;
* ``mem`` (MB) and ``cpus`` become the container's memory limit and CPU quota;
* ``parameters`` (``docker run`` flags): the simple ones are supported (see
  :data:`SUPPORTED_PARAMETERS`); any other is refused with a clear message rather than
  silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paddock.agent.tasks import task_ports, task_scalar

__all__ = [
    "CONTAINER_SANDBOX",
    "SUPPORTED_PARAMETERS",
    "ContainerSpec",
    "SpecError",
    "container_name",
    "container_spec",
]

CONTAINER_SANDBOX = "/mnt/mesos/sandbox"
LABEL_PREFIX = "paddock."
SUPPORTED_PARAMETERS = (
    "label",
    "env",
    "user",
    "workdir",
    "hostname",
    "add-host",
    "cap-add",
    "cap-drop",
    "dns",
    "shm-size",
    "entrypoint",
)


class SpecError(ValueError):
    """The TaskInfo cannot be run as a container; the message says why."""


@dataclass
class ContainerSpec:
    """Arguments for ``create_container`` / ``create_host_config`` (docker SDK names)."""

    image: str
    name: str
    labels: dict[str, str]
    environment: dict[str, str]
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    force_pull: bool = False
    #: ``(container_port, protocol)`` to expose, and host bindings ``"8080/tcp" -> 31001``.
    exposed: list[tuple[int, str]] = field(default_factory=list)
    port_bindings: dict[str, int] = field(default_factory=dict)
    #: container port -> host port (health checks translate through it)
    host_port_for: dict[int, int] = field(default_factory=dict)
    network_mode: str = "bridge"
    binds: list[str] = field(default_factory=list)
    anonymous_volumes: list[str] = field(default_factory=list)
    mem_limit: int | None = None
    nano_cpus: int | None = None
    privileged: bool = False
    user: str | None = None
    working_dir: str | None = None
    hostname: str | None = None
    extra_hosts: dict[str, str] = field(default_factory=dict)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    shm_size: str | None = None

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``APIClient.create_container`` (without host_config)."""
        kw: dict[str, Any] = {
            "image": self.image,
            "name": self.name,
            "labels": self.labels,
            "environment": self.environment,
            "command": self.command,
            "entrypoint": self.entrypoint,
            "detach": True,
            "stdin_open": False,
            "tty": False,
        }
        if self.exposed:
            kw["ports"] = list(self.exposed)
        if self.anonymous_volumes:
            kw["volumes"] = list(self.anonymous_volumes)
        if self.user:
            kw["user"] = self.user
        if self.working_dir:
            kw["working_dir"] = self.working_dir
        if self.hostname:
            kw["hostname"] = self.hostname
        return kw

    def host_config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``APIClient.create_host_config``."""
        kw: dict[str, Any] = {"network_mode": self.network_mode, "binds": list(self.binds)}
        if self.port_bindings:
            kw["port_bindings"] = dict(self.port_bindings)
        if self.mem_limit:
            kw["mem_limit"] = self.mem_limit
        if self.nano_cpus:
            kw["nano_cpus"] = self.nano_cpus
        if self.privileged:
            kw["privileged"] = True
        if self.extra_hosts:
            kw["extra_hosts"] = dict(self.extra_hosts)
        if self.cap_add:
            kw["cap_add"] = list(self.cap_add)
        if self.cap_drop:
            kw["cap_drop"] = list(self.cap_drop)
        if self.dns:
            kw["dns"] = list(self.dns)
        if self.shm_size:
            kw["shm_size"] = self.shm_size
        return kw


_NAME_BAD = re.compile(r"[^a-zA-Z0-9_.-]")


def container_name(agent_id: str, task_id: str) -> str:
    """``paddock-<agent id>-<task id>`` in the characters Docker allows in a name."""
    return _NAME_BAD.sub("_", f"paddock-{agent_id or 'unregistered'}-{task_id}")[:200]


def task_labels(
    *, agent_id: str, framework_id: str, task_id: str, run_id: str, work_dir: Path
) -> dict[str, str]:
    """Labels that tie a container to its agent and task (orphan detection reads them)."""
    return {
        LABEL_PREFIX + "agent_id": agent_id,
        LABEL_PREFIX + "framework_id": framework_id,
        LABEL_PREFIX + "task_id": task_id,
        LABEL_PREFIX + "run_id": run_id,
        LABEL_PREFIX + "work_dir": str(work_dir),
    }


def _command(info: Mapping[str, Any]) -> tuple[list[str] | None, list[str] | None]:
    """(entrypoint, command) for the container; None keeps the image's."""
    command = info.get("command")
    if not isinstance(command, dict):
        return None, None
    value = command.get("value")
    if value is not None and not isinstance(value, str):
        raise SpecError("command.value must be a string")
    if command.get("shell", True):
        if not value or not value.strip():
            return None, None  # nothing to run through the shell: the image's default
        return ["/bin/sh", "-c"], [value]
    args = command.get("arguments") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise SpecError("command.arguments must be a list of strings")
    argv = ([value] if value else []) + list(args)
    return None, argv or None


def _network(docker: Mapping[str, Any], info: Mapping[str, Any], spec: ContainerSpec) -> None:
    network = str(docker.get("network") or "HOST").upper()
    if network == "HOST":
        spec.network_mode = "host"
        return
    if network == "NONE":
        spec.network_mode = "none"
        return
    if network == "USER":
        names = [
            n.get("name")
            for n in (info.get("container") or {}).get("network_infos") or []
            if isinstance(n, dict) and n.get("name")
        ]
        if not names:
            raise SpecError("network USER needs a network name in container.network_infos")
        spec.network_mode = str(names[0])
    elif network == "BRIDGE":
        spec.network_mode = "bridge"
    else:
        raise SpecError(f"unknown docker network {network!r} (HOST, BRIDGE, USER or NONE)")
    offered = task_ports(info)
    unused = [p for p in offered]
    for m in docker.get("port_mappings") or []:
        if not isinstance(m, dict):
            raise SpecError("docker.port_mappings entries must be objects")
        try:
            container_port = int(m["container_port"])
            host_port = int(m.get("host_port") or 0)
        except (KeyError, TypeError, ValueError):
            raise SpecError(f"bad port mapping {m!r}: needs container_port") from None
        if not 0 < container_port < 65536:
            raise SpecError(f"port mapping: container_port {container_port} is not a TCP port")
        if host_port == 0:
            if not unused:
                raise SpecError(
                    f"port mapping for container port {container_port} has no host port "
                    "and the task has no ports resources left to take one from"
                )
            host_port = unused[0]
        elif offered and host_port not in offered:
            raise SpecError(
                f"port mapping: host port {host_port} is not among the task's ports resources"
            )
        if host_port in unused:
            unused.remove(host_port)
        protocols = str(m.get("protocol") or "tcp").lower().split(",")
        for proto in protocols:
            if proto not in ("tcp", "udp"):
                raise SpecError(f"port mapping: unknown protocol {proto!r} (tcp or udp)")
            spec.exposed.append((container_port, proto))
            spec.port_bindings[f"{container_port}/{proto}"] = host_port
        spec.host_port_for[container_port] = host_port


def _volumes(info: Mapping[str, Any], sandbox: Path, spec: ContainerSpec) -> None:
    spec.binds.append(f"{sandbox}:{CONTAINER_SANDBOX}:rw")
    for v in (info.get("container") or {}).get("volumes") or []:
        if not isinstance(v, dict) or not isinstance(v.get("container_path"), str):
            raise SpecError("container.volumes entries need a container_path")
        cpath = v["container_path"]
        if not cpath.startswith("/"):
            cpath = f"{CONTAINER_SANDBOX}/{cpath}"
        mode = str(v.get("mode") or "RW").upper()
        if mode not in ("RW", "RO"):
            raise SpecError(f"volume {cpath}: mode must be RW or RO, got {mode!r}")
        host = v.get("host_path")
        if not host:
            spec.anonymous_volumes.append(cpath)
            continue
        if not isinstance(host, str) or ":" in host or ":" in cpath:
            raise SpecError(f"volume {cpath}: bad host_path {host!r}")
        hpath = Path(host) if host.startswith("/") else sandbox / host
        spec.binds.append(f"{hpath}:{cpath}:{mode.lower()}")


def _parameters(docker: Mapping[str, Any], spec: ContainerSpec) -> None:
    for p in docker.get("parameters") or []:
        if not isinstance(p, dict) or not isinstance(p.get("key"), str):
            raise SpecError("docker.parameters entries need a key")
        key = p["key"].lstrip("-")
        value = str(p.get("value") or "")
        if key == "label":
            k, _, v = value.partition("=")
            if not k:
                raise SpecError(f"docker parameter label={value!r}: expected key=value")
            if k.startswith(LABEL_PREFIX):
                raise SpecError(f"docker parameter label={value!r}: {LABEL_PREFIX}* is reserved")
            spec.labels[k] = v
        elif key == "env":
            k, sep, v = value.partition("=")
            if not k or not sep:
                raise SpecError(f"docker parameter env={value!r}: expected NAME=value")
            spec.environment[k] = v
        elif key == "user":
            spec.user = value
        elif key == "workdir":
            spec.working_dir = value
        elif key == "hostname":
            spec.hostname = value
        elif key == "add-host":
            host, _, ip = value.partition(":")
            if not host or not ip:
                raise SpecError(f"docker parameter add-host={value!r}: expected host:ip")
            spec.extra_hosts[host] = ip
        elif key == "cap-add":
            spec.cap_add.append(value)
        elif key == "cap-drop":
            spec.cap_drop.append(value)
        elif key == "dns":
            spec.dns.append(value)
        elif key == "shm-size":
            spec.shm_size = value
        elif key == "entrypoint":
            spec.entrypoint = [value] if value else [""]
        else:
            raise SpecError(
                f"unsupported docker parameter {key!r} (supported: "
                + ", ".join(SUPPORTED_PARAMETERS)
                + ")"
            )


def container_spec(
    *,
    info: Mapping[str, Any],
    agent_id: str,
    framework_id: str,
    run_id: str,
    sandbox: Path,
    work_dir: Path,
    environment: Mapping[str, str],
) -> ContainerSpec:
    """The container for a DOCKER TaskInfo; :class:`SpecError` says what is wrong."""
    container = info.get("container")
    docker = container.get("docker") if isinstance(container, dict) else None
    if not isinstance(docker, dict):
        raise SpecError("a DOCKER container needs container.docker")
    image = docker.get("image")
    if not isinstance(image, str) or not image.strip():
        raise SpecError("container.docker.image is required")
    task_id = str(info["task_id"]["value"])
    env = dict(environment)
    env["MESOS_SANDBOX"] = CONTAINER_SANDBOX
    entrypoint, command = _command(info)
    spec = ContainerSpec(
        image=image.strip(),
        name=container_name(agent_id, task_id),
        labels=task_labels(
            agent_id=agent_id,
            framework_id=framework_id,
            task_id=task_id,
            run_id=run_id,
            work_dir=work_dir,
        ),
        environment=env,
        command=command,
        entrypoint=entrypoint,
        force_pull=bool(docker.get("force_pull_image")),
        privileged=bool(docker.get("privileged")),
    )
    command_info = info.get("command")
    if isinstance(command_info, dict) and command_info.get("user") is not None:
        user = command_info["user"]
        if not isinstance(user, str):
            raise SpecError("command.user must be a string")
        spec.user = user.strip() or None
    _network(docker, info, spec)
    _volumes(info, sandbox, spec)
    _parameters(docker, spec)
    mem = task_scalar(info, "mem")
    if mem > 0:
        spec.mem_limit = int(mem * 1024 * 1024)
    cpus = task_scalar(info, "cpus")
    if cpus > 0:
        spec.nano_cpus = int(cpus * 1e9)
    return spec
