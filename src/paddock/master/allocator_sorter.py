"""The allocator's bookkeeping records and its weighted-DRF ordering.

Mesos's ``DRFSorter`` (``src/master/allocator/mesos/sorter/drf/sorter.cpp``) orders clients by
``(share, allocation count, name)`` where ``share = max_r(allocated_r / cluster_total_r) /
weight`` over the scalar resources of the whole cluster.  One sorter orders roles; one per role
orders that role's frameworks.  Since apache/mesos 86653356d an allocation does not dirty the
sorter: the allocated client is shifted into its new place, so a round sorts once.  We do the
same: :func:`reposition_after_growth` moves a client right with a binary search, and shrinking
shares (recovered resources) only mark the order dirty for one re-sort before the next round.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from operator import attrgetter

from paddock.master.resources import Resources

__all__ = ["AgentState", "Client", "FrameworkState", "RefusalFilter", "RoleState", "chain_head"]

sort_key = attrgetter("key")


@dataclass(slots=True)
class RefusalFilter:
    """A framework declined ``refused`` on an agent: until ``expires_at`` it is not offered
    any subset of it (Mesos ``RefusedOfferFilter``: more resources lift the filter).

    A (framework, role) usually has at most one filter per agent, stored alone; further ones
    hang off the first in ``more``.  One object per filter instead of a list plus an object
    halves what the garbage collector walks when millions of filters are alive.
    """

    refused: Resources
    expires_at: float
    more: list[RefusalFilter] | None = None

    def chain(self) -> list[RefusalFilter]:
        return [self] if self.more is None else [self, *self.more]


def chain_head(filters: list[RefusalFilter]) -> RefusalFilter | None:
    """Store ``filters`` (one agent's) as a head with the rest in ``more``; None if empty."""
    if not filters:
        return None
    head = filters[0]
    head.more = filters[1:] or None
    return head


@dataclass(slots=True, eq=False)
class Client:
    """One (framework, role) pair: an entry in a role's framework order.

    ``alloc`` holds the scalar thousandths the framework holds in this role across agents
    (offered plus used, as in Mesos, where an outstanding offer counts as allocated).
    """

    framework_id: str
    role: str
    framework: FrameworkState | None = None
    alloc: dict[str, int] = field(default_factory=dict)
    count: int = 0
    key: tuple[float, int, str] = (0.0, 0, "")
    filters: dict[str, RefusalFilter] = field(default_factory=dict)  # by agent id
    agents: dict[str, None] = field(default_factory=dict)  # agents holding some of ours
    in_order: bool = False

    def __post_init__(self) -> None:
        self.key = (0.0, 0, self.framework_id)

    def holds_nothing(self) -> bool:
        return not self.agents


@dataclass(slots=True, eq=False)
class RoleState:
    """A role: its weight, its aggregate allocation and its frameworks in DRF order."""

    name: str
    weight: float = 1.0
    alloc: dict[str, int] = field(default_factory=dict)
    count: int = 0
    key: tuple[float, int, str] = (0.0, 0, "")
    clients: dict[str, Client] = field(default_factory=dict)
    order: list[Client] = field(default_factory=list)
    dirty: bool = False

    def __post_init__(self) -> None:
        self.key = (0.0, 0, self.name)


@dataclass(slots=True, eq=False)
class FrameworkState:
    framework_id: str
    roles: tuple[str, ...]
    active: bool = True
    suppressed: set[str] = field(default_factory=set)


@dataclass(slots=True, eq=False)
class AgentState:
    """An agent's ``total``, what is ``offered`` and ``used`` per client, and the free rest.

    ``available`` is maintained incrementally (``total - offered - used``) and is replaced,
    never mutated, so the very object offered and then declined comes back as the free pool.
    """

    agent_id: str
    total: Resources
    available: Resources
    offered: dict[Client, Resources] = field(default_factory=dict)
    used: dict[Client, Resources] = field(default_factory=dict)
    active: bool = True
    scalar_totals: dict[str, int] = field(default_factory=dict)
    # ``refusers``: clients whose refusal filter covers ``refused_pool``, learnt during
    # rounds.  Valid while the free pool is that very object, no framework joined an order or
    # revived (``refused_version``) and none of those refusals expired (``refused_until``).
    # A refuser is then skipped with one set look-up instead of a filter check, and an agent
    # that everyone refused (``fully_refused``) is skipped outright.  This keeps rounds cheap
    # when most frameworks have declined most agents.
    refused_pool: Resources | None = None
    refused_version: int = -1
    refused_until: float = 0.0
    refusers: set[Client] = field(default_factory=set)
    fully_refused: bool = False


def add_millis(into: dict[str, int], q: dict[str, int]) -> None:
    for name, m in q.items():
        into[name] = into.get(name, 0) + m


def sub_millis(into: dict[str, int], q: dict[str, int]) -> None:
    for name, m in q.items():
        left = into.get(name, 0) - m
        if left > 0:
            into[name] = left
        else:
            into.pop(name, None)


class ShareCalculator:
    """Dominant share against the cluster's scalar totals (``DRFSorter::calculateShare``)."""

    __slots__ = ("inverse",)

    def __init__(self) -> None:
        self.inverse: list[tuple[str, float]] = []

    def set_totals(self, totals: dict[str, int]) -> None:
        self.inverse = [(name, 1.0 / m) for name, m in sorted(totals.items()) if m > 0]

    def share(self, alloc: dict[str, int], weight: float = 1.0) -> float:
        best = 0.0
        for name, inv in self.inverse:
            v = alloc.get(name)
            if v:
                x = v * inv
                if x > best:
                    best = x
        return best / weight


def reposition_after_growth(order: list, index: int, item: Client | RoleState) -> None:
    """``item`` sits at ``order[index]`` and its key just grew: move it right into place."""
    del order[index]
    bisect.insort(order, item, lo=index, key=sort_key)
