"""The ``--resources`` and value text grammar (``values::parse``,
``Resources::fromSimpleString``), re-exported by :mod:`paddock.master.resources`."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from paddock.master.resources import (
    _UINT64_MAX,
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

__all__ = ["parse_resources", "parse_value"]

_SCALAR_RE = re.compile(r"^\+?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_RANGE_RE = re.compile(r"^(\d+)-(\d+)$")
_NAME_BAD_CHARS = set("()[]{};:")


def parse_value(text: str) -> tuple[str, Any]:
    """Parse one Mesos value (``values::parse``): spaces are removed, then a value starting
    with ``[`` is ranges, ``{`` a set, a non-negative number a scalar, anything else text.

    Returns ``("SCALAR", float)``, ``("RANGES", RangesValue)``, ``("SET", tuple[str, ...])``
    or ``("TEXT", str)``.  Raises ValueError naming the bad token.
    """
    temp = text.replace(" ", "").strip()
    if not temp:
        raise ValueError("expecting a non-empty value")
    if temp[0] == "[":
        if temp[-1] != "]" or temp.count("[") != 1 or temp.count("]") != 1:
            raise ValueError(f"mismatched brackets in ranges {text!r}")
        ranges: list[tuple[int, int]] = []
        body = temp[1:-1]
        for token in body.split(",") if body else []:
            m = _RANGE_RE.match(token)
            if m is None:
                raise ValueError(
                    f"bad range {token!r} in {text!r}: expecting 'begin-end' "
                    "with non-negative integers"
                )
            begin, end = int(m.group(1)), int(m.group(2))
            if end > _UINT64_MAX:
                raise ValueError(f"range {token!r} in {text!r} exceeds 64 bits")
            if begin > end:
                raise ValueError(f"bad range {token!r} in {text!r}: begin > end")
            ranges.append((begin, end))
        return "RANGES", coalesce(ranges)
    if temp[0] == "{":
        if temp[-1] != "}" or temp.count("{") != 1 or temp.count("}") != 1:
            raise ValueError(f"mismatched braces in set {text!r}")
        items = [item for item in temp[1:-1].split(",") if item]
        seen: set[str] = set()
        for item in items:
            if item in seen:
                raise ValueError(f"duplicated item {item!r} in set {text!r}")
            seen.add(item)
        return "SET", tuple(items)
    if "[" in temp or "]" in temp or "{" in temp or "}" in temp:
        raise ValueError(f"unexpected bracket in value {text!r}")
    if _SCALAR_RE.match(temp):
        value = float(temp)
        if math.isinf(value):
            raise ValueError(f"scalar {text!r} is out of range")
        return "SCALAR", value
    if temp.startswith("-") and _SCALAR_RE.match(temp[1:]):
        raise ValueError(f"negative value {text!r} is not supported")
    return "TEXT", temp


def parse_resources(text: str, default_role: str = UNRESERVED) -> Resources:
    """Parse ``--resources``: JSON array (when the text parses as one) or the string grammar.

    Mirrors ``Resources::parse``: entries with the same name and role are added together,
    one name may not carry two types, role names are validated.  Raises ValueError that names
    the offending token.
    """
    validate_role(default_role)
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            data = None  # Mesos falls back to the string grammar, e.g. for a bare "[1-2]".
        if isinstance(data, list):
            return Resources.from_json(data, default_role)
    items: dict[Key, Value] = {}
    for raw in stripped.split(";"):
        token = raw.strip()
        if not token:
            continue
        parts = token.split(":")
        if len(parts) != 2:
            raise ValueError(f"bad resource {token!r}: missing or extra ':'")
        key, value_text = parts
        name, role = _parse_key(key, token, default_role)
        try:
            kind, value = parse_value(value_text)
        except ValueError as e:
            raise ValueError(f"bad resource {token!r}: {e}") from None
        converted: Value
        if kind == "SCALAR":
            converted = to_fixed(value)
            if value != 0 and converted == 0:
                raise ValueError(
                    f"bad resource {token!r}: {value_text.strip()} rounds to zero "
                    "(scalars keep three decimal places)"
                )
        elif kind == "RANGES":
            converted = value
        elif kind == "SET":
            converted = frozenset(value)
        else:
            raise ValueError(
                f"bad resource {token!r}: value {value_text.strip()!r} is not a scalar, "
                "ranges '[a-b,...]' or set '{x,...}'"
            )
        _check_types(items, name, converted)
        if not converted:
            continue  # zero scalars, empty ranges/sets are valid but hold nothing
        k = (name, role)
        items[k] = _add_value(items[k], converted, name) if k in items else converted
    return Resources._wrap(items)


def _parse_key(key: str, token: str, default_role: str) -> tuple[str, str]:
    open_paren = key.find("(")
    if open_paren == -1:
        if ")" in key:
            raise ValueError(f"bad resource {token!r}: mismatched parentheses")
        name, role = key.strip(), default_role
    else:
        close_paren = key.find(")")
        if close_paren < open_paren:
            raise ValueError(f"bad resource {token!r}: mismatched parentheses")
        if key[close_paren + 1 :].strip():
            raise ValueError(f"bad resource {token!r}: unexpected text after ')'")
        name = key[:open_paren].strip()
        role = key[open_paren + 1 : close_paren].strip()
        try:
            validate_role(role)
        except ValueError as e:
            raise ValueError(f"bad resource {token!r}: {e}") from None
    if not name:
        raise ValueError(f"bad resource {token!r}: empty resource name")
    if _NAME_BAD_CHARS.intersection(name) or any(c.isspace() for c in name):
        raise ValueError(f"bad resource {token!r}: invalid resource name {name!r}")
    return name, role
