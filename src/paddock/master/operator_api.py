"""The v1 operator API (``POST /api/v1``) and the Prometheus rendering of the metrics."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from paddock.master.base import CallError
from paddock.master.resources import validate_role
from paddock.master.views import (
    get_agents,
    get_executors,
    get_frameworks,
    get_state,
    get_tasks,
)

if TYPE_CHECKING:
    from paddock.master.daemon import MasterDaemon


async def operator_call(daemon: MasterDaemon, call: dict[str, Any]) -> dict[str, Any]:
    t = call.get("type")
    m = daemon.master
    if t == "GET_HEALTH":
        return {"type": t, "get_health": {"healthy": True}}
    if t == "GET_VERSION":
        v = m.version_json()
        return {"type": t, "get_version": {"version_info": v}}
    if t == "GET_FLAGS":
        flags = [{"name": k, "value": v} for k, v in m.flags_json().items()]
        return {"type": t, "get_flags": {"flags": flags}}
    if t == "GET_MASTER":
        return {
            "type": t,
            "get_master": {
                "master_info": m.master_info,
                "start_time": m.start_time,
                "elected_time": m.elected_time or 0,
            },
        }
    if t == "GET_METRICS":
        snap = m.metrics_snapshot(m.acting)
        return {
            "type": t,
            "get_metrics": {"metrics": [{"name": k, "value": v} for k, v in snap.items()]},
        }
    if t == "GET_AGENTS":
        return {"type": t, "get_agents": get_agents(m)}
    if t == "GET_FRAMEWORKS":
        return {"type": t, "get_frameworks": get_frameworks(m)}
    if t == "GET_TASKS":
        return {"type": t, "get_tasks": get_tasks(m)}
    if t == "GET_EXECUTORS":
        return {"type": t, "get_executors": get_executors(m)}
    if t == "GET_ROLES":
        roles = sorted({r for f in m.frameworks.values() for r in f.roles} | {"*"})
        return {"type": t, "get_roles": {"roles": [{"name": r, "weight": 1.0} for r in roles]}}
    if t == "GET_STATE":
        return {"type": t, "get_state": get_state(m)}
    if t == "GET_WEIGHTS":
        reg = m.registry.state.weights if m.registry is not None else {}
        ws = [{"role": r, "weight": w} for r, w in sorted(reg.items())]
        return {"type": t, "get_weights": {"weight_infos": ws}}
    if t == "UPDATE_WEIGHTS":
        body = call.get("update_weights") or {}
        infos = body.get("weight_infos") if isinstance(body, dict) else None
        if not isinstance(infos, list):
            raise CallError(400, "Expecting 'update_weights.weight_infos'")
        weights: dict[str, float] = {}
        for w in infos:
            try:
                role, weight = str(w["role"]), float(w["weight"])
                validate_role(role)
            except (KeyError, TypeError, ValueError) as exc:
                raise CallError(400, f"bad weight info {w!r}: {exc}") from None
            if not weight > 0:
                raise CallError(400, f"weight of {role!r} must be positive")
            weights[role] = weight
        m.require_acting()
        await m.update_weights(weights)
        return {}
    if t == "MARK_AGENT_GONE":
        body = call.get("mark_agent_gone") or {}
        aid = _value_at(body, "agent_id")
        if not isinstance(aid, str) or not aid:
            raise CallError(400, "Expecting 'mark_agent_gone.agent_id'")
        m.require_acting()
        await m.mark_gone(aid)
        return {}
    if t == "TEARDOWN":
        body = call.get("teardown") or {}
        fid = _value_at(body, "framework_id")
        fw = m.frameworks.get(fid) if isinstance(fid, str) else None
        if fw is None:
            raise CallError(400, f"No framework with id {fid!r}")
        m.require_acting()
        m.remove_framework(fw, "operator teardown")
        return {}
    raise CallError(400, f"Unsupported operator call {t!r}")


def _value_at(body: Any, key: str) -> Any:
    """``body[key]["value"]`` or None when any step is missing or not an object (fuzzing
    found ``"agent_id": []`` raising AttributeError: a 500)."""
    ident = body.get(key) if isinstance(body, dict) else None
    return ident.get("value") if isinstance(ident, dict) else None


_NAME_RE = re.compile(r"[^a-zA-Z0-9_]")


class _SnapshotCollector:
    def __init__(self, snapshot: dict[str, float]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Any:
        for key, value in sorted(self.snapshot.items()):
            name = "mesos_" + _NAME_RE.sub("_", key)
            yield GaugeMetricFamily(name, f"Mesos metric {key}", value=value)


def prometheus_text(snapshot: dict[str, float]) -> tuple[bytes, str]:
    reg = CollectorRegistry()
    reg.register(_SnapshotCollector(snapshot))
    return generate_latest(reg), CONTENT_TYPE_LATEST


__all__ = ["operator_call", "prometheus_text"]
