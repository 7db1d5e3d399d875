"""Marathon v2 app definitions: wire models, canonical form and Marathon's validation rules.

Parsing is split the way Marathon splits its errors, so clients see the same status codes:

* ``parse_app(raw_bytes)`` reads JSON strictly (a string where a number belongs is a type
  error, not a coercion). Malformed JSON or a wrong type raises :class:`InvalidJson`, which
  the API turns into ``400 {"message": "Invalid JSON", "details": [...]}``.
* ``validation.validate_app(app)`` applies Marathon's value rules (id grammar, ``cmd`` xor ``args``,
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
import re
from collections.abc import Iterable
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

# Marathon's PathId.ID_PATH_SEGMENT_PATTERN: one segment of an app or group id.
ID_SEGMENT_PATTERN = (
    r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$"
)
_ID_SEGMENT_RE = re.compile(ID_SEGMENT_PATTERN)

MARATHON_HEALTH_PROTOCOLS = ("HTTP", "HTTPS", "TCP")  # probed by Marathon itself
MESOS_HEALTH_PROTOCOLS = ("COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")  # by the agent
SINGLE_INSTANCE_LABEL = "MARATHON_SINGLE_INSTANCE_APP"
DEFAULT_PORT_NAME = "default"


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


DOCKER_NETWORK_MODES = {"HOST": "host", "BRIDGE": "container/bridge", "USER": "container"}


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
            app.networks = [Network(mode=DOCKER_NETWORK_MODES[docker.network])]  # type: ignore[arg-type]
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

    def json_bytes(self) -> bytes:
        """The JSON of :meth:`to_json`, encoded (the scheduler's tasks cache it)."""
        return orjson.dumps(self.to_json())


class TaskFailure(MarathonModel):
    """lastTaskFailure: the last TASK_FAILED/ERROR/... an app's task reported.

    ``timestamp`` is required: clients parse it as a date (``2020-01-01T00:00:00.000Z``).
    """

    app_id: str
    timestamp: str
    host: str = ""
    message: str = ""
    state: str = "TASK_FAILED"
    task_id: str = ""
    instance_id: str | None = None
    slave_id: str | None = None
    version: str = ""
