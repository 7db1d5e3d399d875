"""Deployment plans and rolling-upgrade arithmetic, pure as Marathon computes them.

``build_plan(original, target, ...)`` follows Marathon's ``DeploymentPlan.apply``:

1. one step stopping every app the target no longer has;
2. one step starting every new app at 0 instances (``StartApplication``);
3. then one step per *dependency layer* of the added-or-changed apps, layered by the length
   of the longest dependency path from each app (an app without dependencies has length 1,
   so it comes first; an app that depends on it has length 2, and so on). In a layer a new
   app is scaled to its instances, a scale-only change is scaled, a config change (or a
   restart, which bumps ``versionInfo.lastConfigChangeAt``) is restarted.

Empty steps are dropped. Actions within a step run in parallel; steps run in order.

``restart_strategy`` and ``instances_to_start`` are Marathon's ``TaskReplaceActor`` rules
for replacing the instances of a restarted app; ``rolling_upgrade_timeline`` plays them out
(every new instance becoming healthy in turn) so the arithmetic can be checked as a table.

Nothing here reads a clock or draws randomness: plan ids and versions are arguments.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Literal

from paddock.marathon.groups import GroupInfo, RootGroup
from paddock.marathon.models import AppDefinition

ActionName = Literal[
    "StartApplication", "StopApplication", "ScaleApplication", "RestartApplication"
]


@dataclass(frozen=True)
class DeploymentAction:
    """One thing to do to one app. ``scale_to``/``kill_tasks`` only for ScaleApplication."""

    action: ActionName
    app: str
    scale_to: int | None = None
    kill_tasks: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "app": self.app}

    def to_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"action": self.action, "app": self.app}
        if self.scale_to is not None:
            rec["scaleTo"] = self.scale_to
        if self.kill_tasks:
            rec["killTasks"] = list(self.kill_tasks)
        return rec

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> DeploymentAction:
        return cls(rec["action"], rec["app"], rec.get("scaleTo"), tuple(rec.get("killTasks", ())))


@dataclass(frozen=True)
class DeploymentStep:
    actions: tuple[DeploymentAction, ...]

    def to_json(self) -> dict[str, Any]:
        return {"actions": [a.to_json() for a in self.actions]}


@dataclass(frozen=True)
class DeploymentPlan:
    """What a deployment will do: from ``original`` to ``target`` in ``steps``."""

    id: str
    version: str
    original: RootGroup
    target: RootGroup
    steps: tuple[DeploymentStep, ...]

    @property
    def affected_apps(self) -> list[str]:
        return sorted({a.app for s in self.steps for a in s.actions})

    @property
    def is_empty(self) -> bool:
        return not self.steps

    def is_affected_by(self, other: DeploymentPlan) -> bool:
        """True when both plans touch a common app (Marathon's deployment lock)."""
        return bool(set(self.affected_apps) & set(other.affected_apps))

    def app_target(self, app_id: str) -> AppDefinition | None:
        return self.target.app(app_id)

    def status_json(self, current_step: int = 0) -> dict[str, Any]:
        """One entry of ``GET /v2/deployments``. ``current_step`` counts from 1 (0 = none yet)."""
        index = min(max(current_step, 1), len(self.steps)) - 1 if self.steps else -1
        current = self.steps[index].actions if index >= 0 else ()
        return {
            "id": self.id,
            "version": self.version,
            "affectedApps": self.affected_apps,
            "affectedPods": [],
            "steps": [s.to_json() for s in self.steps],
            "currentActions": [{**a.to_json(), "readinessCheckResults": []} for a in current],
            "currentStep": current_step,
            "totalSteps": len(self.steps),
        }

    @cached_property
    def full_json(self) -> dict[str, Any]:
        """plan_json() with both roots, rendered once per plan (events reuse it)."""
        return self.plan_json()

    def plan_json(self, *, light: bool = False) -> dict[str, Any]:
        """The plan as events carry it (``plan-format=light`` leaves out the two roots)."""
        out: dict[str, Any] = {
            "id": self.id,
            "version": self.version,
            "steps": [s.to_json() for s in self.steps],
        }
        if not light:
            out["original"] = self.original.to_json()
            out["target"] = self.target.to_json()
        return out

    def to_record(self) -> dict[str, Any]:
        """Steps and identity for the store (the roots are stored as snapshots separately)."""
        return {
            "id": self.id,
            "version": self.version,
            "steps": [[a.to_record() for a in s.actions] for s in self.steps],
        }


# --------------------------------------------------------------------------- planning


def needs_restart(old: AppDefinition, new: AppDefinition) -> bool:
    """A config change, or an explicit restart (a new ``lastConfigChangeAt``)."""
    if not old.config_equal(new):
        return True
    old_change = old.version_info.last_config_change_at if old.version_info else None
    new_change = new.version_info.last_config_change_at if new.version_info else None
    return old_change != new_change


def _same_spec(a: AppDefinition | None, b: AppDefinition | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.model_dump(exclude={"version", "version_info"}) == b.model_dump(
        exclude={"version", "version_info"}
    ) and not needs_restart(a, b)


def longest_path_layers(ids: Iterable[str], root: RootGroup) -> list[list[str]]:
    """Group ``ids`` by the length of the longest dependency path from each (ascending)."""
    graph = root.dependency_map()
    memo: dict[str, int] = {}

    def length(node: str, seen: frozenset[str]) -> int:
        if node in memo:
            return memo[node]
        deps = [d for d in graph.get(node, ()) if d not in seen]
        best = 1 + max((length(d, seen | {node}) for d in deps), default=0)
        memo[node] = best
        return best

    layers: dict[int, list[str]] = {}
    for app_id in sorted(ids):
        layers.setdefault(length(app_id, frozenset()), []).append(app_id)
    return [layers[k] for k in sorted(layers)]


def build_plan(
    original: RootGroup,
    target: RootGroup,
    *,
    plan_id: str,
    version: str,
    to_kill: Mapping[str, Sequence[str]] | None = None,
) -> DeploymentPlan:
    """The steps that take ``original`` to ``target`` (see the module docstring)."""
    to_kill = to_kill or {}
    steps: list[DeploymentStep] = []
    stopped = [a for a in sorted(original.apps) if a not in target.apps]
    steps.append(DeploymentStep(tuple(DeploymentAction("StopApplication", a) for a in stopped)))
    started = [a for a in sorted(target.apps) if a not in original.apps]
    steps.append(
        DeploymentStep(tuple(DeploymentAction("StartApplication", a, scale_to=0) for a in started))
    )
    changed = [
        a
        for a in sorted(target.apps)
        if not _same_spec(original.app(a), target.app(a)) or a in to_kill
    ]
    for layer in longest_path_layers(changed, target):
        actions: list[DeploymentAction] = []
        for app_id in layer:
            new = target.apps[app_id]
            old = original.app(app_id)
            if old is None:
                actions.append(DeploymentAction("ScaleApplication", app_id, new.instances))
            elif not needs_restart(old, new) or new.instances == 0:
                actions.append(
                    DeploymentAction(
                        "ScaleApplication", app_id, new.instances, tuple(to_kill.get(app_id, ()))
                    )
                )
            else:
                actions.append(DeploymentAction("RestartApplication", app_id))
        steps.append(DeploymentStep(tuple(actions)))
    return DeploymentPlan(
        id=plan_id,
        version=version,
        original=original,
        target=target,
        steps=tuple(s for s in steps if s.actions),
    )


def revert_root(plan: DeploymentPlan, current: RootGroup, version: str) -> RootGroup:
    """``current`` with ``plan``'s changes undone (Marathon's DeploymentPlanReverter).

    Apps the plan added go away, apps it removed come back, apps it changed get their
    original definition back; groups the plan added go away once empty, groups it removed
    come back, changed group dependencies are restored. Changes of other deployments stay.
    """
    root = current
    for app_id in sorted(set(plan.original.apps) | set(plan.target.apps)):
        old, new = plan.original.app(app_id), plan.target.app(app_id)
        if old == new:
            continue
        if old is None:
            root = root.without_app(app_id, version)
        else:
            root = root.with_app(old, version)
    for gid in sorted(set(plan.original.groups) | set(plan.target.groups), reverse=True):
        old_g, new_g = plan.original.group(gid), plan.target.group(gid)
        if old_g is None and new_g is not None:
            if not root.apps_under(gid) and not root.child_groups(gid):
                root = root.without_group(gid, version)
        elif old_g is not None and (new_g is None or old_g.dependencies != new_g.dependencies):
            have = root.group(gid) or GroupInfo(gid)
            root = root.with_group(replace(have, dependencies=old_g.dependencies), version)
    return replace(root, version=version)


# --------------------------------------------------------------------------- rolling upgrades


@dataclass(frozen=True)
class RestartStrategy:
    """How a restart begins: old instances killed at once, and the instance ceiling."""

    kill_immediately: int
    max_capacity: int


def restart_strategy(
    instances: int,
    minimum_health_capacity: float,
    maximum_over_capacity: float,
    *,
    healthy_running: int,
    current_count: int | None = None,
    resident: bool = False,
) -> RestartStrategy:
    """Marathon's ``computeRestartStrategy``.

    minHealthy = ceil(instances * minimumHealthCapacity);
    maxCapacity = floor(instances * (1 + maximumOverCapacity));
    kill max(0, healthy - minHealthy) at once. When minHealthy == maxCapacity and the app
    already fills it, nothing could start: allow one extra instance (a resident app, which
    cannot exceed its reservations, kills one more instead). An app shrinking in the same
    restart may kill every instance above its new count at once.
    """
    current = healthy_running if current_count is None else current_count
    min_healthy = math.ceil(instances * minimum_health_capacity)
    max_capacity = int(instances * (1 + maximum_over_capacity))
    kill = max(0, healthy_running - min_healthy)
    if min_healthy == max_capacity and max_capacity <= healthy_running:
        if resident:
            kill = healthy_running - min_healthy + 1
        else:
            max_capacity += 1
    if instances < current:
        kill = max(current - instances, kill)
    return RestartStrategy(kill_immediately=kill, max_capacity=max(max_capacity, 1))


def instances_to_start(
    strategy: RestartStrategy, instances: int, old_active: int, started: int
) -> int:
    """How many new instances a restart may launch now (``launchInstances``)."""
    left_capacity = max(0, strategy.max_capacity - old_active - started)
    not_started = max(0, instances - started)
    return min(not_started, left_capacity)


@dataclass(frozen=True)
class RollingPoint:
    """State after one event of a simulated restart: counts of old and new instances."""

    event: str
    old: int
    new: int


@dataclass
class _Rolling:
    old: int
    started: int = 0
    healthy_new: int = 0
    points: list[RollingPoint] = field(default_factory=list)


def rolling_upgrade_timeline(
    instances: int,
    minimum_health_capacity: float,
    maximum_over_capacity: float,
    old_running: int | None = None,
) -> list[RollingPoint]:
    """Play out a restart in which each new instance becomes healthy in turn.

    Returns the (old, new) counts after: the immediate kills, each launch batch, and each
    "new instance healthy -> kill one old -> launch what capacity allows" round, until only
    new instances remain. Useful to check capacity bounds: ``old + new`` never exceeds
    ``max_capacity`` and healthy instances never drop below ``minHealthy`` (while the old
    ones last).
    """
    old = instances if old_running is None else old_running
    strategy = restart_strategy(
        instances, minimum_health_capacity, maximum_over_capacity, healthy_running=old
    )
    st = _Rolling(old=old)
    st.old -= min(st.old, strategy.kill_immediately)
    st.points.append(RollingPoint("kill-immediately", st.old, 0))
    n = instances_to_start(strategy, instances, st.old, st.started)
    st.started += n
    st.points.append(RollingPoint("launch", st.old, st.started))
    guard = 0
    while st.healthy_new < instances or st.old > 0:
        guard += 1
        if guard > 10 * (instances + old + 2):
            raise RuntimeError("rolling upgrade does not make progress")  # pragma: no cover
        if st.healthy_new < st.started:
            st.healthy_new += 1  # one new instance turns healthy (and ready)
            if st.old > 0:
                st.old -= 1
            st.points.append(RollingPoint("healthy-kill-old", st.old, st.started))
        n = instances_to_start(strategy, instances, st.old, st.started)
        if n:
            st.started += n
            st.points.append(RollingPoint("launch", st.old, st.started))
        elif st.healthy_new >= st.started and st.old > 0 and st.started >= instances:
            st.old -= 1  # extra old instances beyond the target go away
            st.points.append(RollingPoint("kill-extra-old", st.old, st.started))
    return st.points


def select_kills(
    tasks: Sequence[tuple[str, str]], count: int, kill_selection: str, sentenced: Iterable[str] = ()
) -> list[str]:
    """Which tasks a scale-down kills: the sentenced ones first, then by killSelection.

    ``tasks`` are (task id, started-at ISO timestamp) pairs; YOUNGEST_FIRST kills the most
    recently started, OLDEST_FIRST the longest running.
    """
    chosen = [t for t in sentenced if any(t == tid for tid, _ in tasks)][:count]
    rest = [t for t in tasks if t[0] not in chosen]
    rest.sort(key=lambda t: (t[1], t[0]), reverse=kill_selection == "YOUNGEST_FIRST")
    chosen += [tid for tid, _ in rest[: max(0, count - len(chosen))]]
    return chosen


def launch_delay(
    backoff_seconds: float, backoff_factor: float, max_launch_delay_seconds: float, failures: int
) -> float:
    """The launch delay after ``failures`` consecutive failures (Marathon's RateLimiter)."""
    if failures <= 0:
        return 0.0
    delay = float(backoff_seconds)
    for _ in range(failures - 1):
        delay = min(delay * backoff_factor, max_launch_delay_seconds)
        if delay >= max_launch_delay_seconds:
            break
    return min(delay, float(max_launch_delay_seconds))
