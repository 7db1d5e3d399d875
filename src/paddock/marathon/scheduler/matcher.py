"""Offer matching, pure: does this offer fit one instance of this app, and if not, why.

Resources (cpus, mem, disk, ports — with ``requirePorts`` and BRIDGE host ports) and
Marathon's constraints (UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS) on the
hostname or agent attributes. A rejection carries Marathon's reason name, so ``/v2/queue``
can answer "why is my app waiting" (``processedOffersSummary``, Marathon issues #1090 and
#1969). Nothing here does I/O; randomness for port choice comes from an injected
``random.Random``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from paddock.marathon.models import AppDefinition

# Marathon's NoOfferMatchReason names, in the order Marathon reports them.
REASONS = (
    "UnfulfilledRole",
    "UnfulfilledConstraint",
    "NoCorrespondingReservationFound",
    "AgentMaintenance",
    "InsufficientCpus",
    "InsufficientMemory",
    "InsufficientDisk",
    "InsufficientGpus",
    "InsufficientPorts",
    "DeclinedScarceResources",
)
EPSILON = 0.001  # Marathon compares scalar attributes to 0.001


@dataclass
class Offer:
    """The parts of a Mesos v1 Offer matching needs (mutable: matching consumes it)."""

    id: str
    agent_id: str
    hostname: str
    scalars: dict[str, float] = field(default_factory=dict)
    ports: list[tuple[int, int]] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)
    roles: set[str] = field(default_factory=set)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Offer:
        scalars: dict[str, float] = {}
        ports: list[tuple[int, int]] = []
        roles: set[str] = set()
        for res in data.get("resources") or []:
            name = res.get("name")
            role = res.get("role") or (res.get("allocation_info") or {}).get("role") or "*"
            if res.get("reservations"):
                role = res["reservations"][-1].get("role", role)
            roles.add(str(role))
            if res.get("type", "SCALAR") == "SCALAR" and "scalar" in res:
                scalars[name] = scalars.get(name, 0.0) + float(res["scalar"].get("value", 0.0))
            elif name == "ports" and "ranges" in res:
                for r in res["ranges"].get("range") or []:
                    ports.append((int(r["begin"]), int(r["end"])))
        attributes: dict[str, str] = {}
        for attr in data.get("attributes") or []:
            attributes[str(attr.get("name"))] = attribute_text(attr)
        return cls(
            id=str(data["id"]["value"]),
            agent_id=str(data["agent_id"]["value"]),
            hostname=str(data.get("hostname", "")),
            scalars=scalars,
            ports=sorted(ports),
            attributes=attributes,
            roles=roles or {"*"},
            raw=data,
        )

    def port_count(self) -> int:
        return sum(end - begin + 1 for begin, end in self.ports)

    def take_ports(self, wanted: Sequence[int]) -> None:
        """Remove these ports from the offer's ranges."""
        out: list[tuple[int, int]] = []
        taken = set(wanted)
        for begin, end in self.ports:
            start = begin
            for p in sorted(x for x in taken if begin <= x <= end):
                if p > start:
                    out.append((start, p - 1))
                start = p + 1
            if start <= end:
                out.append((start, end))
        self.ports = out


def attribute_text(attr: dict[str, Any]) -> str:
    """An attribute's value as Marathon's constraints see it (text, scalar, range, set)."""
    kind = attr.get("type", "TEXT")
    if kind == "SCALAR":
        value = float(attr.get("scalar", {}).get("value", 0.0))
        return f"{value:g}"
    if kind == "RANGES":
        ranges = attr.get("ranges", {}).get("range") or []
        return ",".join(f"[{r['begin']}-{r['end']}]" for r in ranges)
    if kind == "SET":
        return "{" + ",".join(attr.get("set", {}).get("item") or []) + "}"
    return str(attr.get("text", {}).get("value", ""))


@dataclass(frozen=True)
class Placement:
    """Where one running (or staged) instance of the app is: for constraints."""

    hostname: str
    attributes: dict[str, str]


@dataclass
class Match:
    """One instance fits: the resources to take and the host ports chosen."""

    cpus: float
    mem: float
    disk: float
    gpus: float
    ports: list[int]
    role: str


@dataclass
class Rejection:
    reasons: list[str]


def field_value(field_name: str, offer: Offer) -> str | None:
    if field_name in ("hostname", "@hostname"):
        return offer.hostname
    if field_name == "@region":
        return offer.attributes.get("region")
    if field_name == "@zone":
        return offer.attributes.get("zone")
    return offer.attributes.get(field_name)


def placement_value(field_name: str, p: Placement) -> str | None:
    if field_name in ("hostname", "@hostname"):
        return p.hostname
    if field_name == "@region":
        return p.attributes.get("region")
    if field_name == "@zone":
        return p.attributes.get("zone")
    return p.attributes.get(field_name)


def _full_match(pattern: str, value: str) -> bool:
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return False


def constraint_met(constraint: Sequence[str], offer: Offer, placed: Sequence[Placement]) -> bool:
    """Marathon's Constraints.meetsConstraint for one [field, OPERATOR, value?]."""
    if len(constraint) < 2:
        return True
    fld, op = constraint[0], constraint[1].upper()
    value = constraint[2] if len(constraint) > 2 else None
    own = field_value(fld, offer)
    others = [placement_value(fld, p) for p in placed]
    if op == "UNLIKE":
        return own is None or value is None or not _full_match(value, own)
    if own is None:
        return False
    if op == "UNIQUE":
        return own not in others
    if op == "CLUSTER":
        if value:
            return own == value
        present = [o for o in others if o is not None]
        return not present or present[0] == own
    if op == "LIKE":
        return value is not None and _full_match(value, own)
    if op == "IS":
        if value is None:
            return False
        try:
            return abs(float(own) - float(value)) < EPSILON
        except ValueError:
            return own == value
    if op == "MAX_PER":
        limit = int(value) if value else 1
        return others.count(own) < limit
    if op == "GROUP_BY":
        # Marathon: a value not used yet is fine; a used one only while there are at
        # least ``value`` groups and it is (one of) the smallest.
        counts: dict[str, int] = {}
        for o in others:
            if o is not None:
                counts[o] = counts.get(o, 0) + 1
        if own not in counts:
            return True
        wanted = int(value) if value else 0
        return len(counts) >= wanted and counts[own] == min(counts.values())
    return True


def constraints_met(
    constraints: Iterable[Sequence[str]], offer: Offer, placed: Sequence[Placement]
) -> bool:
    return all(constraint_met(c, offer, placed) for c in constraints)


def app_roles(app: AppDefinition, default_role: str) -> set[str]:
    if app.accepted_resource_roles:
        return set(app.accepted_resource_roles)
    return {"*", app.role or default_role}


def wanted_host_ports(app: AppDefinition) -> list[int]:
    """Host ports one instance needs: 0 means "any free port"."""
    if app.network_mode == "host":
        if app.require_ports:
            return [p.port for p in app.port_definitions or []]
        return [0 for _ in app.port_definitions or []]
    mappings = app.container.port_mappings if app.container else None
    return [m.host_port or 0 for m in mappings or [] if m.host_port is not None]


def choose_ports(offer: Offer, wanted: Sequence[int], rng: Any) -> list[int] | None:
    """Pick host ports from the offer: fixed ones must be offered, 0s get random free ones."""
    fixed = [p for p in wanted if p]
    for p in fixed:
        if not any(b <= p <= e for b, e in offer.ports):
            return None
    if len(set(fixed)) != len(fixed):
        return None
    dynamic = sum(1 for p in wanted if not p)
    if dynamic > offer.port_count() - len(fixed):
        return None
    if not dynamic:
        return list(wanted)
    taken = set(fixed)
    # Random start within the ranges (as Marathon), then walk: no full enumeration.
    total = offer.port_count()
    index = rng.randrange(total)
    picks: list[int] = []
    for _ in range(total):
        port = _port_at(offer.ports, index % total)
        if port not in taken:
            picks.append(port)
            taken.add(port)
            if len(picks) == dynamic:
                break
        index += 1
    if len(picks) < dynamic:
        return None
    it = iter(picks)
    return [p if p else next(it) for p in wanted]


def _port_at(ranges: Sequence[tuple[int, int]], index: int) -> int:
    for b, e in ranges:
        size = e - b + 1
        if index < size:
            return b + index
        index -= size
    raise IndexError(index)


def match_offer(
    app: AppDefinition,
    offer: Offer,
    placed: Sequence[Placement],
    rng: Any,
    *,
    default_role: str = "*",
) -> Match | Rejection:
    """Does one instance of ``app`` fit ``offer`` (whose resources may be partly used)?"""
    reasons: list[str] = []
    roles = app_roles(app, default_role)
    if not (offer.roles & roles):
        return Rejection(["UnfulfilledRole"])
    if not constraints_met(app.constraints, offer, placed):
        reasons.append("UnfulfilledConstraint")
    if offer.scalars.get("cpus", 0.0) + 1e-9 < app.cpus:
        reasons.append("InsufficientCpus")
    if offer.scalars.get("mem", 0.0) + 1e-9 < app.mem:
        reasons.append("InsufficientMemory")
    if offer.scalars.get("disk", 0.0) + 1e-9 < app.disk:
        reasons.append("InsufficientDisk")
    if app.gpus and offer.scalars.get("gpus", 0.0) + 1e-9 < app.gpus:
        reasons.append("InsufficientGpus")
    ports = choose_ports(offer, wanted_host_ports(app), rng)
    if ports is None:
        reasons.append("InsufficientPorts")
    if reasons or ports is None:
        return Rejection(reasons)
    role = sorted(offer.roles & roles)[0]
    return Match(app.cpus, app.mem, app.disk, float(app.gpus), ports, role)


def consume(offer: Offer, match: Match) -> None:
    """Take a match's resources out of the offer (several instances per offer)."""
    offer.scalars["cpus"] = offer.scalars.get("cpus", 0.0) - match.cpus
    offer.scalars["mem"] = offer.scalars.get("mem", 0.0) - match.mem
    offer.scalars["disk"] = offer.scalars.get("disk", 0.0) - match.disk
    if match.gpus:
        offer.scalars["gpus"] = offer.scalars.get("gpus", 0.0) - match.gpus
    offer.take_ports(match.ports)


# --------------------------------------------------------------------------- summaries


@dataclass
class OfferSummary:
    """Per app: offers processed and rejected by reason (Marathon's processedOffersSummary)."""

    processed: int = 0
    unused: int = 0
    last_unused_at: str | None = None
    last_used_at: str | None = None
    last_offers: dict[str, int] = field(default_factory=dict)  # reason -> declined count
    last_processed: int = 0
    launch_attempt: dict[str, int] = field(default_factory=dict)
    attempt_processed: int = 0
    last_unused_offers: list[dict[str, Any]] = field(default_factory=list)

    def new_round(self) -> None:
        """Start counting a new batch of offers (``rejectSummaryLastOffers``)."""
        self.last_offers = {}
        self.last_processed = 0
        self.last_unused_offers = []

    def record(self, offer: Offer, result: Match | Rejection, now: str) -> None:
        self.processed += 1
        self.last_processed += 1
        self.attempt_processed += 1
        if isinstance(result, Match):
            self.last_used_at = now
            return
        self.unused += 1
        self.last_unused_at = now
        for reason in result.reasons:
            self.last_offers[reason] = self.last_offers.get(reason, 0) + 1
            self.launch_attempt[reason] = self.launch_attempt.get(reason, 0) + 1
        if len(self.last_unused_offers) < 10:
            self.last_unused_offers.append(
                {"offer": offer.raw, "timestamp": now, "reason": list(result.reasons)}
            )

    def to_json(self) -> dict[str, Any]:
        def table(counts: dict[str, int], processed: int) -> list[dict[str, Any]]:
            rows = []
            remaining = processed
            for reason in REASONS:
                declined = counts.get(reason, 0)
                rows.append({"reason": reason, "declined": declined, "processed": remaining})
                remaining -= declined
            return rows

        out: dict[str, Any] = {
            "processedOffersCount": self.processed,
            "unusedOffersCount": self.unused,
            "rejectSummaryLastOffers": table(self.last_offers, self.last_processed),
            "rejectSummaryLaunchAttempt": table(self.launch_attempt, self.attempt_processed),
        }
        if self.last_unused_at:
            out["lastUnusedOfferAt"] = self.last_unused_at
        if self.last_used_at:
            out["lastUsedOfferAt"] = self.last_used_at
        return out
