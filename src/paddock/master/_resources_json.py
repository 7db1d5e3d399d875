"""Reading Mesos v1 ``Resource`` JSON objects into :class:`~paddock.master.resources.Resources`.

Field names as in ``include/mesos/v1/mesos.proto``: ``name``, ``type`` (``SCALAR``,
``RANGES``, ``SET``; the enum numbers 0-2 are accepted too), ``scalar.value``,
``ranges.range[].begin/end``, ``set.item[]``, and either the pre-refinement ``role`` or the
post-refinement ``reservations[]`` (whose last entry names the role).  Validation follows
``Resources::validate``: non-negative scalars, ``begin <= end``, no overlapping ranges in one
object, no duplicate set items, valid role names.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

from paddock.master.resources import (
    UNRESERVED,
    Key,
    Resources,
    Value,
    _add_value,
    _check_types,
    coalesce,
    to_fixed,
    validate_role,
)

_NUMBER_RE = re.compile(r"^\+?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_TYPE_NAMES = {0: "SCALAR", 1: "RANGES", 2: "SET", 3: "TEXT"}
_UNSUPPORTED = ("revocable", "shared")


def _uint(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{where}: expecting a non-negative integer, got {value!r}")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and value.isdigit():
        n = int(value)  # protobuf's JSON mapping writes uint64 as a string
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    else:
        raise ValueError(f"{where}: expecting a non-negative integer, got {value!r}")
    if n < 0 or n >= 2**64:
        raise ValueError(f"{where}: {n} is not a 64-bit unsigned integer")
    return n


def _role_of(obj: dict[str, Any], where: str, default_role: str) -> str:
    role = obj.get("role")
    reservations = obj.get("reservations")
    if reservations:
        if not isinstance(reservations, list) or not all(isinstance(r, dict) for r in reservations):
            raise ValueError(f"{where}: 'reservations' must be a list of objects")
        last = reservations[-1]
        res_role = last.get("role")
        if not isinstance(res_role, str):
            raise ValueError(f"{where}: reservation without a 'role'")
        if res_role == UNRESERVED:
            raise ValueError(f"{where}: cannot reserve for role '*'")
        if role is not None and role != res_role:
            raise ValueError(
                f"{where}: 'role' {role!r} disagrees with the reservation's role {res_role!r}"
            )
        role = res_role
    if role is None:
        role = default_role
    if not isinstance(role, str):
        raise ValueError(f"{where}: 'role' must be a string")
    try:
        return validate_role(role)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _value_of(obj: dict[str, Any], kind: str, where: str) -> Value:
    present = [f for f in ("scalar", "ranges", "set") if f in obj]
    expected = {"SCALAR": "scalar", "RANGES": "ranges", "SET": "set"}[kind]
    if present != [expected]:
        raise ValueError(f"{where}: a {kind} resource needs exactly the '{expected}' field")
    body = obj[expected]
    if not isinstance(body, dict):
        raise ValueError(f"{where}: '{expected}' must be an object")
    if kind == "SCALAR":
        v = body.get("value")
        if isinstance(v, str) and _NUMBER_RE.match(v.strip()):
            v = float(v)  # stout's JSON-to-protobuf also accepts numbers as strings
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"{where}: scalar value must be a number, got {v!r}")
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{where}: invalid scalar value {v!r}")
        if v != 0 and to_fixed(v) <= 0:
            raise ValueError(f"{where}: scalar value {v!r} rounds to zero")
        return to_fixed(v)
    if kind == "RANGES":
        raw = body.get("range", [])
        if not isinstance(raw, list):
            raise ValueError(f"{where}: 'ranges.range' must be a list")
        ranges: list[tuple[int, int]] = []
        for r in raw:
            if not isinstance(r, dict):
                raise ValueError(f"{where}: each range must be an object")
            b, e = _uint(r.get("begin"), where), _uint(r.get("end"), where)
            if b > e:
                raise ValueError(f"{where}: invalid range {b}-{e}: begin > end")
            ranges.append((b, e))
        ordered = sorted(ranges)
        for (_, e1), (b2, e2) in itertools.pairwise(ordered):
            if b2 <= e1:
                raise ValueError(f"{where}: overlapping ranges ending {e1} and {b2}-{e2}")
        return coalesce(ranges)
    raw_items = body.get("item", [])
    if not isinstance(raw_items, list) or not all(isinstance(i, str) for i in raw_items):
        raise ValueError(f"{where}: 'set.item' must be a list of strings")
    if len(set(raw_items)) != len(raw_items):
        raise ValueError(f"{where}: duplicated elements in set")
    return frozenset(raw_items)


def resources_from_json(data: Any, default_role: str = UNRESERVED) -> Resources:
    """A list of Resource objects to :class:`Resources`; ValueError names the bad entry."""
    if not isinstance(data, list):
        raise ValueError("resources JSON must be an array of Resource objects")
    items: dict[Key, Value] = {}
    for index, obj in enumerate(data):
        if not isinstance(obj, dict):
            raise ValueError(f"resource #{index}: expecting an object, got {obj!r}")
        name = obj.get("name")
        where = f"resource #{index} ({name!r})"
        if not isinstance(name, str) or not name:
            raise ValueError(f"resource #{index}: empty or missing 'name'")
        kind = obj.get("type")
        if isinstance(kind, int) and not isinstance(kind, bool):
            kind = _TYPE_NAMES.get(kind)
        if kind not in ("SCALAR", "RANGES", "SET"):
            raise ValueError(f"{where}: unsupported type {obj.get('type')!r}")
        for field in _UNSUPPORTED:
            if field in obj:
                raise ValueError(f"{where}: '{field}' resources are not supported")
        disk = obj.get("disk")
        if isinstance(disk, dict) and "persistence" in disk:
            raise ValueError(f"{where}: persistent volumes are not supported")
        role = _role_of(obj, where, default_role)
        value = _value_of(obj, kind, where)
        _check_types(items, name, value)
        if not value:
            continue
        k = (name, role)
        items[k] = _add_value(items[k], value, name) if k in items else value
    return Resources._wrap(items)
