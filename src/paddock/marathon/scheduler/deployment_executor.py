"""What each deployment action does next, pure and level-triggered.

The core calls these on every change (a status update, a health result, a tick) with the
app's instances as they are now; each answers which instances to kill, how many to launch
and whether the action is done. Being level-triggered, the same functions resume a
deployment after a failover from nothing but the stored plan and the instances.

Rolling restarts follow Marathon's TaskReplaceActor arithmetic (``planner.restart_strategy``):
``minHealthy = ceil(n * minimumHealthCapacity)``, ``maxCapacity = floor(n * (1 +
maximumOverCapacity))`` (one more when the two are equal, so a restart can start at all).
Old instances are killed only while at least ``minHealthy`` healthy (and ready) instances
remain; new ones launch while old + new stay within ``maxCapacity``. An instance whose
health is not known yet (e.g. just after a failover, before its first check) is neither
counted as healthy nor killed as unhealthy: a new leader never kills a working task
because it has not looked at it yet (Marathon issue #1553).

An instance asked to be killed still takes up capacity until a terminal status confirms
the kill: Marathon's steps wait for the confirmation, so a (0, 0) restart kills the old
instance, waits, then starts the new one, and old + new + killing never exceed
``maxCapacity``. Only an unreachable instance frees its slot as it is killed (Marathon's
KillService expunges it at once; the core does the same).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from paddock.marathon.planner import select_kills


@dataclass(frozen=True)
class InstanceView:
    """One non-terminal instance as the executor sees it.

    ``alive``: not being killed. ``healthy``: RUNNING and every health check (and
    readiness check) passes: True, False, or None when not known yet. ``reachable``:
    its agent is not known to be unreachable (killing an unreachable instance expunges it).
    """

    id: str
    version: str
    started_at: str
    alive: bool = True
    running: bool = True
    healthy: bool | None = True
    reachable: bool = True


@dataclass
class Decision:
    kills: list[str] = field(default_factory=list)
    launch: int = 0
    done: bool = False


def _alive(instances: Sequence[InstanceView]) -> list[InstanceView]:
    return [i for i in instances if i.alive]


def _occupying(instances: Sequence[InstanceView], kills: Sequence[str]) -> int:
    """How many instances take up capacity once ``kills`` are asked for: all but those
    being killed on an unreachable agent (expunged at once). A kill is not a gone task
    until its terminal status arrives."""
    killed = set(kills)
    return sum(1 for i in instances if i.reachable or (i.alive and i.id not in killed))


def scale_decision(
    target: int,
    instances: Sequence[InstanceView],
    kill_selection: str = "YOUNGEST_FIRST",
    sentenced: Sequence[str] = (),
) -> Decision:
    """ScaleApplication: kill the sentenced and any surplus, launch what is missing; done
    when exactly ``target`` instances are alive and all of them healthy."""
    alive = _alive(instances)
    kills = [i.id for i in alive if i.id in set(sentenced)]
    rest = [i for i in alive if i.id not in set(kills)]
    if len(rest) > target:
        # Surplus: instances that are not running go first, then by killSelection.
        not_running = [i.id for i in rest if not i.running]
        extra = len(rest) - target
        chosen = not_running[:extra]
        chosen += select_kills(
            [(i.id, i.started_at) for i in rest if i.id not in set(chosen)],
            extra - len(chosen),
            kill_selection,
        )
        kills += chosen
        rest = [i for i in rest if i.id not in set(chosen)]
    # Instances being killed keep their slot until the kill is confirmed.
    launch = max(0, target - _occupying(instances, kills))
    done = not kills and launch == 0 and all(i.healthy for i in rest) and _no_dying(instances)
    return Decision(kills, launch, done)


def _no_dying(instances: Sequence[InstanceView]) -> bool:
    return all(i.alive for i in instances)


def capacity(
    instances: int, minimum_health_capacity: float, maximum_over_capacity: float
) -> tuple[int, int]:
    """(minHealthy, maxCapacity) for a restart of ``instances`` instances."""
    min_healthy = math.ceil(instances * minimum_health_capacity)
    max_capacity = int(instances * (1 + maximum_over_capacity))
    if min_healthy == max_capacity:
        max_capacity += 1
    return min_healthy, max(max_capacity, 1)


def restart_decision(
    target: int,
    version: str,
    minimum_health_capacity: float,
    maximum_over_capacity: float,
    instances: Sequence[InstanceView],
) -> Decision:
    """RestartApplication: replace instances of other versions by ``version`` ones."""
    alive = _alive(instances)
    old = sorted((i for i in alive if i.version != version), key=lambda i: (i.started_at, i.id))
    new = [i for i in alive if i.version == version]
    min_healthy, max_capacity = capacity(target, minimum_health_capacity, maximum_over_capacity)
    kills: list[str] = []
    # Old instances known to be broken (not running, or failing checks) go at once.
    broken = [i for i in old if not i.running or i.healthy is False]
    kills += [i.id for i in broken]
    old_healthy = [i for i in old if i.running and i.healthy]
    new_ready = [i for i in new if i.healthy]
    allowed = len(old_healthy) + len(new_ready) - min_healthy
    if len(new_ready) >= target:
        # Replacement complete: every old one goes (unknown health included).
        kills = [i.id for i in old]
    else:
        kills += [i.id for i in old_healthy[: max(0, allowed)]]
    old_left = len(old) - len(kills)
    if len(new) > target:  # more new than wanted (e.g. launched before a failover)
        surplus = sorted(new, key=lambda i: (bool(i.healthy), i.started_at), reverse=False)
        kills += [i.id for i in surplus[: len(new) - target]]
        new_count = target
    else:
        new_count = len(new)
    # Killed-but-unconfirmed instances still count against maxCapacity.
    launch = max(0, min(target - new_count, max_capacity - _occupying(instances, kills)))
    done = (
        not kills
        and old_left == 0
        and new_count == target
        and len(new_ready) >= target
        and _no_dying(instances)
    )
    return Decision(kills, launch, done)


def stop_decision(instances: Sequence[InstanceView]) -> Decision:
    """StopApplication: kill everything; done when nothing is left at all."""
    kills = [i.id for i in _alive(instances)]
    return Decision(kills, 0, not instances)
