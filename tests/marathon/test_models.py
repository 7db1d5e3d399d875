"""App definition parsing, Marathon's validation rules and the canonical form."""

from __future__ import annotations

import json

import pytest

from paddock.marathon.models import (
    AppDefinition,
    InvalidJson,
    InvalidObject,
    app_id_from_task_id,
    canonical_path,
    make_task_id,
    parse_app,
)
from paddock.marathon.validation import checked_app, constraint_violation, validate_app

OCFWEB = {
    "id": "/ocfweb/web",
    "cpus": 1,
    "mem": 1024,
    "instances": 3,
    "container": {
        "type": "DOCKER",
        "docker": {"image": "docker.ocf.berkeley.edu/ocfweb-web:2020-11-26"},
    },
    "healthChecks": [
        {"protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 30},
        {"protocol": "TCP"},
    ],
    "constraints": [["hostname", "UNIQUE"], ["nfs", "CLUSTER", "true"]],
}


def details(exc: InvalidObject | InvalidJson) -> dict[str, list[str]]:
    return {d.path: d.errors for d in exc.details}


def test_seed_ocfweb_definition_is_accepted_as_written():
    app = checked_app(json.dumps(OCFWEB))
    assert app.id == "/ocfweb/web"
    assert (app.cpus, app.mem, app.instances) == (1.0, 1024.0, 3)
    assert app.container is not None and app.container.docker is not None
    assert app.container.docker.image.startswith("docker.ocf.berkeley.edu/ocfweb-web:")
    assert app.constraints == [["hostname", "UNIQUE"], ["nfs", "CLUSTER", "true"]]
    http, tcp = app.health_checks
    # Marathon's documented defaults fill whatever the definition left out.
    assert (http.grace_period_seconds, http.interval_seconds, http.timeout_seconds) == (30, 60, 20)
    assert http.max_consecutive_failures == 3 and http.delay_seconds == 15
    assert http.ignore_http1xx is False
    assert tcp.port_index == 0 and tcp.path is None and tcp.grace_period_seconds == 300
    assert app.upgrade_strategy.minimum_health_capacity == 1.0
    assert app.upgrade_strategy.maximum_over_capacity == 1.0
    assert (app.backoff_seconds, app.backoff_factor, app.max_launch_delay_seconds) == (1, 1.15, 300)
    assert app.kill_selection == "YOUNGEST_FIRST"
    out = app.to_json()
    assert out["healthChecks"][0]["ignoreHttp1xx"] is False
    assert out["networks"] == [{"mode": "host", "labels": {}}]
    assert out["portDefinitions"] == [
        {"port": 0, "protocol": "tcp", "name": "default", "labels": {}}
    ]
    assert "ports" not in out and "uris" not in out


def test_defaults_of_a_minimal_command_app():
    app = checked_app({"id": "sleepy", "cmd": "sleep 100"})
    assert app.id == "/sleepy"
    assert (app.cpus, app.mem, app.disk, app.gpus, app.instances) == (1.0, 128.0, 0.0, 0, 1)
    assert app.network_mode == "host" and app.host_port_count == 1


def test_every_offending_field_is_listed():
    bad = {
        "id": "/Bad_Name/x",
        "cmd": "sleep 1",
        "args": ["sleep", "1"],
        "cpus": 0,
        "mem": -1,
        "instances": -2,
        "backoffFactor": 0.5,
        "upgradeStrategy": {"minimumHealthCapacity": 1.5, "maximumOverCapacity": -0.1},
        "constraints": [["hostname", "UNIQUE", "x"], ["rack", "MAX_PER"], ["a", "NOPE"], ["a"]],
        "healthChecks": [{"protocol": "HTTP", "portIndex": 3}],
        "readinessChecks": [{"portName": "nope", "timeoutSeconds": 40}],
    }
    with pytest.raises(InvalidObject) as info:
        checked_app(bad)
    got = details(info.value)
    assert info.value.body()["message"] == "Object is not valid"
    assert "must fully match regular expression" in got["/id"][0]
    assert got["/"] == [
        "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."
    ]
    assert got["/cpus"] == ["got 0.0, expected 0.001 or more"]
    assert "/mem" in got and "/instances" in got and "/backoffFactor" in got
    assert got["/upgradeStrategy/minimumHealthCapacity"] == ["is greater than 1"]
    assert got["/upgradeStrategy/maximumOverCapacity"] == ["is less than 0"]
    assert got["/constraints(0)"] == ["UNIQUE does not accept a value"]
    assert got["/constraints(1)"] == ["MAX_PER requires an integer value"]
    assert got["/constraints(2)"][0].startswith("operator must be one of")
    assert got["/constraints(3)"] == ["Each constraint must have either 2 or 3 fields"]
    assert "port indices must address" in got["/healthChecks(0)"][0]
    assert "No port definition reference for portName nope" in got["/readinessChecks(0)/portName"]
    assert "/readinessChecks(0)/timeoutSeconds" in got


def test_wrong_types_are_invalid_json_with_play_error_keys():
    with pytest.raises(InvalidJson) as info:
        parse_app(b'{"id": 5, "cpus": "1", "instances": 1.5, "container": {"type": "RKT"}}')
    got = details(info.value)
    assert got["/id"] == ["error.expected.jsstring"]
    assert got["/cpus"] == ["error.expected.jsnumber"]
    assert got["/container/type"] == ["error.unknown.enum.literal"]
    assert "/instances" in got
    assert info.value.body()["message"] == "Invalid JSON"


@pytest.mark.parametrize("raw", [b"{", b"[1,2]", b"not json", b'"x"'])
def test_malformed_json_is_invalid_json(raw):
    with pytest.raises(InvalidJson):
        parse_app(raw)


def test_missing_id_is_invalid_json():
    with pytest.raises(InvalidJson) as info:
        parse_app(b'{"cmd": "x"}')
    assert details(info.value) == {"/id": ["error.path.missing"]}


@pytest.mark.parametrize(
    ("constraint", "ok"),
    [
        (["hostname", "UNIQUE"], True),
        (["@hostname", "UNIQUE"], True),
        (["nfs", "CLUSTER", "true"], True),
        (["rack", "CLUSTER"], True),
        (["rack", "GROUP_BY"], True),
        (["rack", "GROUP_BY", "3"], True),
        (["rack", "GROUP_BY", "x"], False),
        (["hostname", "LIKE", "web[0-9]+"], True),
        (["hostname", "LIKE", "("], False),
        (["hostname", "UNLIKE"], False),
        (["rack", "MAX_PER", "2"], True),
        (["cpus", "IS", "4.0"], True),
        (["os", "IS", "a b"], False),
        (["hostname", "unique"], True),
        (["", "UNIQUE"], False),
    ],
)
def test_constraint_rules(constraint, ok):
    assert (constraint_violation(constraint) is None) is ok


def test_docker_bridge_gets_port_mappings_and_networks():
    app = checked_app(
        {
            "id": "/web",
            "container": {
                "type": "DOCKER",
                "docker": {
                    "image": "nginx",
                    "network": "BRIDGE",
                    "portMappings": [{"containerPort": 80, "name": "http"}],
                    "privileged": True,
                    "parameters": [{"key": "label", "value": "a=b"}],
                },
                "volumes": [{"containerPath": "/data", "hostPath": "/srv/data", "mode": "RO"}],
            },
            "readinessChecks": [{"portName": "http"}],
        }
    )
    assert app.network_mode == "container/bridge"
    assert app.container is not None and app.container.port_mappings is not None
    assert app.container.port_mappings[0].host_port == 0
    assert app.container.port_mappings[0].container_port == 80
    assert app.port_definitions == []
    out = app.to_json()
    assert "network" not in out["container"]["docker"]
    assert out["container"]["volumes"][0]["mode"] == "RO"


def test_host_networking_rejects_port_mappings_and_both_ports_forms():
    with pytest.raises(InvalidObject) as info:
        checked_app(
            {
                "id": "/x",
                "cmd": "x",
                "ports": [0],
                "portDefinitions": [{"port": 0}],
                "container": {"type": "MESOS", "portMappings": [{"containerPort": 80}]},
            }
        )
    got = details(info.value)["/"]
    assert "cannot specify both ports and port definitions" in got
    assert "portMappings are not allowed with host-networking" in got


def test_relative_ids_and_dependencies_resolve():
    app = checked_app({"id": "web", "cmd": "x", "dependencies": ["../db", "cache"]}, base="/ocf")
    assert app.id == "/ocf/web"
    assert app.dependencies == ["/db", "/ocf/cache"]
    assert canonical_path("./a/../b", "/g") == "/g/b"
    assert canonical_path("/", "/g") == "/"


def test_root_id_is_invalid():
    with pytest.raises(InvalidObject) as info:
        checked_app({"id": "/", "cmd": "x"})
    assert details(info.value)["/id"] == ["must not be root"]


def test_single_instance_label_rules():
    app = parse_app(
        {"id": "/s", "cmd": "x", "instances": 2, "labels": {"MARATHON_SINGLE_INSTANCE_APP": "true"}}
    )
    got = {v.path: v.errors for v in validate_app(app)}
    assert "Single instance app may only have one instance" in got["/"]
    assert "/upgradeStrategy/minimumHealthCapacity" in got


def test_uris_become_fetch_and_command_health_check_protocol():
    app = checked_app(
        {
            "id": "/f",
            "cmd": "x",
            "uris": ["http://x/a.tgz", "http://x/b.sh"],
            "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}}],
        }
    )
    assert [(a.uri, a.extract) for a in app.fetch] == [
        ("http://x/a.tgz", True),
        ("http://x/b.sh", False),
    ]
    assert app.health_checks[0].protocol == "COMMAND" and app.health_checks[0].port_index is None


def test_config_equal_ignores_instances_and_version():
    a = checked_app({"id": "/a", "cmd": "x", "instances": 1})
    b = a.model_copy(update={"instances": 5, "version": "2020-01-01T00:00:00.000Z"})
    c = a.model_copy(update={"cmd": "y"})
    assert a.config_equal(b) and not a.config_equal(c)
    assert isinstance(b, AppDefinition)


def test_task_ids_encode_the_app_id():
    tid = make_task_id("/ocfweb/web", "4a7b-11")
    assert tid == "ocfweb_web.4a7b-11"
    assert app_id_from_task_id(tid) == "/ocfweb/web"


def test_port_names_and_duplicate_dependencies():
    with pytest.raises(InvalidObject) as info:
        checked_app(
            {
                "id": "/x",
                "cmd": "x",
                "portDefinitions": [{"port": 0, "name": "HTTP_Port"}, {"port": 70000}],
                "dependencies": ["/a", "/a"],
                "healthChecks": [{"protocol": "TCP", "portIndex": -1}],
            }
        )
    got = details(info.value)
    assert "must fully match regular expression" in got["/portDefinitions(0)/name"][0]
    assert got["/portDefinitions(1)/port"] == ["got 70000, expected 65535 or less"]
    assert got["/dependencies"] == ["Elements must be unique."]
    assert got["/healthChecks(0)/portIndex"] == ["got -1, expected 0 or more"]


def test_resident_apps_get_residents_defaults():
    app = checked_app(
        {
            "id": "/db",
            "cmd": "postgres",
            "container": {
                "type": "MESOS",
                "volumes": [{"containerPath": "data", "mode": "RW", "persistent": {"size": 100}}],
            },
        }
    )
    assert app.is_resident and app.unreachable_strategy == "disabled"
    assert app.upgrade_strategy.minimum_health_capacity == 0.5
    assert app.upgrade_strategy.maximum_over_capacity == 0.0
    with pytest.raises(InvalidObject) as info:
        checked_app(
            {
                "id": "/db",
                "cmd": "postgres",
                "residency": {},
                "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.5},
                "unreachableStrategy": {"inactiveAfterSeconds": 1, "expungeAfterSeconds": 2},
            }
        )
    got = details(info.value)
    assert got["/upgradeStrategy/maximumOverCapacity"] == ["must be equal to 0.0"]
    assert got["/"] == ["unreachableStrategy must be disabled for resident tasks"]
    assert (
        checked_app({"id": "/db", "cmd": "x", "residency": {}}).unreachable_strategy == "disabled"
    )
