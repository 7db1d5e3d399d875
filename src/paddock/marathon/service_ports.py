"""Service ports: the cluster-wide unique ports load balancers use to find an app.

Marathon gives every port left at 0 — a ``portDefinitions`` port (host networking) or a
``portMappings`` servicePort — a port from ``--local_port_min``..``--local_port_max``
(10000..20000) that no other app uses, and keeps the ports an app already had across
updates. Pure: the caller passes the roots before and after a change.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from paddock.marathon.groups import RootGroup
from paddock.marathon.models import AppDefinition


class NoFreePorts(RuntimeError):
    """The service port range is used up."""


def assign_service_ports(
    original: RootGroup, target: RootGroup, port_range: tuple[int, int] = (10000, 20000)
) -> RootGroup:
    """Give every port 0 (portDefinitions port / portMappings servicePort) a unique
    service port from the range, keeping the ports an app already had."""
    changed = [
        a
        for a in target.apps.values()
        if original.app(a.id) is None or original.apps[a.id].version != a.version
    ]
    if not changed:
        return target
    used = {p for a in target.apps.values() for p in _service_ports(a) if p}
    low, high = port_range
    free = (p for p in range(low, high + 1) if p not in used)
    updated = dict(target.apps)

    def take(previous: list[int], index: int) -> int:
        port = _reuse(previous, index, used) or next(free, 0)
        if not port:
            raise NoFreePorts(f"No free service ports left in {low}-{high}")
        used.add(port)
        return port

    for app in sorted(changed, key=lambda a: a.id):
        if 0 not in _service_ports(app):
            continue
        old = original.app(app.id)
        previous = _service_ports(old) if old else []
        changes: dict[str, Any] = {}
        if app.port_definitions and not app.require_ports:
            changes["port_definitions"] = [
                pd.model_copy(update={"port": take(previous, i)}) if pd.port == 0 else pd
                for i, pd in enumerate(app.port_definitions)
            ]
        if app.container and app.container.port_mappings:
            mappings = [
                m.model_copy(update={"service_port": take(previous, i)})
                if m.service_port == 0
                else m
                for i, m in enumerate(app.container.port_mappings)
            ]
            changes["container"] = app.container.model_copy(update={"port_mappings": mappings})
        updated[app.id] = app.model_copy(update=changes)
    return replace(target, apps=updated)


def _service_ports(app: AppDefinition | None) -> list[int]:
    if app is None:
        return []
    if app.container and app.container.port_mappings:
        return [m.service_port for m in app.container.port_mappings]
    return [p.port for p in app.port_definitions or []]


def _reuse(previous: list[int], index: int, used: set[int]) -> int:
    if index < len(previous) and previous[index] and previous[index] not in used:
        return previous[index]
    return 0
