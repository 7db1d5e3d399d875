"""Marathon's validation rules for app definitions (AppValidation, SchedulingValidation).

``validate_app`` returns every violation at once, with Marathon's JSON paths
(``/healthChecks(0)/portIndex``) and messages; ``checked_app`` parses, validates and
canonicalises in one go, raising InvalidJson (400) or InvalidObject (422).
"""

from __future__ import annotations

import math
import re
from typing import Any

from paddock.marathon.models import (
    DEFAULT_PORT_NAME,
    DOCKER_NETWORK_MODES,
    MARATHON_HEALTH_PROTOCOLS,
    AppDefinition,
    Container,
    InvalidObject,
    PortMapping,
    UnreachableEnabled,
    Violation,
    canonical_app,
    canonical_path,
    group_violations,
    parse_app,
    path_violations,
)

# SchedulingValidationMessages.MesosLiteralOrFloatValue: what IS accepts.
_MESOS_LITERAL_RE = re.compile(r"^[a-zA-Z0-9_/.-]*$")
CONSTRAINT_OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS")
PORT_PROTOCOLS = ("tcp", "udp", "udp,tcp", "tcp,udp")
# stringTypes.raml LegacyName: port names, readiness-check port names.
PORT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_PORT_NAME_RE = re.compile(PORT_NAME_PATTERN)
DOCKER_SINGLE_NETWORK = (
    "may only specify a single container network when using the Docker container engine"
)
IPV6_CHECKS = (
    "IPv6 can only be used for container type DOCKER and Mesos http/https/tcp health checks"
)


def _min(pairs: list[tuple[str, str]], path: str, value: float, low: float) -> None:
    if value < low:
        pairs.append((path, f"got {value}, expected {low} or more"))


def _between(
    pairs: list[tuple[str, str]], path: str, value: float, low: float, high: float
) -> None:
    if value > high:
        pairs.append((path, f"is greater than {high:g}"))
    elif value < low:
        pairs.append((path, f"is less than {low:g}"))


def constraint_violation(c: list[str]) -> str | None:
    """Marathon's rule for one ``[field, OP, value?]`` constraint, or None when it is valid."""
    if len(c) < 2 or len(c) > 3:
        return "Each constraint must have either 2 or 3 fields"
    field, op = c[0], c[1]
    value = c[2] if len(c) == 3 else None
    if not field:
        return "illegal constraint specification"
    op = op.upper()
    if op not in CONSTRAINT_OPERATORS:
        return (
            "operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, "
            "UNLIKE or IS"
        )
    if op == "UNIQUE" and value is not None:
        return "UNIQUE does not accept a value"
    if op == "GROUP_BY" and value is not None and not _is_int(value):
        return "GROUP BY must define an integer value or else no value at all"
    if op == "MAX_PER" and (value is None or not _is_int(value)):
        return "MAX_PER requires an integer value"
    if op in ("LIKE", "UNLIKE"):
        if not value:
            return "LIKE and UNLIKE require a non-empty, regular expression value"
        try:
            re.compile(value)
        except re.error:
            return "is not a valid regular expression"
    if op == "IS" and not _MESOS_LITERAL_RE.match(value or ""):
        return (
            "IS only supports Mesos text and float values "
            "(see http://mesos.apache.org/documentation/latest/attributes-resources/)"
        )
    return None


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def validate_app(app: AppDefinition, *, base: str = "/") -> list[Violation]:
    """Every Marathon rule ``app`` breaks (empty list: valid). Paths as Marathon renders them."""
    pairs: list[tuple[str, str]] = []
    add = pairs.append
    given = app.model_fields_set

    # id
    if not app.id:
        add(("/id", "must not be empty"))
    else:
        pairs += path_violations(app.id, "/id")
        if canonical_path(app.id, base) == "/":
            add(("/id", "must not be root"))

    # command
    has_cmd, has_args = app.cmd is not None, bool(app.args)
    container_ok = app.container is not None and (
        app.container.docker is not None or app.container.type == "MESOS"
    )
    if not ((has_cmd != has_args) or (not (has_cmd and has_args) and container_ok)):
        add(
            ("/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.")
        )
    if app.cmd is not None and app.cmd == "":
        add(("/cmd", "must not be an empty string"))

    # resources and numbers
    _min(pairs, "/cpus", app.cpus, 0.001)
    _min(pairs, "/mem", app.mem, 0)
    _min(pairs, "/disk", app.disk, 0)
    _min(pairs, "/gpus", app.gpus, 0)
    _min(pairs, "/instances", app.instances, 0)
    _min(pairs, "/backoffSeconds", app.backoff_seconds, 0)
    _min(pairs, "/backoffFactor", app.backoff_factor, 1.0)
    _min(pairs, "/maxLaunchDelaySeconds", app.max_launch_delay_seconds, 0)
    if app.task_kill_grace_period_seconds is not None:
        _min(pairs, "/taskKillGracePeriodSeconds", app.task_kill_grace_period_seconds, 0)
    for name, number in (("cpus", app.cpus), ("mem", app.mem), ("disk", app.disk)):
        if math.isnan(number) or math.isinf(number):
            add((f"/{name}", "must be a finite number"))
    us = app.upgrade_strategy
    _between(pairs, "/upgradeStrategy/minimumHealthCapacity", us.minimum_health_capacity, 0, 1)
    _between(pairs, "/upgradeStrategy/maximumOverCapacity", us.maximum_over_capacity, 0, 1)
    if app.is_single_instance():
        if app.instances > 1:
            add(("/", "Single instance app may only have one instance"))
        if us.minimum_health_capacity != 0:
            add(("/upgradeStrategy/minimumHealthCapacity", "must be equal to 0.0"))
        if us.maximum_over_capacity != 0:
            add(("/upgradeStrategy/maximumOverCapacity", "must be equal to 0.0"))
    if app.is_resident and "upgrade_strategy" in given and us.maximum_over_capacity != 0:
        add(("/upgradeStrategy/maximumOverCapacity", "must be equal to 0.0"))
    if isinstance(app.unreachable_strategy, UnreachableEnabled):
        ur = app.unreachable_strategy
        _min(pairs, "/unreachableStrategy/inactiveAfterSeconds", ur.inactive_after_seconds, 0)
        _min(pairs, "/unreachableStrategy/expungeAfterSeconds", ur.expunge_after_seconds, 0)
        if ur.inactive_after_seconds > ur.expunge_after_seconds:
            add(
                (
                    "/unreachableStrategy",
                    "inactiveAfterSeconds must be less or equal to expungeAfterSeconds",
                )
            )
        if app.is_resident and "unreachable_strategy" in given:
            add(("/", "unreachableStrategy must be disabled for resident tasks"))

    # constraints and dependencies
    for i, c in enumerate(app.constraints):
        problem = constraint_violation(c)
        if problem:
            add((f"/constraints({i})", problem))
    if len({tuple(c) for c in app.constraints}) != len(app.constraints):
        add(("/constraints", "Elements must be unique."))
    for i, dep in enumerate(app.dependencies):
        pairs += path_violations(dep, f"/dependencies({i})")
    if len(set(app.dependencies)) != len(app.dependencies):
        add(("/dependencies", "Elements must be unique."))
    for key in app.env:
        if not key:
            add(("/env", "keys must not be empty"))
    if app.executor and not re.match(r"^(//cmd)|(/?[^/]+(/[^/]+)*)|$", app.executor):
        add(("/executor", "must fully match regular expression '^(//cmd)|(/?[^/]+(/[^/]+)*)|$'"))
    if app.accepted_resource_roles is not None and not app.accepted_resource_roles:
        add(("/acceptedResourceRoles", "must not be empty"))

    # ports and networking
    pairs += _network_violations(app)

    # container
    if app.container is not None:
        pairs += _container_violations(app.container)
    if app.gpus > 0 and app.container is not None and app.container.type == "DOCKER":
        add(("/", "GPU resources only work with the Mesos containerizer"))

    # fetch
    if app.uris and app.fetch:
        add(("/uris", "may not be set in conjunction with fetch"))
    for i, art in enumerate(app.fetch):
        if not art.uri:
            add((f"/fetch({i})/uri", "URI has invalid syntax."))

    # health and readiness checks
    pairs += _check_violations(app)
    return group_violations(pairs)


def _network_violations(app: AppDefinition) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    add = pairs.append
    docker = app.container.docker if app.container else None
    if docker is not None and docker.network is not None and app.networks:
        add(("/", "must not specify both container.docker.network and networks"))
    if app.ports is not None and app.port_definitions is not None:
        add(("/", "cannot specify both ports and port definitions"))
    if app.networks:
        modes = [n.mode for n in app.networks]
        if "host" in modes and len(modes) > 1:
            add(("/networks", "host networks may not have names or labels, and may only be one"))
        if "container/bridge" in modes and len(modes) > 1:
            add(("/networks", "bridge networks may only be one"))
        for i, n in enumerate(app.networks):
            if n.mode == "host" and n.name:
                add((f"/networks({i})/name", "must be empty for host networking"))
        if (
            app.container is not None
            and app.container.type == "DOCKER"
            and modes.count("container") > 1
        ):
            add(
                (
                    "/",
                    DOCKER_SINGLE_NETWORK,
                )
            )
    host = _effective_mode(app) == "host"
    mappings = _effective_port_mappings(app)
    if host and mappings:
        add(("/", "portMappings are not allowed with host-networking"))
    if not host and app.port_definitions:
        add(("/", "portDefinitions are only allowed with host-networking"))
    definitions = app.port_definitions or []
    for i, pd in enumerate(definitions):
        _port_range(pairs, f"/portDefinitions({i})/port", pd.port)
        if pd.protocol not in PORT_PROTOCOLS:
            add((f"/portDefinitions({i})/protocol", "is not one of (tcp,udp,udp,tcp)"))
    for i, pd in enumerate(definitions):
        if pd.name is not None and not _PORT_NAME_RE.match(pd.name):
            add((f"/portDefinitions({i})/name", _port_name_message()))
    names = [pd.name for pd in definitions if pd.name]
    if len(names) != len(set(names)):
        add(("/portDefinitions", "Port names must be unique."))
    fixed = [pd.port for pd in definitions if pd.port != 0]
    if len(fixed) != len(set(fixed)):
        add(("/portDefinitions", "Ports must be unique."))
    for i, p in enumerate(app.ports or []):
        _port_range(pairs, f"/ports({i})", p)
    fixed_ports = [p for p in app.ports or [] if p != 0]
    if len(fixed_ports) != len(set(fixed_ports)):
        add(("/", "ports must be unique"))
    return pairs


def _effective_mode(app: AppDefinition) -> str:
    if app.networks:
        return app.networks[0].mode
    docker = app.container.docker if app.container else None
    if docker is not None and docker.network is not None:
        return DOCKER_NETWORK_MODES.get(docker.network, "host")
    return "host"


def _effective_port_mappings(app: AppDefinition) -> list[PortMapping]:
    if app.container is None:
        return []
    if app.container.port_mappings is not None:
        return app.container.port_mappings
    if app.container.docker is not None and app.container.docker.port_mappings is not None:
        return app.container.docker.port_mappings
    return []


def _port_name_message() -> str:
    return f"must fully match regular expression '{PORT_NAME_PATTERN}'"


def _port_range(pairs: list[tuple[str, str]], path: str, port: int) -> None:
    if port < 0:
        pairs.append((path, f"got {port}, expected 0 or more"))
    elif port > 65535:
        pairs.append((path, f"got {port}, expected 65535 or less"))


def _container_violations(container: Container) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    add = pairs.append
    if container.type == "DOCKER" and container.docker is None:
        add(("/container/docker", "must not be empty"))
    if container.docker is not None:
        if not container.docker.image:
            add(("/container/docker/image", "must not be empty"))
        for i, p in enumerate(container.docker.parameters):
            if not p.key:
                add((f"/container/docker/parameters({i})/key", "must not be empty"))
        if container.type == "MESOS" and container.docker.privileged:
            add(("/container/docker/privileged", "only supported by the DOCKER containerizer"))
    mappings = container.port_mappings
    where = "/container/portMappings"
    if mappings is None and container.docker is not None:
        mappings = container.docker.port_mappings
        where = "/container/docker/portMappings"
    for i, m in enumerate(mappings or []):
        _port_range(pairs, f"{where}({i})/containerPort", m.container_port)
        _port_range(pairs, f"{where}({i})/servicePort", m.service_port)
        if m.host_port is not None:
            _port_range(pairs, f"{where}({i})/hostPort", m.host_port)
        if m.protocol not in PORT_PROTOCOLS:
            add((f"{where}({i})/protocol", "is not one of (tcp,udp,udp,tcp)"))
    for i, m in enumerate(mappings or []):
        if m.name is not None and not _PORT_NAME_RE.match(m.name):
            add((f"{where}({i})/name", _port_name_message()))
    names = [m.name for m in mappings or [] if m.name]
    if len(names) != len(set(names)):
        add((where, "Port names must be unique."))
    for i, v in enumerate(container.volumes):
        if not v.container_path:
            add((f"/container/volumes({i})/containerPath", "must not be empty"))
        if v.host_path is not None and v.host_path == "":
            add((f"/container/volumes({i})/hostPath", "must not be empty"))
        kinds = sum(x is not None for x in (v.host_path, v.persistent, v.external))
        if kinds != 1:
            add(
                (
                    f"/container/volumes({i})",
                    "must be exactly one of hostPath, persistent or external",
                )
            )
    paths = [v.container_path for v in container.volumes]
    if len(paths) != len(set(paths)):
        add(("/container/volumes", "container paths must be unique"))
    return pairs


def _check_violations(app: AppDefinition) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    add = pairs.append
    port_count = _port_count_for_checks(app)
    mesos_checks = 0
    for i, hc in enumerate(app.health_checks):
        where = f"/healthChecks({i})"
        for name, value in (
            ("gracePeriodSeconds", hc.grace_period_seconds),
            ("intervalSeconds", hc.interval_seconds),
            ("timeoutSeconds", hc.timeout_seconds),
            ("maxConsecutiveFailures", hc.max_consecutive_failures),
            ("delaySeconds", hc.delay_seconds),
        ):
            _min(pairs, f"{where}/{name}", value, 0)
        if hc.protocol == "COMMAND" and hc.command is None:
            add((f"{where}/command", "must not be empty for COMMAND health checks"))
        if hc.command is not None and not hc.command.value:
            add((f"{where}/command/value", "must not be empty"))
        if hc.path is not None and not hc.path.startswith("/"):
            add((f"{where}/path", "must start with /"))
        if hc.port is not None and hc.port_index is not None:
            add((where, "Health check may specify either port or portIndex, not both"))
        if hc.port is not None:
            _port_range(pairs, f"{where}/port", hc.port)
        if hc.port_index is not None and hc.port_index < 0:
            add((f"{where}/portIndex", f"got {hc.port_index}, expected 0 or more"))
        if hc.command is None and hc.protocol in MARATHON_HEALTH_PROTOCOLS:
            ok = (
                0 <= hc.port_index < port_count
                if hc.port_index is not None
                else hc.port is not None or port_count >= 1
            )
            if not ok:
                add(
                    (
                        where,
                        "Health check port indices must address an element of the ports array or "
                        "container port mappings.",
                    )
                )
        if hc.ip_protocol == "IPv6" and not (
            hc.protocol in ("MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")
            and app.container is not None
            and app.container.type == "DOCKER"
        ):
            add(
                (
                    where,
                    IPV6_CHECKS,
                )
            )
        if hc.protocol in ("MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP"):
            mesos_checks += 1
    if mesos_checks > 1:
        add(("/", "AppDefinition can contain at most one Mesos health check"))
    if len(app.readiness_checks) > 1:
        add(("/readinessChecks", f"got {len(app.readiness_checks)}, expected 1 or less"))
    known_ports = _port_names_for_checks(app)
    for i, rc in enumerate(app.readiness_checks):
        where = f"/readinessChecks({i})"
        if rc.timeout_seconds >= rc.interval_seconds:
            add(
                (
                    f"{where}/timeoutSeconds",
                    f"got {rc.timeout_seconds}, expected less than {rc.interval_seconds}",
                )
            )
        if rc.timeout_seconds < 1:
            add((f"{where}/timeoutSeconds", f"got {rc.timeout_seconds}, expected 1 or more"))
        if rc.port_name not in known_ports:
            add((f"{where}/portName", f"No port definition reference for portName {rc.port_name}"))
        if not rc.http_status_codes_for_ready:
            add((f"{where}/httpStatusCodesForReady", "must not be empty"))
        for code in rc.http_status_codes_for_ready:
            if not 100 <= code <= 999:
                add(
                    (
                        f"{where}/httpStatusCodesForReady",
                        f"got {code}, expected between 100 and 999",
                    )
                )
    return pairs


def _port_count_for_checks(app: AppDefinition) -> int:
    if _effective_mode(app) == "host":
        if app.port_definitions is not None:
            return len(app.port_definitions)
        if app.ports is not None:
            return len(app.ports)
        return 1  # the default port definition
    mappings = _effective_port_mappings(app)
    return (
        len(mappings)
        if mappings or app.container is None or app.container.port_mappings is not None
        else 1
    )


def _port_names_for_checks(app: AppDefinition) -> set[str]:
    if _effective_mode(app) == "host":
        if app.port_definitions is None and app.ports is None:
            return {DEFAULT_PORT_NAME}
        return {p.name for p in app.port_definitions or [] if p.name}
    return {m.name for m in _effective_port_mappings(app) if m.name}


def checked_app(
    data: bytes | str | dict[str, Any], *, base: str = "/", require_id: bool = True
) -> AppDefinition:
    """Parse, validate and canonicalise: raises InvalidJson (400) or InvalidObject (422)."""
    app = parse_app(data, require_id=require_id)
    problems = validate_app(app, base=base)
    if problems:
        raise InvalidObject(problems)
    return canonical_app(app, base)
