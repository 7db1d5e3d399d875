"""Mesos's resource model: the ``--resources`` grammar, the v1 JSON form and arithmetic.

Facts from apache/mesos ``docs/attributes-resources.md``, ``src/common/values.cpp``,
``src/common/resources.cpp`` and ``src/common/roles.cpp``:

* ``resources : resource (";" resource)*``, ``resource : name ["(" role ")"] ":" value``,
  value a scalar (``4``, ``0.5``), ranges (``[21000-24000,30000-34000]``) or a set (``{a,b}``).
  A role-less resource belongs to the default role ``*`` (unreserved); ``cpus(web):2`` is a
  static reservation for role ``web``.
* Scalars are kept in fixed point with three decimal digits (``llround(value * 1000)``), so
  ``1.5123`` cpus is ``1.512`` and ``0.1 + 0.2 == 0.3`` exactly.  Subtracting more than is
  present leaves nothing (Mesos drops entries that would become non-positive).
* Ranges are inclusive, kept coalesced (``[1-2,3-4]`` is ``[1-4]``).

Representation (chosen for the allocator's hot path, which subtracts and compares tens of
thousands of these per round): an immutable mapping ``(name, role) -> value`` where the value
is an ``int`` of thousandths (scalar), a sorted tuple of disjoint ``(begin, end)`` pairs
(ranges) or a ``frozenset`` of strings (set).  Operations build new dicts and never mutate, so
one object may be shared by an agent's free pool, an offer and a refusal filter; the allocator
relies on that to compare the common case by identity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

__all__ = [
    "UNRESERVED",
    "Resources",
    "format_scalar",
    "parse_resources",
    "parse_value",
    "validate_role",
]

UNRESERVED = "*"

RangesValue = tuple[tuple[int, int], ...]
Value = int | RangesValue | frozenset[str]
Key = tuple[str, str]

_UINT64_MAX = 2**64 - 1
_ROLE_BAD_CHARS = set("\t\n\v\f\r \x7f")


# ---------------------------------------------------------------- scalars and ranges


def to_fixed(value: float) -> int:
    """A non-negative float as thousandths, rounding half away from zero like ``llround``."""
    return math.floor(value * 1000 + 0.5)


def format_scalar(millis: int) -> str:
    """Thousandths as Mesos prints a scalar: ``4096``, ``0.5``, ``1.512``."""
    whole, frac = divmod(millis, 1000)
    if frac == 0:
        return str(whole)
    return f"{whole}.{frac:03d}".rstrip("0")


def coalesce(ranges: Iterable[tuple[int, int]]) -> RangesValue:
    """Sort and merge overlapping or adjacent inclusive ranges."""
    out: list[tuple[int, int]] = []
    for begin, end in sorted(ranges):
        if out and begin <= out[-1][1] + 1:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((begin, end))
    return tuple(out)


def _ranges_add(a: RangesValue, b: RangesValue) -> RangesValue:
    return coalesce(a + b)


def _ranges_sub(a: RangesValue, b: RangesValue) -> RangesValue:
    """``a`` minus ``b``, both sorted and disjoint, in one merge pass (``internal::subtract``)."""
    out: list[tuple[int, int]] = []
    j, nb = 0, len(b)
    for begin, end in a:
        while j < nb and b[j][1] < begin:
            j += 1
        k = j
        while k < nb and b[k][0] <= end:
            rb, re_ = b[k]
            if rb > begin:
                out.append((begin, rb - 1))
            if re_ >= end:
                begin = end + 1
                break
            begin = re_ + 1
            k += 1
        if begin <= end:
            out.append((begin, end))
    return tuple(out)


def _ranges_contain(a: RangesValue, b: RangesValue) -> bool:
    """Whether every range of ``b`` lies inside one range of ``a`` (both coalesced)."""
    i, na = 0, len(a)
    for begin, end in b:
        while i < na and a[i][1] < begin:
            i += 1
        if i == na or a[i][0] > begin or a[i][1] < end:
            return False
    return True


def _ranges_count(r: RangesValue) -> int:
    return sum(e - b + 1 for b, e in r)


def _format_ranges(r: RangesValue) -> str:
    return "[" + ",".join(f"{b}-{e}" for b, e in r) + "]"


def _kind(value: Value) -> str:
    if isinstance(value, int):
        return "SCALAR"
    if isinstance(value, tuple):
        return "RANGES"
    return "SET"


# ---------------------------------------------------------------- validation helpers


def validate_role(role: str) -> str:
    """Check a role name as Mesos's ``roles::validate`` does; return it or raise ValueError."""
    if role == UNRESERVED:
        return role
    if role == "":
        raise ValueError("role names cannot be the empty string")
    if role.startswith("/") or role.endswith("/"):
        raise ValueError(f"role {role!r} cannot start or end with a slash")
    if "//" in role:
        raise ValueError(f"role {role!r} cannot contain two adjacent slashes")
    for component in role.split("/"):
        if component in (".", "..", "*"):
            raise ValueError(f"role {role!r} cannot include {component!r} as a component")
        if component.startswith("-"):
            raise ValueError(f"role component {component!r} cannot start with a dash")
        if _ROLE_BAD_CHARS.intersection(component):
            raise ValueError(f"role component {component!r} contains whitespace or backspace")
    return role


# ---------------------------------------------------------------- the value type


class Resources:
    """An immutable bag of named resources, keyed by ``(name, role)``.

    ``role`` is ``"*"`` for unreserved resources and the reservation's role otherwise (one
    level of static reservation; reservation refinement, dynamic reservation principals,
    persistent volumes and revocable resources are not modelled).
    """

    __slots__ = ("_items", "_quantities", "_scalars")

    def __init__(self, items: Mapping[Key, Value] | None = None) -> None:
        # Callers inside this module pass normalised dicts; the public path is parse/from_json.
        self._items: dict[Key, Value] = dict(items) if items else {}
        self._quantities: dict[str, int] | None = None
        self._scalars: dict[str, int] | None = None

    @classmethod
    def _wrap(cls, items: dict[Key, Value]) -> Resources:
        obj = cls.__new__(cls)
        obj._items = items
        obj._quantities = None
        obj._scalars = None
        return obj

    # -- construction ------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, default_role: str = UNRESERVED) -> Resources:
        """Parse a ``--resources`` value: a JSON array of Resource objects or the
        ``name(role):value;...`` string.  See :func:`parse_resources`."""
        return parse_resources(text, default_role)

    @classmethod
    def scalar(cls, name: str, value: float, role: str = UNRESERVED) -> Resources:
        millis = to_fixed(value)
        return cls._wrap({(name, role): millis} if millis > 0 else {})

    @classmethod
    def ranges(
        cls, name: str, ranges: Iterable[tuple[int, int]], role: str = UNRESERVED
    ) -> Resources:
        r = coalesce(ranges)
        return cls._wrap({(name, role): r} if r else {})

    @classmethod
    def set(cls, name: str, items: Iterable[str], role: str = UNRESERVED) -> Resources:
        s = frozenset(items)
        return cls._wrap({(name, role): s} if s else {})

    @classmethod
    def from_json(cls, data: Any, default_role: str = UNRESERVED) -> Resources:
        """Build from a list of Mesos v1 ``Resource`` JSON objects (already decoded)."""
        from paddock.master._resources_json import resources_from_json

        return resources_from_json(data, default_role)

    def to_json(
        self, *, refined: bool = False, allocation_role: str | None = None
    ) -> list[dict[str, Any]]:
        """Mesos v1 JSON.  By default the pre-refinement form (``"role"``, which every
        framework understands); ``refined=True`` gives ``"reservations"`` instead.
        ``allocation_role`` adds ``allocation_info`` as offers carry it."""
        out: list[dict[str, Any]] = []
        for (name, role), value in self._items.items():
            obj: dict[str, Any] = {"name": name}
            if isinstance(value, int):
                obj["type"] = "SCALAR"
                obj["scalar"] = {"value": value / 1000}
            elif isinstance(value, tuple):
                obj["type"] = "RANGES"
                obj["ranges"] = {"range": [{"begin": b, "end": e} for b, e in value]}
            else:
                obj["type"] = "SET"
                obj["set"] = {"item": sorted(value)}
            if refined:
                if role != UNRESERVED:
                    obj["reservations"] = [{"type": "STATIC", "role": role}]
            else:
                obj["role"] = role
            if allocation_role is not None:
                obj["allocation_info"] = {"role": allocation_role}
            out.append(obj)
        return out

    # -- inspection --------------------------------------------------------------------
    def is_empty(self) -> bool:
        return not self._items

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[str, str, str, Any]]:
        """Yield ``(name, role, type, value)``; value is a float, a list of ranges or a
        sorted list of set items."""
        for (name, role), value in self._items.items():
            yield name, role, _kind(value), _public_value(value)

    def names(self) -> list[str]:
        return list(dict.fromkeys(name for name, _ in self._items))

    def roles(self) -> list[str]:
        return list(dict.fromkeys(role for _, role in self._items))

    def get_scalar(self, name: str, role: str | None = None) -> float:
        """The scalar total of ``name`` (over all roles unless ``role`` is given)."""
        return self._millis(name, role) / 1000

    def _millis(self, name: str, role: str | None) -> int:
        total = 0
        for (n, r), v in self._items.items():
            if n == name and (role is None or r == role) and isinstance(v, int):
                total += v
        return total

    def get_ranges(self, name: str, role: str | None = None) -> list[tuple[int, int]]:
        acc: RangesValue = ()
        for (n, r), v in self._items.items():
            if n == name and (role is None or r == role) and isinstance(v, tuple):
                acc = _ranges_add(acc, v)
        return list(acc)

    def get_set(self, name: str, role: str | None = None) -> list[str]:
        acc: set[str] = set()
        for (n, r), v in self._items.items():
            if n == name and (role is None or r == role) and isinstance(v, frozenset):
                acc |= v
        return sorted(acc)

    def quantities(self) -> dict[str, float]:
        """Per name, over all roles: scalar value, or the count of range/set members (Mesos's
        ResourceQuantities, as ``--min_allocatable_resources`` reads them)."""
        return {name: m / 1000 for name, m in self.quantity_millis().items()}

    def quantity_millis(self) -> dict[str, int]:
        """:meth:`quantities` in thousandths; cached, since the object never changes."""
        q = self._quantities
        if q is None:
            q = {}
            for (name, _), v in self._items.items():
                if isinstance(v, int):
                    m = v
                elif isinstance(v, tuple):
                    m = _ranges_count(v) * 1000
                else:
                    m = len(v) * 1000
                q[name] = q.get(name, 0) + m
            self._quantities = q
        return q

    def scalar_millis(self) -> dict[str, int]:
        """Scalar totals per name in thousandths (what DRF shares are computed from); cached.
        Callers must not modify the returned dict."""
        q = self._scalars
        if q is None:
            q = {}
            for (name, _), v in self._items.items():
                if isinstance(v, int):
                    q[name] = q.get(name, 0) + v
            self._scalars = q
        return q

    # -- filtering by role -------------------------------------------------------------
    def filter(self, predicate: Callable[[str, str], bool]) -> Resources:
        """Keep entries where ``predicate(name, role)`` holds."""
        return Resources._wrap({k: v for k, v in self._items.items() if predicate(k[0], k[1])})

    def unreserved(self) -> Resources:
        return Resources._wrap({k: v for k, v in self._items.items() if k[1] == UNRESERVED})

    def reserved(self, role: str | None = None) -> Resources:
        """Reserved resources (for ``role`` only, if given)."""
        if role is None:
            return Resources._wrap({k: v for k, v in self._items.items() if k[1] != UNRESERVED})
        return Resources._wrap({k: v for k, v in self._items.items() if k[1] == role})

    def allocatable_to(self, role: str) -> Resources:
        """What a framework in ``role`` may be offered: unreserved resources plus those
        reserved for ``role`` or one of its ancestors (``Resources::isAllocatableTo``: a
        reservation for ``eng`` may go to ``eng/web``)."""
        items = self._items
        for k in items:
            if k[1] != UNRESERVED and k[1] != role and not _is_ancestor(k[1], role):
                break
        else:
            return self  # the common case: no copy
        return Resources._wrap(
            {
                k: v
                for k, v in items.items()
                if k[1] == UNRESERVED or k[1] == role or _is_ancestor(k[1], role)
            }
        )

    def has_reservations(self) -> bool:
        return any(k[1] != UNRESERVED for k in self._items)

    def unreserve(self) -> Resources:
        """The same quantities, all moved to the unreserved role."""
        out: dict[Key, Value] = {}
        for (name, _), v in self._items.items():
            k = (name, UNRESERVED)
            out[k] = _add_value(out[k], v, name) if k in out else v
        return Resources._wrap(out)

    # -- arithmetic --------------------------------------------------------------------
    def __add__(self, other: Resources) -> Resources:
        if not other._items:
            return self
        if not self._items:
            return other
        out = dict(self._items)
        for k, v in other._items.items():
            mine = out.get(k)
            out[k] = v if mine is None else _add_value(mine, v, k[0])
        return Resources._wrap(out)

    def __sub__(self, other: Resources) -> Resources:
        """Subtract; anything subtracted past zero is simply gone (Mesos semantics)."""
        if not other._items:
            return self
        if other is self:
            return _EMPTY
        out = dict(self._items)
        for k, v in other._items.items():
            mine = out.get(k)
            if mine is None:
                continue
            rest = _sub_value(mine, v, k[0])
            if rest:
                out[k] = rest
            else:
                del out[k]
        return Resources._wrap(out)

    def contains(self, other: Resources) -> bool:
        """``self >= other`` in Mesos's sense: every entry of ``other`` fits in ``self``."""
        if other is self:
            return True
        items = self._items
        for k, v in other._items.items():
            mine = items.get(k)
            if mine is None:
                return False
            if mine is v:
                continue
            if isinstance(v, int):
                if not isinstance(mine, int) or mine < v:
                    return False
            elif isinstance(v, tuple):
                if not isinstance(mine, tuple) or not _ranges_contain(mine, v):
                    return False
            elif not isinstance(mine, frozenset) or not v <= mine:
                return False
        return True

    def __ge__(self, other: Resources) -> bool:
        return self.contains(other)

    def __le__(self, other: Resources) -> bool:
        return other.contains(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        return self._items == other._items

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    # -- text --------------------------------------------------------------------------
    def __str__(self) -> str:
        """Parseable human form: ``cpus:4; mem:4096; ports:[31000-32000]; cpus(web):2``."""
        parts = []
        for (name, role), v in self._items.items():
            key = name if role == UNRESERVED else f"{name}({role})"
            if isinstance(v, int):
                text = format_scalar(v)
            elif isinstance(v, tuple):
                text = _format_ranges(v)
            else:
                text = "{" + ",".join(sorted(v)) + "}"
            parts.append(f"{key}:{text}")
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"Resources({str(self)!r})"


_EMPTY = Resources._wrap({})


def _is_ancestor(ancestor: str, role: str) -> bool:
    return role.startswith(ancestor) and role[len(ancestor) : len(ancestor) + 1] == "/"


def _public_value(value: Value) -> Any:
    if isinstance(value, int):
        return value / 1000
    if isinstance(value, tuple):
        return list(value)
    return sorted(value)


def _type_clash(name: str, a: Value, b: Value) -> ValueError:
    return ValueError(f"resource {name!r} used as both {_kind(a)} and {_kind(b)}")


def _add_value(a: Value, b: Value, name: str) -> Value:
    if isinstance(a, int):
        if not isinstance(b, int):
            raise _type_clash(name, a, b)
        return a + b
    if isinstance(a, tuple):
        if not isinstance(b, tuple):
            raise _type_clash(name, a, b)
        return _ranges_add(a, b)
    if not isinstance(b, frozenset):
        raise _type_clash(name, a, b)
    return a | b


def _sub_value(a: Value, b: Value, name: str) -> Value | None:
    """``a - b`` or None when nothing is left."""
    if isinstance(a, int):
        if not isinstance(b, int):
            raise _type_clash(name, a, b)
        d = a - b
        return d if d > 0 else None
    if isinstance(a, tuple):
        if not isinstance(b, tuple):
            raise _type_clash(name, a, b)
        r = _ranges_sub(a, b)
        return r or None
    if not isinstance(b, frozenset):
        raise _type_clash(name, a, b)
    return (a - b) or None


def _check_types(items: dict[Key, Value], name: str, value: Value) -> None:
    for (n, _), v in items.items():
        if n == name and _kind(v) != _kind(value):
            raise ValueError(
                f"resources with the same name ({name!r}) but different types "
                f"({_kind(v)} and {_kind(value)}) are not allowed"
            )


# ---------------------------------------------------------------- the text grammar


def parse_resources(text: str, default_role: str = UNRESERVED) -> Resources:
    """Parse ``--resources``: a JSON array (when the text parses as one) or the string
    grammar ``name(role):value;...``.  ValueError names the offending token.  The grammar
    lives in :mod:`paddock.master._resources_text`."""
    from paddock.master import _resources_text

    return _resources_text.parse_resources(text, default_role)


def parse_value(text: str) -> tuple[str, Any]:
    """Parse one Mesos value: ``("SCALAR", float)``, ``("RANGES", ranges)``,
    ``("SET", items)`` or ``("TEXT", str)``; see :func:`_resources_text.parse_value`."""
    from paddock.master import _resources_text

    return _resources_text.parse_value(text)
