"""Arbitrary bodies never crash parsing or validation: only 400 or 422 errors come out."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from paddock.marathon.groups import parse_group_update
from paddock.marathon.models import InvalidJson, InvalidObject
from paddock.marathon.validation import checked_app

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)

FIELDS = [
    "id", "cmd", "args", "cpus", "mem", "disk", "gpus", "instances", "env", "labels",
    "container", "portDefinitions", "ports", "requirePorts", "constraints", "healthChecks",
    "readinessChecks", "upgradeStrategy", "dependencies", "fetch", "uris", "networks",
    "killSelection", "unreachableStrategy", "backoffFactor", "taskKillGracePeriodSeconds",
]  # fmt: skip

BASE = {
    "id": "/fuzz/app",
    "cmd": "sleep 1",
    "container": {"type": "DOCKER", "docker": {"image": "x", "network": "BRIDGE"}},
    "healthChecks": [{"protocol": "HTTP"}],
    "constraints": [["hostname", "UNIQUE"]],
}


def attempt(body):
    try:
        checked_app(json.dumps(body))
    except (InvalidJson, InvalidObject) as exc:
        assert exc.details and all(d.path.startswith("/") for d in exc.details)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6))
def test_random_app_bodies(body):
    attempt(body)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(FIELDS),
    json_values,
    st.sampled_from(["container", "healthChecks"]),
    json_values,
)
def test_mutated_valid_app(field, value, nested, nested_value):
    body = json.loads(json.dumps(BASE))
    body[field] = value
    if nested == "container" and isinstance(body.get("container"), dict):
        body["container"]["portMappings"] = nested_value
    elif (
        isinstance(body.get("healthChecks"), list)
        and body["healthChecks"]
        and isinstance(body["healthChecks"][0], dict)
    ):
        body["healthChecks"][0]["portIndex"] = nested_value
    attempt(body)


@settings(max_examples=200, deadline=None)
@given(json_values, st.binary(max_size=30))
def test_random_group_bodies_and_bytes(value, raw):
    for body in ({"id": "/g", "apps": value}, {"groups": value}, {"scaleBy": value}, value):
        with contextlib.suppress(InvalidJson, InvalidObject):
            parse_group_update(body, "/g")
    with contextlib.suppress(InvalidJson, InvalidObject):
        checked_app(raw)
