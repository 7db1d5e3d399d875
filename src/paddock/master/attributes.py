"""Agent attributes (``--attributes "rack:a;zone:west;level:3;keys:[1000-1500]"``).

Facts from apache/mesos ``src/common/attributes.cpp``: the text is split on ``;`` and each
entry once on ``:`` into name and value; the value is parsed like a resource value (spaces
removed) and must be a scalar, ranges or text.  Mesos rejects set values for attributes
(``Attributes::isValid`` returns false for SET), so we do too, with an explicit message.
Attributes are passed through to frameworks in offers unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from paddock.master.resources import (
    RangesValue,
    _format_ranges,
    coalesce,
    format_scalar,
    parse_value,
    to_fixed,
)

__all__ = ["Attribute", "attributes_from_json", "attributes_to_json", "parse_attributes"]


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute: ``type`` is ``SCALAR`` (value a float), ``RANGES`` (tuple of inclusive
    ``(begin, end)`` pairs) or ``TEXT`` (str)."""

    name: str
    type: str
    value: float | RangesValue | str

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.type == "SCALAR":
            obj["scalar"] = {"value": self.value}
        elif self.type == "RANGES":
            assert isinstance(self.value, tuple)
            obj["ranges"] = {"range": [{"begin": b, "end": e} for b, e in self.value]}
        else:
            obj["text"] = {"value": self.value}
        return obj

    def __str__(self) -> str:
        if self.type == "SCALAR":
            assert isinstance(self.value, float)
            text = format_scalar(to_fixed(self.value))
        elif self.type == "RANGES":
            assert isinstance(self.value, tuple)
            text = _format_ranges(self.value)
        else:
            text = str(self.value)
        return f"{self.name}:{text}"


def parse_attributes(text: str) -> list[Attribute]:
    """Parse ``--attributes``; ValueError names the bad entry."""
    out: list[Attribute] = []
    for raw in text.replace("\n", ";").split(";"):
        token = raw.strip()
        if not token:
            continue
        name, sep, value_text = token.partition(":")
        name = name.strip()
        if not sep or not name or not value_text.strip():
            raise ValueError(f"invalid attribute key:value pair {token!r}")
        try:
            kind, value = parse_value(value_text)
        except ValueError as e:
            raise ValueError(f"bad attribute {token!r}: {e}") from None
        if kind == "SET":
            raise ValueError(
                f"bad attribute {token!r}: set values are not supported for attributes "
                "(use text, a scalar or [ranges])"
            )
        out.append(Attribute(name, kind, value))
    return out


def attributes_to_json(attributes: list[Attribute]) -> list[dict[str, Any]]:
    return [a.to_json() for a in attributes]


def attributes_from_json(data: Any) -> list[Attribute]:
    """Mesos v1 ``Attribute`` JSON objects to :class:`Attribute`; ValueError on bad input."""
    if not isinstance(data, list):
        raise ValueError("attributes JSON must be an array")
    out: list[Attribute] = []
    for index, obj in enumerate(data):
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
            raise ValueError(f"attribute #{index}: expecting an object with a 'name'")
        name, kind = obj["name"], obj.get("type")
        where = f"attribute #{index} ({name!r})"
        try:
            if kind == "SCALAR":
                v = obj["scalar"]["value"]
                if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                    raise ValueError(f"bad scalar {v!r}")
                out.append(Attribute(name, kind, float(v)))
            elif kind == "RANGES":
                pairs = [(int(r["begin"]), int(r["end"])) for r in obj["ranges"]["range"]]
                if any(b > e or b < 0 for b, e in pairs):
                    raise ValueError("invalid range")
                out.append(Attribute(name, kind, coalesce(pairs)))
            elif kind == "TEXT":
                t = obj["text"]["value"]
                if not isinstance(t, str):
                    raise ValueError("text value must be a string")
                out.append(Attribute(name, kind, t))
            else:
                raise ValueError(f"unsupported type {kind!r}")
        except (KeyError, TypeError) as e:
            raise ValueError(f"{where}: malformed ({e!r})") from None
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
    return out
