"""Build Mesos v1 TaskInfo JSON for one instance of an app, as Marathon does.

Task id ``<app id, "/" -> "_">.<uuid>`` (``ocfweb_web.1b2c...``); command through the
shell (``cmd``) or as argv (``args``); environment: the app's env plus Marathon's
``MARATHON_APP_ID``, ``MARATHON_APP_VERSION``, ``MARATHON_APP_RESOURCE_*``, ``PORT0..n``,
``PORTS``, ``PORT_<NAME>`` (``HOST`` comes from the agent); labels; DOCKER containers are
carried through as v1 ContainerInfo; ``taskKillGracePeriodSeconds`` becomes the kill
policy; COMMAND/MESOS_* health checks become ``TaskInfo.health_check`` for the agent.
"""

from __future__ import annotations

from typing import Any

from paddock.marathon.models import AppDefinition, HealthCheck, make_task_id


def new_task_id(app_id: str, rng: Any) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return make_task_id(app_id, f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}")


def _scalar(name: str, value: float, role: str) -> dict[str, Any]:
    res: dict[str, Any] = {"name": name, "type": "SCALAR", "scalar": {"value": round(value, 3)}}
    if role != "*":
        res["role"] = role
    return res


def task_env(app: AppDefinition, host_ports: list[int]) -> dict[str, str]:
    env: dict[str, str] = {k: v for k, v in app.env.items() if isinstance(v, str)}
    env["MARATHON_APP_ID"] = app.id
    env["MARATHON_APP_VERSION"] = app.version or ""
    env["MARATHON_APP_DOCKER_IMAGE"] = (
        app.container.docker.image if app.container and app.container.docker else ""
    )
    env["MARATHON_APP_RESOURCE_CPUS"] = f"{app.cpus:g}"
    env["MARATHON_APP_RESOURCE_MEM"] = f"{app.mem:g}"
    env["MARATHON_APP_RESOURCE_DISK"] = f"{app.disk:g}"
    env["MARATHON_APP_RESOURCE_GPUS"] = str(app.gpus)
    if app.labels:
        env["MARATHON_APP_LABELS"] = " ".join(sorted(app.labels))
        for key, value in app.labels.items():
            safe = "".join(c if c.isalnum() else "_" for c in key).upper()
            env[f"MARATHON_APP_LABEL_{safe}"] = value
    for i, port in enumerate(host_ports):
        env[f"PORT{i}"] = str(port)
    if host_ports:
        env["PORT"] = str(host_ports[0])
        env["PORTS"] = ",".join(str(p) for p in host_ports)
    for name, port in zip(_port_names(app), host_ports, strict=False):
        if name:
            env[f"PORT_{name.upper().replace('-', '_')}"] = str(port)
    return env


def _port_names(app: AppDefinition) -> list[str | None]:
    if app.network_mode == "host":
        return [p.name for p in app.port_definitions or []]
    mappings = app.container.port_mappings if app.container else None
    return [m.name for m in mappings or [] if m.host_port is not None]


def mesos_health_check(hc: HealthCheck, host_ports: list[int]) -> dict[str, Any] | None:
    """A v1 HealthCheck for checks the agent runs (COMMAND, MESOS_*); None for others."""
    common: dict[str, Any] = {
        "delay_seconds": 0.0,
        "grace_period_seconds": float(hc.grace_period_seconds),
        "interval_seconds": float(hc.interval_seconds),
        "timeout_seconds": float(hc.timeout_seconds),
        "consecutive_failures": hc.max_consecutive_failures,
    }
    if hc.protocol == "COMMAND" or (hc.command is not None):
        if hc.command is None:
            return None
        return {**common, "type": "COMMAND", "command": {"value": hc.command.value, "shell": True}}
    port = hc.port
    if port is None and hc.port_index is not None and hc.port_index < len(host_ports):
        port = host_ports[hc.port_index]
    if port is None and host_ports:
        port = host_ports[0]
    if hc.protocol in ("MESOS_HTTP", "MESOS_HTTPS"):
        scheme = "https" if hc.protocol == "MESOS_HTTPS" else "http"
        return {
            **common,
            "type": "HTTP",
            "http": {"port": port or 0, "path": hc.path or "/", "scheme": scheme},
        }
    if hc.protocol == "MESOS_TCP":
        return {**common, "type": "TCP", "tcp": {"port": port or 0}}
    return None


def build_task_info(
    app: AppDefinition,
    task_id: str,
    agent_id: str,
    host_ports: list[int],
    role: str = "*",
) -> dict[str, Any]:
    resources = [
        _scalar("cpus", app.cpus, role),
        _scalar("mem", app.mem, role),
    ]
    if app.disk:
        resources.append(_scalar("disk", app.disk, role))
    if app.gpus:
        resources.append(_scalar("gpus", float(app.gpus), role))
    if host_ports:
        ranges = {"range": [{"begin": p, "end": p} for p in host_ports]}
        ports_res: dict[str, Any] = {"name": "ports", "type": "RANGES", "ranges": ranges}
        if role != "*":
            ports_res["role"] = role
        resources.append(ports_res)
    env = task_env(app, host_ports)
    command: dict[str, Any] = {
        "environment": {"variables": [{"name": k, "value": v} for k, v in sorted(env.items())]},
        "uris": [
            {"value": a.uri, "extract": a.extract, "executable": a.executable, "cache": a.cache}
            for a in app.fetch
        ]
        + [{"value": u, "extract": True} for u in app.uris or []],
    }
    if app.user:
        command["user"] = app.user
    if app.cmd is not None:
        command["value"] = app.cmd
        command["shell"] = True
    elif app.args:
        command["shell"] = False
        if app.container is None or app.container.docker is None:
            command["value"] = app.args[0]
        command["arguments"] = list(app.args)
    else:
        command["shell"] = False
    info: dict[str, Any] = {
        "name": app.id.strip("/").replace("/", "."),
        "task_id": {"value": task_id},
        "agent_id": {"value": agent_id},
        "resources": resources,
        "command": command,
    }
    if app.labels:
        info["labels"] = {"labels": [{"key": k, "value": v} for k, v in sorted(app.labels.items())]}
    if app.container is not None:
        info["container"] = container_info(app, host_ports)
    if app.task_kill_grace_period_seconds is not None:
        info["kill_policy"] = {
            "grace_period": {"nanoseconds": int(app.task_kill_grace_period_seconds * 1e9)}
        }
    for hc in app.health_checks:
        check = mesos_health_check(hc, host_ports)
        if check is not None:
            info["health_check"] = check  # Mesos allows one per task
            break
    port_defs = app.port_definitions or [] if app.network_mode == "host" else []
    if port_defs and host_ports:
        info["discovery"] = {
            "visibility": "FRAMEWORK",
            "name": info["name"],
            "ports": {
                "ports": [
                    {"number": p, "name": d.name or "", "protocol": d.protocol}
                    for p, d in zip(host_ports, port_defs, strict=False)
                ]
            },
        }
    return info


def container_info(app: AppDefinition, host_ports: list[int]) -> dict[str, Any]:
    """The app's container as a Mesos v1 ContainerInfo (running it is the agent's job)."""
    c = app.container
    assert c is not None
    out: dict[str, Any] = {"type": c.type}
    if c.volumes:
        out["volumes"] = [
            {
                "container_path": v.container_path,
                "mode": v.mode,
                **({"host_path": v.host_path} if v.host_path else {}),
            }
            for v in c.volumes
        ]
    mappings = c.port_mappings or (c.docker.port_mappings if c.docker else None) or []
    if c.type == "MESOS":
        # Mesos's own containerizer: an image (if any) is ``mesos.image``, never DockerInfo
        image = c.docker.image if c.docker is not None else None
        out["mesos"] = {"image": {"type": "DOCKER", "docker": {"name": image}}} if image else {}
    elif c.docker is not None:
        d = c.docker
        network = d.network or {"host": "HOST", "container/bridge": "BRIDGE"}.get(
            app.network_mode, "USER"
        )
        docker: dict[str, Any] = {
            "image": d.image,
            "network": network,
            "privileged": d.privileged,
            "force_pull_image": d.force_pull_image,
            "parameters": [{"key": p.key, "value": p.value} for p in d.parameters],
        }
        if network == "BRIDGE":
            ports = iter(host_ports)
            docker["port_mappings"] = [
                {"host_port": next(ports, 0), "container_port": m.container_port,
                 "protocol": m.protocol}
                for m in mappings
                if m.host_port is not None
            ]  # fmt: skip
        out["docker"] = docker
    if app.networks and app.network_mode != "host":
        out["network_infos"] = [
            {"name": n.name} if n.name else {} for n in app.networks if n.mode == "container"
        ] or [{}]
    return out
