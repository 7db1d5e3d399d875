"""The master registry: what must survive a master failover, replicated among the masters.

As in Mesos (``src/master/registry.proto``) the registry holds the agents the
cluster admitted, those marked unreachable (with when) and those marked gone,
plus placeholders for weights, quota and maintenance. It does NOT hold
frameworks or tasks: a new leader rebuilds those from agents re-registering and
frameworks re-subscribing.

:class:`RegistryState` is the deterministic state machine that every master's
``ConsensusServer`` applies in log order (commands are JSON objects with an
``op``). :class:`Registry` is the leader-side wrapper that proposes commands and
turns consensus errors into :class:`RegistryUnavailable`.

Every admission is written here *before* the agent gets its REGISTERED event,
so a master without a quorum of masters cannot admit anyone.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from paddock.consensus.server import ConsensusServer
from paddock.consensus.types import Entry, NotLeader

__all__ = ["Registry", "RegistryError", "RegistryState", "RegistryUnavailable"]


class RegistryError(ValueError):
    """A command the registry refuses deterministically (e.g. re-admitting a gone agent)."""


class RegistryUnavailable(Exception):
    """The registry cannot be written now (no quorum of masters, not the registry leader)."""


class RegistryState:
    """Deterministic registry contents; ``apply`` is called in log order on every master."""

    def __init__(self) -> None:
        self.admitted: dict[str, dict[str, Any]] = {}
        self.unreachable: dict[str, dict[str, Any]] = {}
        self.gone: dict[str, float] = {}
        self.weights: dict[str, float] = {}
        self.quota: dict[str, Any] = {}
        self.maintenance: dict[str, Any] = {}
        self.master: dict[str, Any] | None = None
        self.elections = 0

    # --------------------------------------------------------------- state machine
    def apply(self, entry: Entry) -> Any:
        try:
            cmd = json.loads(entry.data)
        except ValueError as exc:
            raise RegistryError(f"undecodable registry command: {exc}") from None
        if not isinstance(cmd, dict):
            raise RegistryError("registry command must be a JSON object")
        return self.apply_command(cmd)

    def apply_command(self, cmd: dict[str, Any]) -> Any:
        op = cmd.get("op")
        if op == "elected":
            self.master = cmd.get("master")
            self.elections += 1
            return self.elections
        raw_id = cmd.get("agent_id")
        if op in ("admit", "unreachable", "gone", "remove") and not isinstance(raw_id, str):
            raise RegistryError(f"{op}: agent_id must be a string")
        agent_id = str(raw_id)
        if op == "admit":
            if agent_id in self.gone:
                raise RegistryError(f"agent {agent_id} has been marked gone")
            self.unreachable.pop(agent_id, None)
            self.admitted[agent_id] = cmd.get("info") or {}
            return "admitted"
        if op == "unreachable":
            info = self.admitted.pop(agent_id, None)
            if info is None:
                return "unknown"
            self.unreachable[agent_id] = {"info": info, "time": float(cmd.get("time", 0.0))}
            return "unreachable"
        if op == "gone":
            self.admitted.pop(agent_id, None)
            self.unreachable.pop(agent_id, None)
            self.gone[agent_id] = float(cmd.get("time", 0.0))
            return "gone"
        if op == "remove":
            self.admitted.pop(agent_id, None)
            self.unreachable.pop(agent_id, None)
            return "removed"
        if op == "weights":
            weights = cmd.get("weights") or {}
            if not isinstance(weights, dict):
                raise RegistryError("weights must be an object")
            self.weights.update({str(k): float(v) for k, v in weights.items()})
            return "ok"
        raise RegistryError(f"unknown registry op {op!r}")

    def snapshot(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True).encode()

    def restore(self, data: bytes) -> None:
        obj = json.loads(data) if data else {}
        self.admitted = dict(obj.get("admitted", {}))
        self.unreachable = dict(obj.get("unreachable", {}))
        self.gone = dict(obj.get("gone", {}))
        self.weights = dict(obj.get("weights", {}))
        self.quota = dict(obj.get("quota", {}))
        self.maintenance = dict(obj.get("maintenance", {}))
        self.master = obj.get("master")
        self.elections = int(obj.get("elections", 0))

    def to_json(self) -> dict[str, Any]:
        return {
            "master": self.master,
            "elections": self.elections,
            "admitted": self.admitted,
            "unreachable": self.unreachable,
            "gone": self.gone,
            "weights": self.weights,
            "quota": self.quota,
            "maintenance": self.maintenance,
        }


class Registry:
    """Leader-side access: propose commands through the masters' consensus log."""

    def __init__(self, server: ConsensusServer, state: RegistryState, timeout: float = 5.0):
        self.server = server
        self.state = state
        self.timeout = timeout

    async def write(self, cmd: dict[str, Any]) -> Any:
        """Replicate ``cmd`` to a quorum of masters and return its result.

        Raises :class:`RegistryUnavailable` when this master cannot commit (not
        the registry leader, no quorum within ``timeout``, outcome unknown) and
        :class:`RegistryError` when the registry refused the command.
        """
        data = json.dumps(cmd, separators=(",", ":")).encode()
        try:
            return await asyncio.wait_for(self.server.propose(data), self.timeout)
        except RegistryError:
            raise
        except NotLeader as exc:
            raise RegistryUnavailable(f"registry not writable here: {exc}") from None
        except TimeoutError:
            raise RegistryUnavailable(
                f"registry write not committed within {self.timeout:g} s (no quorum of masters?)"
            ) from None
        except Exception as exc:  # ServerStopped and the like
            raise RegistryUnavailable(f"registry unavailable: {exc}") from None
