"""A sans-IO weighted-DRF hierarchical allocator, shaped like Mesos's HierarchicalAllocator.

What it decides (apache/mesos ``src/master/allocator/mesos/hierarchical.cpp``):

* An allocation round visits agents in a shuffled order (``random_shuffle`` in Mesos; here the
  injected ``random.Random``).  For each agent, roles are taken in weighted-DRF order and, in
  each role, frameworks in DRF order.  The first framework that is neither suppressed, inactive
  nor filtering the agent gets *everything* on the agent it may use (unreserved resources plus
  its role's reservations), provided it is at least one of the ``min_allocatable`` quantities
  (``cpus:0.01|mem:32`` by default).  Its share grows at once, so the next agent goes to
  whoever is now lowest.  Resources reserved for other roles remain for those roles.
* Offered and used resources both count as allocated (Mesos makes no difference between
  them); :meth:`recover_resources` gives resources back when an offer is declined, rescinded
  or partly unused, or when a task ends.  A decline may install a refusal filter for
  ``max(allocation_interval, refuse_seconds)``: the framework is not offered any subset of
  what it refused on that agent until then (more resources lift it, as in Mesos).
* SUPPRESS takes a framework (or some of its roles) out of the order; REVIVE puts it back and
  clears its filters; deactivation removes it and clears filters too.

Time is an argument (``now``, seconds on any monotonic scale) and randomness is injected, so
the same calls give the same offers.  Not modelled: quota, hierarchical role trees (a role
``a/b`` is just a name with its own weight), shared resources, inverse offers, offer
constraints, per-framework minimum allocatable resources.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from paddock.master.allocator_sorter import (
    AgentState,
    Client,
    FrameworkState,
    RefusalFilter,
    RoleState,
    ShareCalculator,
    add_millis,
    reposition_after_growth,
    sort_key,
    sub_millis,
)
from paddock.master.resources import UNRESERVED, Resources, validate_role

__all__ = [
    "DEFAULT_MIN_ALLOCATABLE",
    "DEFAULT_REFUSE_SECONDS",
    "HierarchicalAllocator",
    "Offer",
    "parse_min_allocatable",
]

DEFAULT_REFUSE_SECONDS = 5.0
MAX_REFUSE_SECONDS = 365 * 24 * 3600.0
DEFAULT_MIN_ALLOCATABLE = "cpus:0.01|mem:32"

_EMPTY = Resources()
UsedMap = Mapping[str, Resources] | Mapping[tuple[str, str], Resources]


@dataclass(frozen=True, slots=True)
class Offer:
    """Resources on one agent offered to one framework for one of its roles."""

    framework_id: str
    agent_id: str
    resources: Resources
    role: str = UNRESERVED


def parse_min_allocatable(text: str) -> list[dict[str, int]]:
    """``--min_allocatable_resources``: ``|`` separates alternatives, ``;`` joins quantities
    that must all be present (``disk:1|cpus:1;mem:32;ports:1``).  Empty text: no minimum."""
    out: list[dict[str, int]] = []
    for alternative in text.split("|"):
        if not alternative.strip():
            continue
        r = Resources.parse(alternative)
        if r.has_reservations():
            raise ValueError(f"min allocatable {alternative!r} must not name roles")
        out.append(r.quantity_millis())
    return out


def _normalise_refuse(refuse_seconds: float) -> float:
    if refuse_seconds != refuse_seconds or refuse_seconds < 0:  # NaN or negative
        return DEFAULT_REFUSE_SECONDS
    return min(refuse_seconds, MAX_REFUSE_SECONDS)


class HierarchicalAllocator:
    """Weighted DRF over roles, then DRF over each role's frameworks.  Pure and deterministic.

    All identifiers are strings.  Unknown framework or agent ids on recovery are ignored (the
    agent or framework was removed meanwhile, as Mesos tolerates); other misuse raises
    ValueError or KeyError before changing any state.
    """

    def __init__(
        self,
        *,
        weights: Mapping[str, float] | None = None,
        min_allocatable: str | Sequence[Mapping[str, float]] = DEFAULT_MIN_ALLOCATABLE,
        allocation_interval: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(min_allocatable, str):
            self._min_alloc = parse_min_allocatable(min_allocatable)
        else:
            self._min_alloc = [
                {n: round(v * 1000) for n, v in alt.items()} for alt in min_allocatable
            ]
        self.allocation_interval = allocation_interval
        self._rng = rng if rng is not None else random.Random(0)
        self._weights: dict[str, float] = {}
        self._agents: dict[str, AgentState] = {}
        self._frameworks: dict[str, FrameworkState] = {}
        self._roles: dict[str, RoleState] = {}
        self._clients: dict[tuple[str, str], Client] = {}
        self._role_order: list[RoleState] = []
        self._roles_dirty = False
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
        fw = self._frameworks.pop(framework_id)
        for r in fw.roles:
            client = self._clients[(framework_id, r)]
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
        taken by running tasks, e.g. when an agent re-registers after a master failover."""
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

    # ------------------------------------------------------------------ recovery
    def recover_resources(
        self,
        framework_id: str,
        agent_id: str,
        resources: Resources,
        *,
        role: str | None = None,
        refuse_seconds: float | None = None,
        now: float = 0.0,
        used: bool | None = None,
    ) -> None:
        """Give ``resources`` held by the framework on the agent back to the free pool.

        ``used=False`` takes them from what was offered (decline, rescind, the unused part of
        an accepted offer), ``used=True`` from what tasks used (a task ended), ``None`` from
        whichever bucket contains them, offered first.  ``refuse_seconds`` (a decline's
        ``filters.refuse_seconds``; the master passes 5 when the call gives no filters)
        installs a refusal filter from ``now``.  ``role`` may be omitted for a one-role
        framework.  Unknown agents or frameworks are ignored (already removed).
        """
        agent = self._agents.get(agent_id)
        fw = self._frameworks.get(framework_id)
        if agent is None or fw is None or not resources:
            return
        client = self._client_for(fw, role)
        offered = agent.offered.get(client, _EMPTY)
        in_use = agent.used.get(client, _EMPTY)
        if used is None:
            used = not offered.contains(resources)
        bucket = agent.used if used else agent.offered
        held = in_use if used else offered
        if not held.contains(resources):
            kind = "used" if used else "offered"
            raise ValueError(
                f"cannot recover {resources} from framework {framework_id!r} on agent "
                f"{agent_id!r}: only {held or 'nothing'} is {kind}"
            )
        rest = held - resources
        if rest:
            bucket[client] = rest
        else:
            del bucket[client]
            if client not in agent.offered and client not in agent.used:
                client.agents.pop(agent_id, None)
        self._release(agent, client, resources)
        if client.framework is None:
            self._forget_if_idle(client)
            return
        if refuse_seconds is not None:
            timeout = _normalise_refuse(refuse_seconds)
            if timeout > 0:
                # Mesos: never expire before the next periodic allocation (MESOS-4302).
                expires = now + max(self.allocation_interval, timeout)
                client.filters.setdefault(agent_id, []).append(RefusalFilter(resources, expires))

    def use_resources(
        self, framework_id: str, agent_id: str, resources: Resources, *, role: str | None = None
    ) -> None:
        """Tasks were launched from an offer: move ``resources`` from offered to used."""
        agent = self._agents[agent_id]
        client = self._client_for(self._frameworks[framework_id], role)
        offered = agent.offered.get(client, _EMPTY)
        if not offered.contains(resources):
            raise ValueError(
                f"framework {framework_id!r} uses {resources} on agent {agent_id!r} "
                f"but was offered only {offered or 'nothing'}"
            )
        if not resources:
            return
        rest = offered - resources
        if rest:
            agent.offered[client] = rest
        else:
            del agent.offered[client]
        prev = agent.used.get(client)
        agent.used[client] = resources if prev is None else prev + resources

    def accept(
        self,
        framework_id: str,
        agent_id: str,
        offered: Resources,
        used: Resources,
        *,
        role: str | None = None,
        refuse_seconds: float | None = None,
        now: float = 0.0,
    ) -> None:
        """ACCEPT of an offer of ``offered``: ``used`` goes to tasks, the rest is recovered
        (with the call's refusal filter, as Mesos applies ``accept.filters`` to it)."""
        if not offered.contains(used):
            raise ValueError(f"tasks use {used}, more than the offered {offered}")
        self.use_resources(framework_id, agent_id, used, role=role)
        self.recover_resources(
            framework_id,
            agent_id,
            offered - used,
            role=role,
            refuse_seconds=refuse_seconds,
            now=now,
            used=False,
        )

    def _client_for(self, fw: FrameworkState, role: str | None) -> Client:
        if role is None:
            if len(fw.roles) != 1:
                raise ValueError(f"framework {fw.framework_id!r} has several roles: name one")
            role = fw.roles[0]
        client = self._clients.get((fw.framework_id, role))
        if client is None:
            raise ValueError(f"framework {fw.framework_id!r} holds nothing in role {role!r}")
        return client

    def expire_filters(self, now: float) -> int:
        """Drop filters that expired by ``now``; return how many remain (a metric)."""
        remaining = 0
        for client in self._clients.values():
            for agent_id in list(client.filters):
                live = [f for f in client.filters[agent_id] if f.expires_at > now]
                if live:
                    client.filters[agent_id] = live
                    remaining += len(live)
                else:
                    del client.filters[agent_id]
        return remaining

    # ------------------------------------------------------------------ allocation
    def _resort(self) -> None:
        share = self._shares.share
        for role in self._roles.values():
            if role.dirty:
                for c in role.order:
                    c.key = (share(c.alloc), c.count, c.framework_id)
                role.order.sort(key=sort_key)
                role.dirty = False
        if self._roles_dirty:
            for role in self._role_order:
                role.key = (share(role.alloc, role.weight), role.count, role.name)
            self._role_order.sort(key=sort_key)
            self._roles_dirty = False

    def _allocatable(self, res: Resources) -> bool:
        if not self._min_alloc:
            return True
        q = res.quantity_millis()
        for alt in self._min_alloc:
            for name, m in alt.items():
                if q.get(name, 0) < m:
                    break
            else:
                return True
        return False

    def allocate(self, now: float, agents: Iterable[str] | None = None) -> list[Offer]:
        """One allocation round over all agents, or only ``agents`` (newly added or with
        recovered resources).  Returns the offers made; they count as allocated until
        recovered or used."""
        self._resort()
        if agents is None:
            agent_ids = list(self._agents)
        else:
            agent_ids = [a for a in dict.fromkeys(agents) if a in self._agents]
        self._rng.shuffle(agent_ids)
        offers: list[Offer] = []
        role_order = self._role_order
        roles_snapshot = list(role_order)
        snapshot_stale = False
        share = self._shares.share
        agents_by_id = self._agents
        for agent_id in agent_ids:
            agent = agents_by_id[agent_id]
            available = agent.available
            if not available or not agent.active:
                continue
            if snapshot_stale:
                # Mesos asks the role sorter for its order once per agent.
                roles_snapshot = list(role_order)
                snapshot_stale = False
            for role in roles_snapshot:
                order = role.order
                if not order:
                    continue
                offerable = available.allocatable_to(role.name)
                if not offerable or not self._allocatable(offerable):
                    continue
                for i, client in enumerate(order):
                    filters = client.filters
                    if filters:
                        flist = filters.get(agent_id)
                        if flist is not None and _filtered(flist, offerable, now):
                            continue
                    # Offer everything the role may use on this agent to this framework.
                    offers.append(Offer(client.framework_id, agent_id, offerable, role.name))
                    available = _EMPTY if offerable is available else available - offerable
                    prev = agent.offered.get(client)
                    agent.offered[client] = offerable if prev is None else prev + offerable
                    client.agents[agent_id] = None
                    q = offerable.scalar_millis()
                    self._track(client, q)
                    client.key = (share(client.alloc), client.count, client.framework_id)
                    reposition_after_growth(order, i, client)
                    role.key = (share(role.alloc, role.weight), role.count, role.name)
                    if len(role_order) > 1:
                        reposition_after_growth(role_order, role_order.index(role), role)
                        snapshot_stale = True
                    break
                if not available:
                    break
            agent.available = available
        return offers

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


def _filtered(flist: list[RefusalFilter], offer: Resources, now: float) -> bool:
    """Whether a live filter covers ``offer``; drops expired filters from ``flist``."""
    hit = False
    expired = False
    for f in flist:
        if f.expires_at <= now:
            expired = True
        elif f.refused is offer or f.refused.contains(offer):
            hit = True
    if expired:
        flist[:] = [f for f in flist if f.expires_at > now]
    return hit
