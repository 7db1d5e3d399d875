"""Marathon v2 app definitions: wire models, canonical form and Marathon's validation rules.

Parsing is split the way Marathon splits its errors, so clients see the same status codes:

* ``parse_app(raw_bytes)`` reads JSON strictly (a string where a number belongs is a type
  error, not a coercion). Malformed JSON or a wrong type raises :class:`InvalidJson`, which
  the API turns into ``400 {"message": "Invalid JSON", "details": [...]}``.
* ``validate_app(app)`` applies Marathon's value rules (id grammar, ``cmd`` xor ``args``,
  ranges, constraints, health-check port indices, ...) and returns *every* violation, which
  the API turns into ``422 {"message": "Object is not valid", "details": [...]}``.
* ``canonical_app(app, base)`` resolves relative ids, migrates deprecated fields (``ports``,
  ``uris``, ``container.docker.network``, ``container.docker.portMappings``) into their
  current places and fills Marathon's defaults, so the rest of paddock (planner, store,
  scheduler) only ever sees one shape.

Field names on the wire are Marathon's (camelCase) and nothing else: marathon-python builds
objects with ``cls(**snake_case(json))``, so an unknown response field breaks it. Unknown
request fields are ignored, as Marathon's own JSON readers do.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

# Marathon's PathId.ID_PATH_SEGMENT_PATTERN: one segment of an app or group id.
ID_SEGMENT_PATTERN = (
    r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$"
)
_ID_SEGMENT_RE = re.compile(ID_SEGMENT_PATTERN)
# SchedulingValidationMessages.MesosLiteralOrFloatValue: what IS accepts.
_MESOS_LITERAL_RE = re.compile(r"^[a-zA-Z0-9_/.-]*$")

CONSTRAINT_OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS")
MARATHON_HEALTH_PROTOCOLS = ("HTTP", "HTTPS", "TCP")  # probed by Marathon itself
MESOS_HEALTH_PROTOCOLS = ("COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")  # by the agent
PORT_PROTOCOLS = ("tcp", "udp", "udp,tcp", "tcp,udp")
# stringTypes.raml LegacyName: port names, readiness-check port names.
PORT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_PORT_NAME_RE = re.compile(PORT_NAME_PATTERN)
SINGLE_INSTANCE_LABEL = "MARATHON_SINGLE_INSTANCE_APP"
DEFAULT_PORT_NAME = "default"
DOCKER_SINGLE_NETWORK = (
    "may only specify a single container network when using the Docker container engine"
)
IPV6_CHECKS = (
    "IPv6 can only be used for container type DOCKER and Mesos http/https/tcp health checks"
)


# --------------------------------------------------------------------------- errors


class Violation(BaseModel):
    """One entry of Marathon's error ``details``: a JSON path and its messages."""

    path: str
    errors: list[str]


class InvalidJson(ValueError):
    """Malformed JSON or a value of the wrong JSON type (Marathon answers 400)."""

    def __init__(self, details: list[Violation]) -> None:
        super().__init__("Invalid JSON")
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"message": "Invalid JSON", "details": [d.model_dump() for d in self.details]}


class InvalidObject(ValueError):
    """Well-typed JSON that breaks Marathon's rules (Marathon answers 422)."""

    def __init__(self, details: list[Violation]) -> None:
        super().__init__("Object is not valid")
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"message": "Object is not valid", "details": [d.model_dump() for d in self.details]}


def group_violations(pairs: Iterable[tuple[str, str]]) -> list[Violation]:
    """Group (path, message) pairs by path, keeping first-seen order and dropping repeats."""
    grouped: dict[str, list[str]] = {}
    for path, message in pairs:
        messages = grouped.setdefault(path, [])
        if message not in messages:
            messages.append(message)
    return [Violation(path=p, errors=m) for p, m in grouped.items()]


# Pydantic error types -> the Play JSON error keys Marathon returns in a 400.
_PLAY_ERRORS = {
    "string_type": "error.expected.jsstring",
    "int_type": "error.expected.jsnumber",
    "int_from_float": "error.expected.int",
    "float_type": "error.expected.jsnumber",
    "bool_type": "error.expected.jsboolean",
    "list_type": "error.expected.jsarray",
    "dict_type": "error.expected.jsobject",
    "model_type": "error.expected.jsobject",
    "model_attributes_type": "error.expected.jsobject",
    "literal_error": "error.unknown.enum.literal",
    "enum": "error.unknown.enum.literal",
    "missing": "error.path.missing",
    "union_tag_invalid": "error.unknown.enum.literal",
}


def json_path(loc: Iterable[int | str]) -> str:
    """Marathon's rendering of a JSON path: ``/healthChecks(0)/portIndex``."""
    out = ""
    for part in loc:
        out += f"({part})" if isinstance(part, int) else f"/{part}"
    return out or "/"


def invalid_json_from(error: ValidationError) -> InvalidJson:
    """Translate a pydantic ValidationError into Marathon's 400 details."""
    pairs: list[tuple[str, str]] = []
    for item in error.errors():
        kind = item["type"]
        if kind == "json_invalid":
            pairs.append(("/", str(item.get("ctx", {}).get("error", item["msg"]))))
            continue
        # Unions report each branch ("str", "function-after[...]"); drop those markers.
        loc = [p for p in item["loc"] if isinstance(p, int) or not _is_branch_marker(p)]
        pairs.append((json_path(loc), _PLAY_ERRORS.get(kind, item["msg"])))
    return InvalidJson(group_violations(pairs))


def _is_branch_marker(part: str) -> bool:
    return "[" in part or part in ("str", "int", "float", "bool", "dict", "list", "literal")


def load_json(raw: bytes | str) -> Any:
    """Parse JSON text, raising InvalidJson (400) with the parser's complaint."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJson([Violation(path="/", errors=[f"Unexpected JSON: {exc}"])]) from exc


# --------------------------------------------------------------------------- base


class MarathonModel(BaseModel):
    """Base of the wire models: camelCase on the wire, unknown request fields ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", validate_default=False
    )

    def to_json(self) -> dict[str, Any]:
        """The Marathon JSON form (camelCase, unset optional fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


Labels = dict[str, str]


# --------------------------------------------------------------------------- containers


class DockerParameter(MarathonModel):
    key: str
    value: str


class PortMapping(MarathonModel):
    """container.portMappings entry (bridge / container networking)."""

    container_port: int = 0
    host_port: int | None = None
    service_port: int = 0
    protocol: str = "tcp"
    name: str | None = None
    labels: Labels = Field(default_factory=dict)


class Volume(MarathonModel):
    """A container volume: host bind mount (hostPath) or opaque persistent/external volume."""

    container_path: str
    host_path: str | None = None
    mode: Literal["RO", "RW"] = "RW"
    persistent: dict[str, Any] | None = None
    external: dict[str, Any] | None = None


class DockerContainer(MarathonModel):
    image: str
    network: Literal["BRIDGE", "HOST", "NONE", "USER"] | None = None
    port_mappings: list[PortMapping] | None = None
    parameters: list[DockerParameter] = Field(default_factory=list)
    privileged: bool = False
    force_pull_image: bool = False
    credential: dict[str, Any] | None = None
    pull_config: dict[str, Any] | None = None


class Container(MarathonModel):
    type: Literal["MESOS", "DOCKER"] = "DOCKER"
    docker: DockerContainer | None = None
    volumes: list[Volume] = Field(default_factory=list)
    port_mappings: list[PortMapping] | None = None


class Network(MarathonModel):
    """App networks (Marathon 1.5+): host, container/bridge, or a named container network."""

    mode: Literal["container", "container/bridge", "host"] = "container"
    name: str | None = None
    labels: Labels = Field(default_factory=dict)


class PortDefinition(MarathonModel):
    """portDefinitions entry (host networking): $PORT0..n inside the task."""

    port: int = 0
    protocol: str = "tcp"
    name: str | None = None
    labels: Labels = Field(default_factory=dict)


# --------------------------------------------------------------------------- checks


class CommandCheck(MarathonModel):
    value: str


class HealthCheck(MarathonModel):
    """An app health check with Marathon's defaults (healthCheck.raml, health-checks.md)."""

    protocol: Literal[
        "HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP"
    ] = "HTTP"
    path: str | None = None
    port_index: int | None = None
    port: int | None = None
    command: CommandCheck | None = None
    grace_period_seconds: int = 300
    interval_seconds: int = 60
    timeout_seconds: int = 20
    max_consecutive_failures: int = 3
    ignore_http1xx: bool = Field(default=False, alias="ignoreHttp1xx")
    delay_seconds: int = 15
    ip_protocol: Literal["IPv4", "IPv6"] = "IPv4"

    @property
    def run_by_marathon(self) -> bool:
        """HTTP/HTTPS/TCP are probed by Marathon; the rest run on the agent (Mesos checks)."""
        return self.protocol in MARATHON_HEALTH_PROTOCOLS and self.command is None


class ReadinessCheck(MarathonModel):
    name: str = "readinessCheck"
    protocol: Literal["HTTP", "HTTPS"] = "HTTP"
    path: str = "/"
    port_name: str = "http-api"
    interval_seconds: int = 30
    timeout_seconds: int = 10
    http_status_codes_for_ready: list[int] = Field(default_factory=lambda: [200])
    preserve_last_response: bool = False


class UpgradeStrategy(MarathonModel):
    minimum_health_capacity: float = 1.0
    maximum_over_capacity: float = 1.0


class UnreachableEnabled(MarathonModel):
    inactive_after_seconds: int = 0
    expunge_after_seconds: int = 0


class Artifact(MarathonModel):
    """fetch entry: a URI the Mesos fetcher resolves into the sandbox."""

    uri: str
    extract: bool = True
    executable: bool = False
    cache: bool = False
    output_file: str | None = None


class VersionInfo(MarathonModel):
    last_scaling_at: str
    last_config_change_at: str


# --------------------------------------------------------------------------- the app


class AppDefinition(MarathonModel):
    """A Marathon app (types/app.raml) with Marathon's defaults.

    After :func:`canonical_app` the deprecated inputs (``ports``, ``uris``,
    ``container.docker.network``/``portMappings``) are empty and ``networks``,
    ``portDefinitions``, ``container.portMappings`` and ``fetch`` carry their meaning.
    """

    id: str = ""
    cmd: str | None = None
    args: list[str] | None = None
    user: str | None = None
    env: dict[str, str | dict[str, str]] = Field(default_factory=dict)
    instances: int = 1
    cpus: float = 1.0
    mem: float = 128.0
    disk: float = 0.0
    gpus: int = 0
    executor: str = ""
    constraints: list[list[str]] = Field(default_factory=list)
    uris: list[str] | None = None
    fetch: list[Artifact] = Field(default_factory=list)
    ports: list[int] | None = None
    port_definitions: list[PortDefinition] | None = None
    require_ports: bool = False
    backoff_seconds: int = 1
    backoff_factor: float = 1.15
    max_launch_delay_seconds: int = 300
    container: Container | None = None
    health_checks: list[HealthCheck] = Field(default_factory=list)
    readiness_checks: list[ReadinessCheck] = Field(default_factory=list)
    dependencies: list[str] = Field(default_factory=list)
    upgrade_strategy: UpgradeStrategy = Field(default_factory=UpgradeStrategy)
    labels: Labels = Field(default_factory=dict)
    accepted_resource_roles: list[str] | None = None
    kill_selection: Literal["YOUNGEST_FIRST", "OLDEST_FIRST"] = "YOUNGEST_FIRST"
    unreachable_strategy: UnreachableEnabled | Literal["disabled"] = Field(
        default_factory=UnreachableEnabled
    )
    task_kill_grace_period_seconds: int | None = None
    networks: list[Network] | None = None
    secrets: dict[str, dict[str, str]] = Field(default_factory=dict)
    role: str | None = None
    residency: dict[str, Any] | None = None
    ip_address: dict[str, Any] | None = None
    version: str | None = None
    version_info: VersionInfo | None = None

    # -- derived views the scheduler uses ------------------------------------------

    @property
    def network_mode(self) -> str:
        """ "host", "container/bridge" or "container" (after canonical_app)."""
        if not self.networks:
            return "host"
        return self.networks[0].mode

    @property
    def host_port_count(self) -> int:
        """How many host ports one instance needs from an offer."""
        if self.network_mode == "host":
            return len(self.port_definitions or [])
        mappings = self.container.port_mappings if self.container else None
        return sum(1 for m in mappings or [] if m.host_port is not None)

    def port_names(self) -> list[str]:
        if self.network_mode == "host":
            return [p.name for p in self.port_definitions or [] if p.name]
        mappings = self.container.port_mappings if self.container else None
        return [m.name for m in mappings or [] if m.name]

    def config_equal(self, other: AppDefinition) -> bool:
        """True when the two differ only in instances and version (a scale, not a restart)."""
        skip = {"instances", "version", "version_info"}
        return self.model_dump(exclude=skip) == other.model_dump(exclude=skip)

    @property
    def is_resident(self) -> bool:
        """Uses local persistent volumes (its tasks are pinned to their reservations)."""
        volumes = self.container.volumes if self.container else []
        return self.residency is not None or any(v.persistent is not None for v in volumes)

    def is_single_instance(self) -> bool:
        return self.labels.get(SINGLE_INSTANCE_LABEL) == "true"


class AppUpdateBody(MarathonModel):
    """Only to type-check a PUT/PATCH body before it is merged onto the stored app."""

    id: str | None = None


# --------------------------------------------------------------------------- path ids


def canonical_path(path: str, base: str = "/") -> str:
    """Resolve a Marathon path id against ``base`` ("web" in "/ocfweb" -> "/ocfweb/web").

    ``.`` and ``..`` segments resolve as in file paths; the result is absolute, without a
    trailing slash (the root is "/"). Segment grammar is checked by :func:`path_violations`.
    """
    if not path.startswith("/"):
        path = base.rstrip("/") + "/" + path
    parts: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts:
                parts.pop()
            continue
        parts.append(seg)
    return "/" + "/".join(parts)


def parent_path(path: str) -> str:
    """The enclosing group's id ("/" for a top-level app)."""
    parent = path.rsplit("/", 1)[0]
    return parent or "/"


def path_segments_valid(path: str) -> bool:
    return all(
        _ID_SEGMENT_RE.match(seg) for seg in path.split("/") if seg and seg not in (".", "..")
    )


def path_violations(path: str, where: str) -> list[tuple[str, str]]:
    if not path_segments_valid(path):
        return [(where, f"must fully match regular expression '{ID_SEGMENT_PATTERN}'")]
    return []


def task_id_prefix(app_id: str) -> str:
    """Marathon task ids start with the app id, "/" replaced by "_" ("ocfweb_web")."""
    return app_id.strip("/").replace("/", "_")


def make_task_id(app_id: str, unique: str) -> str:
    """A task id as Marathon forms them: ``ocfweb_web.<uuid>`` (unique supplied by the caller)."""
    return f"{task_id_prefix(app_id)}.{unique}"


def app_id_from_task_id(task_id: str) -> str:
    """The app id encoded in a Marathon task id ("ocfweb_web.x" -> "/ocfweb/web")."""
    prefix = task_id.split(".", 1)[0]
    return "/" + prefix.replace("_", "/")


# --------------------------------------------------------------------------- parsing


def parse_app(data: bytes | str | dict[str, Any], *, require_id: bool = True) -> AppDefinition:
    """Read one app definition strictly; raise InvalidJson (400) on malformed or ill-typed JSON."""
    obj = load_json(data) if isinstance(data, bytes | str) else data
    if not isinstance(obj, dict):
        raise InvalidJson([Violation(path="/", errors=["error.expected.jsobject"])])
    if require_id and "id" not in obj:
        raise InvalidJson([Violation(path="/id", errors=["error.path.missing"])])
    try:
        return AppDefinition.model_validate(obj, strict=True)
    except ValidationError as exc:
        raise invalid_json_from(exc) from exc


def parse_app_list(data: bytes | str) -> list[dict[str, Any]]:
    obj = load_json(data)
    if not isinstance(obj, list) or not all(isinstance(x, dict) for x in obj):
        raise InvalidJson([Violation(path="/", errors=["error.expected.jsarray"])])
    return obj


# --------------------------------------------------------------------------- canonical form


_DOCKER_NETWORK_MODES = {"HOST": "host", "BRIDGE": "container/bridge", "USER": "container"}


def canonical_app(app: AppDefinition, base: str = "/") -> AppDefinition:
    """Resolve ids and move deprecated fields into their current places (a new object).

    Call after :func:`validate_app` succeeded (it reads what validation guarantees).
    """
    given = set(app.model_fields_set)
    app = app.model_copy(deep=True)
    app.id = canonical_path(app.id, base)
    if app.is_resident:
        # Tasks pinned to their reservations cannot move or run beside themselves:
        # Marathon's resident defaults.
        if "unreachable_strategy" not in given:
            app.unreachable_strategy = "disabled"
        if "upgrade_strategy" not in given:
            app.upgrade_strategy = UpgradeStrategy(
                minimum_health_capacity=0.5, maximum_over_capacity=0.0
            )
    parent = parent_path(app.id)
    app.dependencies = [canonical_path(d, parent) for d in app.dependencies]

    if app.container and app.container.docker:
        docker = app.container.docker
        if docker.network is not None and app.networks is None and docker.network != "NONE":
            app.networks = [Network(mode=_DOCKER_NETWORK_MODES[docker.network])]  # type: ignore[arg-type]
        docker.network = None
        if docker.port_mappings is not None and app.container.port_mappings is None:
            app.container.port_mappings = docker.port_mappings
        docker.port_mappings = None
    if not app.networks:
        app.networks = [Network(mode="host")]

    if app.network_mode == "host":
        if app.ports is not None and app.port_definitions is None:
            app.port_definitions = [PortDefinition(port=p) for p in app.ports]
        if app.port_definitions is None:
            app.port_definitions = [PortDefinition(port=0, name=DEFAULT_PORT_NAME)]
        if app.container is not None:
            app.container.port_mappings = None
    else:
        app.port_definitions = []
        if app.container is None:
            app.container = Container(type="MESOS")
        if app.container.port_mappings is None:
            default_host = 0 if app.network_mode == "container/bridge" else None
            app.container.port_mappings = [
                PortMapping(container_port=0, host_port=default_host, name=DEFAULT_PORT_NAME)
            ]
        elif app.network_mode == "container/bridge":
            for m in app.container.port_mappings:
                if m.host_port is None:
                    m.host_port = 0
    app.ports = None

    if app.uris:
        app.fetch = [Artifact(uri=u, extract=_extractable(u)) for u in app.uris]
    app.uris = None

    for check in app.health_checks:
        probes_port = check.run_by_marathon or check.protocol.startswith("MESOS_")
        if probes_port and check.port is None and check.port_index is None:
            check.port_index = 0
        if check.protocol in ("HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS") and check.path is None:
            check.path = "/"
        if check.command is not None:
            check.protocol = "COMMAND"
    return app


def _extractable(uri: str) -> bool:
    return uri.endswith((".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".zip"))


# --------------------------------------------------------------------------- validation


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
        return _DOCKER_NETWORK_MODES.get(docker.network, "host")
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


def prefix_violations(violations: list[Violation], prefix: str) -> list[Violation]:
    """Nest violations under ``prefix`` (e.g. "/apps(2)" when an app sits in a group body)."""
    return [
        Violation(path=prefix + ("" if v.path == "/" else v.path), errors=v.errors)
        for v in violations
    ]


# --------------------------------------------------------------------------- tasks


class HealthCheckResult(MarathonModel):
    alive: bool
    consecutive_failures: int = 0
    first_success: str | None = None
    last_failure: str | None = None
    last_success: str | None = None
    last_failure_cause: str | None = None
    instance_id: str | None = None


class IpAddress(MarathonModel):
    ip_address: str
    protocol: str = "IPv4"


class Task(MarathonModel):
    """A task as /v2/tasks and /v2/apps/{id}/tasks show it (marathon-python's MarathonTask)."""

    id: str
    app_id: str
    host: str = ""
    slave_id: str = ""
    ports: list[int] = Field(default_factory=list)
    service_ports: list[int] = Field(default_factory=list)
    staged_at: str | None = None
    started_at: str | None = None
    version: str = ""
    state: str = "TASK_STAGING"
    ip_addresses: list[IpAddress] = Field(default_factory=list)
    health_check_results: list[HealthCheckResult] = Field(default_factory=list)
    local_volumes: list[dict[str, Any]] = Field(default_factory=list)
    region: str | None = None
    zone: str | None = None
    role: str | None = None


class TaskFailure(MarathonModel):
    """lastTaskFailure: the last TASK_FAILED/ERROR/... an app's task reported."""

    app_id: str
    host: str = ""
    message: str = ""
    state: str = "TASK_FAILED"
    task_id: str = ""
    instance_id: str | None = None
    slave_id: str | None = None
    timestamp: str = ""
    version: str = ""
