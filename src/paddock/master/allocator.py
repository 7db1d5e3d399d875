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

How a master drives it (each call maps to a scheduler or agent event)::

    alloc = HierarchicalAllocator(rng=random.Random(seed))
    alloc.add_framework("fw-1", roles=["*"])                    # SUBSCRIBE
    alloc.add_agent("agent-1", Resources.parse("cpus:4;mem:4096"))
    offers = alloc.allocate(now)                                 # every allocation_interval
    offers += alloc.allocate(now, agents=["agent-1"])            # after add/recover, cheaply
    alloc.recover_resources(fw, agent, res, refuse_seconds=5.0, now=now)  # DECLINE
    alloc.accept(fw, agent, offered, used, refuse_seconds=5.0, now=now)   # ACCEPT
    alloc.recover_resources(fw, agent, task_res, used=True)     # task reached a final state
    alloc.recover_resources(fw, agent, res, now=now)            # RESCIND / offer timeout
    alloc.suppress(fw); alloc.revive(fw)                         # SUPPRESS / REVIVE

Time is an argument (``now``, seconds on any monotonic scale) and randomness is injected, so
the same calls give the same offers.  Not modelled: quota, hierarchical role trees (a role
``a/b`` is just a name with its own weight), shared resources, inverse offers, offer
constraints, per-framework minimum allocatable resources.
"""

from __future__ import annotations

import random
from bisect import insort
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from paddock.master.allocator_registry import AllocatorRegistry
from paddock.master.allocator_sorter import (
    RefusalFilter,
    chain_head,
    reposition_after_growth,
    sort_key,
)
from paddock.master.resources import UNRESERVED, Resources

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
_FOREVER = float("inf")


class Offer(NamedTuple):
    """Resources on one agent offered to one framework for one of its roles.  (A named
    tuple rather than a frozen dataclass: a round creates thousands and this is cheaper.)"""

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


class HierarchicalAllocator(AllocatorRegistry):
    """Weighted DRF over roles, then DRF over each role's frameworks.  Pure and deterministic.

    All identifiers are strings.  Registration, accounting and introspection (``add_agent``,
    ``add_framework``, ``suppress``, ``offered``, ``framework_share``, ...) come from
    :class:`AllocatorRegistry`.  Unknown framework or agent ids on recovery are ignored (the
    agent or framework was removed meanwhile, as Mesos tolerates); other misuse raises
    ValueError or KeyError before changing any state.
    """

    #: Remember who refused an agent's unchanged free pool, and skip the agent when everyone
    #: did (see AgentState.refusers).  Only tests turn it off, to check it changes nothing.
    skip_refused_agents = True

    def __init__(
        self,
        *,
        weights: Mapping[str, float] | None = None,
        min_allocatable: str | Sequence[Mapping[str, float]] = DEFAULT_MIN_ALLOCATABLE,
        allocation_interval: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(weights)
        if isinstance(min_allocatable, str):
            self._min_alloc = parse_min_allocatable(min_allocatable)
        else:
            self._min_alloc = [
                {n: round(v * 1000) for n, v in alt.items()} for alt in min_allocatable
            ]
        self.allocation_interval = allocation_interval
        self._rng = rng if rng is not None else random.Random(0)

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
                new = RefusalFilter(resources, expires)
                head = client.filters.get(agent_id)
                if head is None:
                    client.filters[agent_id] = new
                elif head.more is None:
                    head.more = [new]
                else:
                    head.more.append(new)

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

    def expire_filters(self, now: float) -> int:
        """Drop filters that expired by ``now``; return how many remain (a metric)."""
        remaining = 0
        for client in self._clients.values():
            for agent_id, head in list(client.filters.items()):
                live = [f for f in head.chain() if f.expires_at > now]
                new_head = chain_head(live)
                if new_head is None:
                    del client.filters[agent_id]
                else:
                    client.filters[agent_id] = new_head
                    remaining += len(live)
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
        version = self._order_version
        skip_refused = self.skip_refused_agents
        for agent_id in agent_ids:
            agent = agents_by_id[agent_id]
            available = agent.available
            if not available or not agent.active:
                continue
            refusers = agent.refusers
            if (
                agent.refused_pool is available
                and agent.refused_version == version
                and now < agent.refused_until
            ):
                if agent.fully_refused:
                    continue  # every framework refused exactly this pool; still does
            else:
                # Start remembering, for this very pool, who refuses it (see AgentState).
                refusers.clear()
                agent.refused_pool = available if skip_refused else None
                agent.refused_version = version
                agent.refused_until = _FOREVER
                agent.fully_refused = False
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
                    if client in refusers:
                        continue
                    filters = client.filters
                    if filters:
                        f = filters.get(agent_id)
                        if f is not None:
                            if f.more is None:  # the common case, inlined
                                refused = f.refused
                                if f.expires_at <= now:
                                    del filters[agent_id]
                                    expiry = None
                                elif refused is offerable or refused.contains(offerable):
                                    expiry = f.expires_at
                                else:
                                    expiry = None
                            else:
                                expiry = _filtered(filters, agent_id, f, offerable, now)
                            if expiry is not None:
                                refusers.add(client)
                                if expiry < agent.refused_until:
                                    agent.refused_until = expiry
                                continue
                    # Offer everything the role may use on this agent to this framework.
                    offers.append(Offer(client.framework_id, agent_id, offerable, role.name))
                    available = _EMPTY if offerable is available else available - offerable
                    prev = agent.offered.get(client)
                    agent.offered[client] = offerable if prev is None else prev + offerable
                    client.agents[agent_id] = None
                    # The bookkeeping of _track, inlined: this loop is the allocator's hot path.
                    calloc, ralloc = client.alloc, role.alloc
                    for name, m in offerable.scalar_millis().items():
                        calloc[name] = calloc.get(name, 0) + m
                        ralloc[name] = ralloc.get(name, 0) + m
                    client.count += 1
                    role.count += 1
                    client.key = (share(calloc), client.count, client.framework_id)
                    del order[i]
                    insort(order, client, lo=i, key=sort_key)
                    role.key = (share(ralloc, role.weight), role.count, role.name)
                    if len(role_order) > 1:
                        reposition_after_growth(role_order, role_order.index(role), role)
                        snapshot_stale = True
                    break
                if not available:
                    break
            if available is agent.available:  # nothing offered: everyone refused this pool
                agent.fully_refused = True
            else:
                # ``refusers`` stays: if this offer is declined, the very same pool object
                # comes back (recovery adds it to an empty pool) and who refused it still do.
                agent.available = available
        return offers


def _filtered(
    filters: dict[str, RefusalFilter],
    agent_id: str,
    head: RefusalFilter,
    offer: Resources,
    now: float,
) -> float | None:
    """When the last live filter in ``head``'s chain covering ``offer`` expires, or None if
    none covers it.  Drops expired filters from the chain (and from ``filters``)."""
    chain = head.chain()
    until: float | None = None
    for f in chain:
        covers = f.expires_at > now and (f.refused is offer or f.refused.contains(offer))
        if covers and (until is None or f.expires_at > until):
            until = f.expires_at
    live = [f for f in chain if f.expires_at > now]
    if len(live) != len(chain):
        new_head = chain_head(live)
        if new_head is None:
            del filters[agent_id]
        else:
            filters[agent_id] = new_head
    return until
