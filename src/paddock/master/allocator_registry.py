"""The allocator's registry: roles, frameworks, agents and who holds what where.

:class:`AllocatorRegistry` keeps the books that :class:`~paddock.master.allocator.
HierarchicalAllocator` decides from: each agent's total, free pool and per-(framework, role)
offered and used resources; each role's weight and aggregate allocation; which frameworks are
active or suppressed and therefore in their role's DRF order.  It makes no allocation
decisions itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from paddock.master.allocator_sorter import (
    AgentState,
    Client,
    FrameworkState,
    RoleState,
    ShareCalculator,
    add_millis,
    sub_millis,
)
from paddock.master.resources import UNRESERVED, Resources, validate_role

__all__ = ["AllocatorRegistry", "UsedMap"]

_EMPTY = Resources()
UsedMap = Mapping[str, Resources] | Mapping[tuple[str, str], Resources]


class AllocatorRegistry:
    """Bookkeeping shared by allocation and recovery; see the module docstring."""

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        self._weights: dict[str, float] = {}
        self._agents: dict[str, AgentState] = {}
        self._frameworks: dict[str, FrameworkState] = {}
        self._roles: dict[str, RoleState] = {}
        self._clients: dict[tuple[str, str], Client] = {}
        self._role_order: list[RoleState] = []
        self._roles_dirty = False
        # Bumped whenever a framework may newly receive offers (joins an order, or its
        # filters are cleared by REVIVE); invalidates AgentState's "everyone refused" memo.
        self._order_version = 0
        self._totals: dict[str, int] = {}
        self._shares = ShareCalculator()
        if weights:
            self.update_weights(weights)

    # ------------------------------------------------------------------ roles and clients
    def update_weights(self, weights: Mapping[str, float]) -> None:
        """Set role weights (default 1.0); a role's dominant share is divided by its weight."""
        for role, w in weights.items():
            validate_role(role)
            if not w > 0:
                raise ValueError(f"weight of role {role!r} must be positive, got {w!r}")
        for role, w in weights.items():
            self._weights[role] = float(w)
            if role in self._roles:
                self._roles[role].weight = float(w)
        self._roles_dirty = True

    def _role(self, name: str) -> RoleState:
        role = self._roles.get(name)
        if role is None:
            role = RoleState(name, self._weights.get(name, 1.0))
            self._roles[name] = role
            self._role_order.append(role)
            self._roles_dirty = True
        return role

    def _client(self, framework_id: str, role_name: str) -> Client:
        key = (framework_id, role_name)
        client = self._clients.get(key)
        if client is None:
            client = Client(framework_id, role_name)
            self._clients[key] = client
            self._role(role_name).clients[framework_id] = client
        return client

    def _enter_order(self, client: Client) -> None:
        if not client.in_order:
            role = self._roles[client.role]
            role.order.append(client)
            role.dirty = True
            client.in_order = True
            self._order_version += 1

    def _leave_order(self, client: Client) -> None:
        if client.in_order:
            self._roles[client.role].order.remove(client)
            client.in_order = False

    def _forget_if_idle(self, client: Client) -> None:
        """Drop a client that no framework owns and that holds nothing; drop empty roles."""
        if client.framework is not None or not client.holds_nothing():
            return
        self._leave_order(client)
        del self._clients[(client.framework_id, client.role)]
        role = self._roles[client.role]
        del role.clients[client.framework_id]
        if not role.clients:
            del self._roles[role.name]
            self._role_order.remove(role)

    def _framework_roles(self, fw: FrameworkState, roles: Iterable[str] | None) -> list[str]:
        if roles is None:
            return list(fw.roles)
        chosen = list(roles)
        for r in chosen:
            if r not in fw.roles:
                raise ValueError(f"framework {fw.framework_id!r} is not subscribed to role {r!r}")
        return chosen or list(fw.roles)

    def _sync_order(self, fw: FrameworkState) -> None:
        for r in fw.roles:
            client = self._clients[(fw.framework_id, r)]
            if fw.active and r not in fw.suppressed:
                self._enter_order(client)
            else:
                self._leave_order(client)

    # ------------------------------------------------------------------ frameworks
    def add_framework(
        self,
        framework_id: str,
        roles: Iterable[str] = (UNRESERVED,),
        *,
        active: bool = True,
        suppressed_roles: Iterable[str] = (),
    ) -> None:
        if framework_id in self._frameworks:
            raise ValueError(f"framework {framework_id!r} already added")
        role_list = tuple(dict.fromkeys(roles))
        if not role_list:
            raise ValueError(f"framework {framework_id!r} needs at least one role")
        for r in role_list:
            validate_role(r)
        fw = FrameworkState(framework_id, role_list, active, set(suppressed_roles))
        if not fw.suppressed <= set(role_list):
            raise ValueError(f"suppressed roles {sorted(fw.suppressed)} not among {role_list}")
        self._frameworks[framework_id] = fw
        for r in role_list:
            self._client(framework_id, r).framework = fw
        self._sync_order(fw)

    def remove_framework(self, framework_id: str) -> None:
        """Forget the framework and free everything it was offered or is using."""
        del self._frameworks[framework_id]
        # Also roles it left by update_framework while still holding resources there.
        mine = [c for (f, _), c in self._clients.items() if f == framework_id]
        for client in mine:
            for agent_id in list(client.agents):
                agent = self._agents[agent_id]
                held = agent.offered.pop(client, _EMPTY) + agent.used.pop(client, _EMPTY)
                self._release(agent, client, held)
            client.agents.clear()
            client.filters.clear()
            client.framework = None
            self._forget_if_idle(client)

    def update_framework(
        self,
        framework_id: str,
        roles: Iterable[str],
        *,
        suppressed_roles: Iterable[str] | None = None,
    ) -> None:
        """Change the framework's roles (and optionally its suppressed set).  A dropped role
        stays accounted while the framework still holds resources in it."""
        fw = self._frameworks[framework_id]
        new_roles = tuple(dict.fromkeys(roles))
        if not new_roles:
            raise ValueError(f"framework {framework_id!r} needs at least one role")
        for r in new_roles:
            validate_role(r)
        suppressed = set(fw.suppressed if suppressed_roles is None else suppressed_roles)
        suppressed &= set(new_roles)
        for r in fw.roles:
            if r not in new_roles:
                client = self._clients[(framework_id, r)]
                self._leave_order(client)
                client.framework = None
                client.filters.clear()
                self._forget_if_idle(client)
        fw.roles, fw.suppressed = new_roles, suppressed
        for r in new_roles:
            self._client(framework_id, r).framework = fw
        self._sync_order(fw)

    def activate_framework(self, framework_id: str) -> None:
        fw = self._frameworks[framework_id]
        fw.active = True
        self._sync_order(fw)

    def deactivate_framework(self, framework_id: str) -> None:
        """No offers while inactive; its allocations stay counted; filters are cleared."""
        fw = self._frameworks[framework_id]
        fw.active = False
        for r in fw.roles:
            self._clients[(framework_id, r)].filters.clear()
        self._order_version += 1
        self._sync_order(fw)

    def suppress(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        """SUPPRESS: stop offers to the framework (for ``roles``, default all its roles)."""
        fw = self._frameworks[framework_id]
        fw.suppressed.update(self._framework_roles(fw, roles))
        self._sync_order(fw)

    def revive(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        """REVIVE: un-suppress and clear refusal filters (for ``roles``, default all)."""
        fw = self._frameworks[framework_id]
        chosen = self._framework_roles(fw, roles)
        for r in chosen:
            fw.suppressed.discard(r)
            self._clients[(framework_id, r)].filters.clear()
        self._order_version += 1
        self._sync_order(fw)

    # ------------------------------------------------------------------ agents
    def add_agent(
        self,
        agent_id: str,
        total: Resources,
        *,
        used: UsedMap | None = None,
        active: bool = True,
    ) -> None:
        """Add an agent.  ``used`` maps ``(framework_id, role)`` (or a framework id, meaning
        that framework's only role, or ``*`` for an unknown framework) to resources already
        taken by running tasks, e.g. when an agent re-registers after a master failover.
        As in Mesos, used resources beyond ``total`` are accepted and leave nothing free."""
        if agent_id in self._agents:
            raise ValueError(f"agent {agent_id!r} already added")
        resolved = self._resolve_used(used)
        agent = AgentState(agent_id, total, total, active=active)
        agent.scalar_totals = total.scalar_millis()
        self._agents[agent_id] = agent
        add_millis(self._totals, agent.scalar_totals)
        self._totals_changed()
        for client, res in resolved:
            self._hold(agent, client, res, used=True)

    def remove_agent(self, agent_id: str) -> None:
        agent = self._agents.pop(agent_id)
        for bucket in (agent.offered, agent.used):
            for client, res in bucket.items():
                self._untrack(client, res)
                client.agents.pop(agent_id, None)
        for client in list(self._clients.values()):
            client.filters.pop(agent_id, None)
            self._forget_if_idle(client)
        sub_millis(self._totals, agent.scalar_totals)
        self._totals_changed()

    def update_agent(
        self,
        agent_id: str,
        *,
        total: Resources | None = None,
        used: UsedMap | None = None,
    ) -> None:
        """Replace the agent's total and/or its used resources (all of them, per client).
        Like Mesos, a total below what is allocated leaves nothing free rather than failing."""
        agent = self._agents[agent_id]
        resolved = self._resolve_used(used) if used is not None else None
        if total is not None:
            sub_millis(self._totals, agent.scalar_totals)
            agent.total = total
            agent.scalar_totals = total.scalar_millis()
            add_millis(self._totals, agent.scalar_totals)
            self._totals_changed()
        if resolved is not None:
            for client, res in list(agent.used.items()):
                del agent.used[client]
                self._untrack(client, res)
                if client not in agent.offered:
                    client.agents.pop(agent_id, None)
                self._forget_if_idle(client)
            for client, res in resolved:
                self._hold(agent, client, res, used=True, adjust_available=False)
        self._recompute_available(agent)

    def activate_agent(self, agent_id: str) -> None:
        self._agents[agent_id].active = True

    def deactivate_agent(self, agent_id: str) -> None:
        """Stop offering the agent's resources (draining, maintenance)."""
        self._agents[agent_id].active = False

    def _resolve_used(self, used: UsedMap | None) -> list[tuple[Client, Resources]]:
        out: list[tuple[Client, Resources]] = []
        for key, res in (used or {}).items():
            if isinstance(key, tuple):
                framework_id, role = key
            else:
                fw = self._frameworks.get(key)
                if fw is not None and len(fw.roles) != 1:
                    raise ValueError(f"framework {key!r} has several roles; key used by role")
                role = fw.roles[0] if fw is not None else UNRESERVED
                framework_id = key
            validate_role(role)
            if res:
                out.append((self._client(framework_id, role), res))
        return out

    def _recompute_available(self, agent: AgentState) -> None:
        free = agent.total
        for res in agent.offered.values():
            free = free - res
        for res in agent.used.values():
            free = free - res
        agent.available = free

    def _totals_changed(self) -> None:
        self._shares.set_totals(self._totals)
        for role in self._roles.values():
            role.dirty = True
        self._roles_dirty = True

    # ------------------------------------------------------------------ accounting
    def _track(self, client: Client, q: dict[str, int]) -> None:
        add_millis(client.alloc, q)
        client.count += 1
        role = self._roles[client.role]
        add_millis(role.alloc, q)
        role.count += 1

    def _untrack(self, client: Client, res: Resources) -> None:
        q = res.scalar_millis()
        sub_millis(client.alloc, q)
        role = self._roles[client.role]
        sub_millis(role.alloc, q)
        role.dirty = True
        self._roles_dirty = True

    def _hold(
        self,
        agent: AgentState,
        client: Client,
        res: Resources,
        *,
        used: bool,
        adjust_available: bool = True,
    ) -> None:
        bucket = agent.used if used else agent.offered
        prev = bucket.get(client)
        bucket[client] = res if prev is None else prev + res
        client.agents[agent.agent_id] = None
        if adjust_available:
            agent.available = agent.available - res
        self._track(client, res.scalar_millis())
        self._roles[client.role].dirty = True
        self._roles_dirty = True

    def _release(self, agent: AgentState, client: Client, res: Resources) -> None:
        agent.available = agent.available + res
        self._untrack(client, res)

    def _client_for(self, fw: FrameworkState, role: str | None) -> Client:
        if role is None:
            if len(fw.roles) != 1:
                raise ValueError(f"framework {fw.framework_id!r} has several roles: name one")
            role = fw.roles[0]
        client = self._clients.get((fw.framework_id, role))
        if client is None:
            raise ValueError(f"framework {fw.framework_id!r} holds nothing in role {role!r}")
        return client

    def _resort(self) -> None:
        """Bring the DRF orders up to date (the allocator's; a no-op here)."""

    # ------------------------------------------------------------------ introspection
    def agent_ids(self) -> list[str]:
        return list(self._agents)

    def framework_ids(self) -> list[str]:
        return list(self._frameworks)

    def total(self, agent_id: str) -> Resources:
        return self._agents[agent_id].total

    def available(self, agent_id: str) -> Resources:
        return self._agents[agent_id].available

    def offered(self, agent_id: str) -> dict[tuple[str, str], Resources]:
        """Outstanding offers on the agent, per ``(framework_id, role)``."""
        return {(c.framework_id, c.role): r for c, r in self._agents[agent_id].offered.items()}

    def used(self, agent_id: str) -> dict[tuple[str, str], Resources]:
        return {(c.framework_id, c.role): r for c, r in self._agents[agent_id].used.items()}

    def framework_share(self, framework_id: str, role: str | None = None) -> float:
        """Dominant share of the framework in ``role`` (its only role by default)."""
        client = self._client_for(self._frameworks[framework_id], role)
        return self._shares.share(client.alloc)

    def role_share(self, role: str) -> float:
        """Weighted dominant share of ``role`` (0 for a role nobody holds anything in)."""
        state = self._roles.get(role)
        return 0.0 if state is None else self._shares.share(state.alloc, state.weight)

    def role_order(self) -> list[str]:
        self._resort()
        return [r.name for r in self._role_order]

    def framework_order(self, role: str) -> list[str]:
        """Frameworks of ``role`` that can receive offers, in the order they would."""
        self._resort()
        state = self._roles.get(role)
        return [] if state is None else [c.framework_id for c in state.order]
