"""What the Marathon API does, without HTTP: desired-state changes become deployments.

Every change (create, update, scale, restart, delete, group edits, rollbacks) goes
through :meth:`MarathonService.deploy`: compute the target root from the current one,
plan the deployment, refuse if a running deployment holds an affected app (unless
``force``), commit root and deployment record to the store in one compare-and-set
transaction, then hand the plan to the scheduler (``scheduler_iface.MarathonCore``).
A lost compare-and-set (another marathon wrote first) reloads and recomputes.

The current root and the running deployments are cached here; only the leader serves
the API (standbys proxy), and every write is checked against the store, so the cache
cannot silently diverge. The service is synchronous (kazoo); the HTTP layer calls it
from worker threads. One re-entrant lock serialises changes and scheduler callbacks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from kazoo.exceptions import NoNodeError

from paddock.marathon.errors import (
    AppLocked,
    BadRequest,
    Conflict,
    Forbidden,
    MarathonApiError,
    NotFound,
    iso_ms,
    parse_iso,
)
from paddock.marathon.events import EventBus
from paddock.marathon.groups import GroupUpdate, RootGroup, apply_group_update, is_under
from paddock.marathon.models import (
    AppDefinition,
    InvalidObject,
    Task,
    VersionInfo,
    Violation,
    app_id_from_task_id,
    canonical_path,
    parent_path,
)
from paddock.marathon.planner import DeploymentPlan, build_plan, revert_root
from paddock.marathon.scheduler_iface import MarathonCore
from paddock.marathon.service_ports import NoFreePorts, assign_service_ports
from paddock.marathon.store import MarathonStore, StoreConflict, StoreCorrupt
from paddock.marathon.validation import checked_app

log = logging.getLogger(__name__)

__all__ = [
    "AppLocked",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "MarathonApiError",
    "MarathonService",
    "NotFound",
    "RunningDeployment",
    "iso_ms",
    "parse_iso",
]

READ_ONLY_APP_FIELDS = (
    "version",
    "versionInfo",
    "tasks",
    "tasksRunning",
    "tasksStaged",
    "tasksHealthy",
    "tasksUnhealthy",
    "deployments",
    "lastTaskFailure",
    "readinessCheckResults",
    "taskStats",
    "tasksStats",
)


@dataclass
class RunningDeployment:
    plan: DeploymentPlan
    current_step: int = 0


class MarathonService:
    """Apps, groups and deployments over a store and a scheduler core."""

    def __init__(
        self,
        store: MarathonStore,
        core: MarathonCore,
        *,
        bus: EventBus | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        rng: random.Random | None = None,
        max_running_deployments: int = 100,
        service_ports: tuple[int, int] = (10000, 20000),
        max_commit_attempts: int = 8,
    ) -> None:
        self.store = store
        self.core = core
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.bus = bus or EventBus(lambda: iso_ms(self.clock()))
        self.rng = rng or random.Random()
        self.max_running_deployments = max_running_deployments
        self.service_ports = service_ports
        self.max_commit_attempts = max_commit_attempts
        self._lock = threading.RLock()
        self._root = RootGroup.empty()
        self._token = 0
        self._running: dict[str, RunningDeployment] = {}
        self._unremoved: set[str] = set()  # finished deployments whose record removal failed
        self._last_version = ""

    # -- life cycle ------------------------------------------------------------------

    def start(self, *, resume: bool = True) -> None:
        """Load state and hand stored deployments back to the scheduler (after failover)."""
        with self._lock:
            self.store.ensure_layout()
            self._reload()
            self.core.attach(self)
            plans = [d.plan for d in self._running.values()]
        if resume:
            for plan in plans:
                self.core.start_deployment(plan)

    def become_leader(self) -> None:
        """Call when this marathon is elected: a standby's cached state is stale (it
        proxied every request), so reload it, then resume the stored deployments."""
        with self._lock:
            self._reload()
            plans = [d.plan for d in self._running.values()]
        for plan in plans:
            self.core.start_deployment(plan)

    def _reload(self) -> None:
        self._root, self._token = self.store.load_root()
        running: dict[str, RunningDeployment] = {}
        for stored in self.store.deployments():
            try:
                plan = self.store.plan_of(stored)
            except (KeyError, StoreCorrupt) as exc:
                # A record whose roots are gone cannot be resumed; keeping it would stop
                # every leader from taking over. The current root stays the truth, and
                # the scheduler converges to it without the plan.
                log.error("dropping deployment %s: its plan cannot be rebuilt (%s)",
                          stored.id, exc)  # fmt: skip
                self._remove_record(stored.id)
                continue
            running[plan.id] = RunningDeployment(plan, stored.current_step)
        self._running = running

    def _remove_record(self, dep_id: str) -> None:
        """Remove a finished deployment's record; if the coordination service fails, the
        removal is retried after the next commit (and the record's roots are kept)."""
        try:
            self.store.remove_deployment(dep_id)
        except Exception as exc:  # kazoo's ConnectionLoss, SessionExpired, timeouts...
            log.warning("removing deployment record %s failed (%r); retrying later",
                        dep_id, exc)  # fmt: skip
            self._unremoved.add(dep_id)
        else:
            self._unremoved.discard(dep_id)

    # -- ids and versions ------------------------------------------------------------

    def now(self) -> str:
        return iso_ms(self.clock())

    def new_version(self) -> str:
        """A timestamp version later than every version handed out or stored."""
        now = self.clock()
        floor = max(self._root.version, self._last_version)
        if floor and iso_ms(now) <= floor:
            now = parse_iso(floor) + dt.timedelta(milliseconds=1)
        self._last_version = iso_ms(now)
        return self._last_version

    def new_id(self) -> str:
        bits = self.rng.getrandbits(128)
        h = f"{bits:032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"

    # -- reads -----------------------------------------------------------------------

    @property
    def root(self) -> RootGroup:
        return self._root

    def app(self, app_id: str) -> AppDefinition:
        app = self._root.app(canonical_path(app_id))
        if app is None:
            raise NotFound(f"App '{canonical_path(app_id)}' does not exist")
        return app

    def running_deployments(self) -> list[RunningDeployment]:
        with self._lock:
            return sorted(self._running.values(), key=lambda d: (d.plan.version, d.plan.id))

    def deployments_of(self, app_id: str) -> list[str]:
        with self._lock:
            return sorted(
                d.plan.id for d in self._running.values() if app_id in d.plan.affected_apps
            )

    # -- the write path --------------------------------------------------------------

    def deploy(
        self,
        change: Callable[[RootGroup, str], RootGroup],
        *,
        force: bool = False,
        to_kill: dict[str, list[str]] | None = None,
        dry_run: bool = False,
        replaces: Iterable[str] = (),
        announce: Callable[[DeploymentPlan], None] | None = None,
    ) -> DeploymentPlan:
        """Apply ``change`` (current root, new version -> target root) as a deployment."""
        with self._lock:
            for _attempt in range(self.max_commit_attempts):
                original = self._root
                version = self.new_version()
                target = change(original, version)
                clash = sorted(set(target.apps) & set(target.groups))
                if clash:
                    kind = "An app" if clash[0] in original.apps else "A group"
                    raise Conflict(f"{kind} with id [{clash[0]}] already exists.")
                target = self._assign_service_ports(original, target)
                cycle = target.dependency_cycle()
                if cycle:
                    raise InvalidObject(
                        [Violation(path="/", errors=["Dependency graph has cyclic dependencies."])]
                    )
                plan = build_plan(
                    original, target, plan_id=self.new_id(), version=version, to_kill=to_kill
                )
                if dry_run:
                    return plan
                replaced = [r for r in replaces if r in self._running]
                conflicts = [
                    d.plan.id
                    for d in self._running.values()
                    if d.plan.id not in replaced and d.plan.is_affected_by(plan)
                ]
                if conflicts and not force:
                    raise AppLocked(conflicts)
                dropped = replaced + (conflicts if force else [])
                if plan.steps and len(self._running) - len(dropped) >= self.max_running_deployments:
                    raise Forbidden(
                        f"Max deployments reached ({self.max_running_deployments}); "
                        "wait for running deployments or cancel some"
                    )
                try:
                    token = self.store.commit(
                        original,
                        target,
                        self._token,
                        deployment=plan if plan.steps else None,
                        delete_deployments=dropped,
                    )
                except StoreConflict:
                    self._reload()
                    continue
                self._root, self._token = target, token
                self._prune(plan)
                for dep_id in dropped:
                    self.core.cancel_deployment(dep_id)
                    self._running.pop(dep_id, None)
                if announce is not None:
                    announce(plan)  # e.g. api_post_event, before any deployment event
                self.publish("group_change_success", {"groupId": "/", "version": version})
                if plan.steps:
                    self._running[plan.id] = RunningDeployment(plan)
                    self.core.start_deployment(plan)
                else:
                    self.publish("deployment_success", {"id": plan.id, "plan": plan})
                return plan
            raise Conflict("The state changed concurrently too often; try again")

    def _prune(self, plan: DeploymentPlan) -> None:
        """Drop versions beyond the store's limit for the apps this change touched.

        Best effort: a failure here loses nothing (the next change prunes again)."""
        keep = {d.plan.original.version for d in self._running.values()}
        keep |= {d.plan.target.version for d in self._running.values()}
        keep |= {plan.original.version}
        touched = set(plan.original.apps) ^ set(plan.target.apps)
        touched |= {a for a, app in plan.target.apps.items() if plan.original.app(a) != app}
        for dep_id in sorted(self._unremoved - set(self._running)):
            self._remove_record(dep_id)
        try:
            self.store.prune(
                keep_roots=keep,
                app_ids=touched,
                known_deployments={*self._running, plan.id},  # roots kept above / current
            )
        except Exception:
            log.warning("pruning old versions failed", exc_info=True)

    def _assign_service_ports(self, original: RootGroup, target: RootGroup) -> RootGroup:
        try:
            return assign_service_ports(original, target, self.service_ports)
        except NoFreePorts as exc:
            raise Forbidden(str(exc)) from None

    # -- apps ------------------------------------------------------------------------

    def stamp(self, app: AppDefinition, version: str, old: AppDefinition | None) -> AppDefinition:
        """Give an app its version; a config change (or a new app) moves
        lastConfigChangeAt, a scale only lastScalingAt."""
        config_change = old is None or not old.config_equal(app)
        last_config = (
            version
            if config_change or old is None or old.version_info is None
            else old.version_info.last_config_change_at
        )
        return app.model_copy(
            update={
                "version": version,
                "version_info": VersionInfo(
                    last_scaling_at=version, last_config_change_at=last_config
                ),
            }
        )

    def create_app(
        self,
        app: AppDefinition,
        *,
        force: bool = False,
        announce: Callable[[DeploymentPlan], None] | None = None,
    ) -> DeploymentPlan:
        def change(root: RootGroup, version: str) -> RootGroup:
            if root.app(app.id) is not None:
                raise Conflict(f"An app with id [{app.id}] already exists.")
            if app.id in root.groups:
                raise Conflict(f"A group with id [{app.id}] already exists.")
            for gid in _ancestor_ids(app.id):
                if root.app(gid) is not None:
                    raise Conflict(f"An app with id [{gid}] already exists.")
            return root.with_app(self.stamp(app, version, None), version)

        return self.deploy(change, force=force, announce=announce)

    def updated_app(
        self, app_id: str, body: dict[str, Any], *, partial: bool = True
    ) -> AppDefinition | None:
        """The app after a PUT/PATCH body (None when the body is only a rollback version).

        Fields the body names replace the stored ones; the rest stay (Marathon's
        partial update). A body for an app that does not exist must be complete.
        """
        existing = self._root.app(app_id) if partial else None
        merged: dict[str, Any] = {}
        if existing is not None:
            merged = existing.to_json()
        for key, value in body.items():
            if key not in READ_ONLY_APP_FIELDS:
                merged[key] = value
        merged["id"] = app_id
        if existing is not None and body.get("container") is not None:
            # A new container may change networking: derive networks and ports afresh
            # unless the body names them too.
            for derived in ("networks", "portDefinitions"):
                if derived not in body:
                    merged.pop(derived, None)
        return checked_app(merged, base=parent_path(app_id))

    def update_app(
        self,
        app_id: str,
        body: dict[str, Any],
        *,
        force: bool = False,
        partial: bool = True,
        announce: Callable[[DeploymentPlan], None] | None = None,
    ) -> tuple[DeploymentPlan, bool]:
        """PUT/PATCH /v2/apps/{id}: returns the plan and whether the app was created."""
        app_id = canonical_path(app_id)
        version_only = set(body) <= {"version", "id"} and "version" in body
        if "version" in body and not version_only and body["version"] is not None:
            others = sorted(set(body) - set(READ_ONLY_APP_FIELDS) - {"id"})
            if others:
                raise InvalidObject(
                    [
                        Violation(
                            path="/",
                            errors=[
                                "The 'version' field may only be combined with the 'id' field."
                            ],
                        )
                    ]
                )
        if version_only:
            plan = self.rollback_app(app_id, str(body["version"]), force=force, announce=announce)
            return plan, False
        app = self.updated_app(app_id, body, partial=partial)
        assert app is not None
        created = self._root.app(app_id) is None

        def change(root: RootGroup, version: str) -> RootGroup:
            return root.with_app(self.stamp(app, version, root.app(app_id)), version)

        return self.deploy(change, force=force, announce=announce), created

    def update_apps(self, bodies: list[dict[str, Any]], *, force: bool = False) -> DeploymentPlan:
        """PUT/PATCH /v2/apps: many apps, one deployment."""
        apps = []
        for body in bodies:
            if "id" not in body or not isinstance(body["id"], str):
                raise BadRequest("Each app in a bulk update needs an id")
            app_id = canonical_path(body["id"])
            app = self.updated_app(app_id, body)
            assert app is not None
            apps.append(app)

        def change(root: RootGroup, version: str) -> RootGroup:
            for app in apps:
                root = root.with_app(self.stamp(app, version, root.app(app.id)), version)
            return root

        return self.deploy(change, force=force)

    def rollback_app(
        self,
        app_id: str,
        version: str,
        *,
        force: bool = False,
        announce: Callable[[DeploymentPlan], None] | None = None,
    ) -> DeploymentPlan:
        old = self.store.app_version(app_id, version)
        if old is None:
            raise NotFound(f"App '{app_id}' does not exist in version {version}")

        def change(root: RootGroup, v: str) -> RootGroup:
            current = root.app(app_id)
            return root.with_app(self.stamp(old, v, current), v)

        return self.deploy(change, force=force, announce=announce)

    def delete_app(self, app_id: str, *, force: bool = False) -> DeploymentPlan:
        app_id = canonical_path(app_id)
        self.app(app_id)

        def change(root: RootGroup, version: str) -> RootGroup:
            if root.app(app_id) is None:
                raise NotFound(f"App '{app_id}' does not exist")
            return root.without_app(app_id, version)

        plan = self.deploy(change, force=force)
        self.store.clear_task_failure(app_id)
        return plan

    def restart_app(self, app_id: str, *, force: bool = False) -> DeploymentPlan:
        app_id = canonical_path(app_id)
        self.app(app_id)

        def change(root: RootGroup, version: str) -> RootGroup:
            current = root.app(app_id)
            if current is None:
                raise NotFound(f"App '{app_id}' does not exist")
            restarted = current.model_copy(
                update={
                    "version": version,
                    "version_info": VersionInfo(
                        last_scaling_at=version, last_config_change_at=version
                    ),
                }
            )
            return root.with_app(restarted, version)

        return self.deploy(change, force=force)

    # -- tasks -----------------------------------------------------------------------

    def kill_tasks(
        self, tasks: list[Task], *, scale: bool, wipe: bool, force: bool = False
    ) -> DeploymentPlan | list[Task]:
        """Kill tasks; with ``scale`` the apps shrink by as many, in one deployment."""
        if not scale:
            return self.core.kill_tasks(tasks, wipe=wipe)
        by_app: dict[str, list[str]] = {}
        for t in tasks:
            by_app.setdefault(t.app_id, []).append(t.id)

        def change(root: RootGroup, version: str) -> RootGroup:
            for app_id, ids in sorted(by_app.items()):
                app = root.app(app_id)
                if app is None:
                    continue
                scaled = app.model_copy(update={"instances": max(0, app.instances - len(ids))})
                root = root.with_app(self.stamp(scaled, version, app), version)
            return root

        return self.deploy(change, force=force, to_kill=by_app)

    def tasks_by_ids(self, ids: list[str]) -> list[Task]:
        """The known tasks among ``ids``; a malformed id is a 400 (as in Marathon)."""
        wanted: dict[str, set[str]] = {}
        for task_id in ids:
            if not isinstance(task_id, str) or "." not in task_id or task_id.startswith("."):
                raise BadRequest(f"Invalid task id '{task_id}'.")
            wanted.setdefault(app_id_from_task_id(task_id), set()).add(task_id)
        found: list[Task] = []
        for app_id, want in sorted(wanted.items()):
            found += [t for t in self.core.tasks(app_id) if t.id in want]
        return found

    # -- groups ----------------------------------------------------------------------

    def group_exists(self, group_id: str) -> bool:
        return canonical_path(group_id) in self._root.groups

    def create_group(self, update: GroupUpdate, *, force: bool = False) -> DeploymentPlan:
        def change(root: RootGroup, version: str) -> RootGroup:
            if update.id in root.groups and update.id != "/":
                raise Conflict(
                    f"Group {update.id} is already created. Use PUT to change this group."
                )
            if root.app(update.id) is not None:
                raise Conflict(f"An app with id [{update.id}] already exists.")
            return apply_group_update(root, update, version, self._stamper(root, version))

        return self.deploy(change, force=force)

    def update_group(
        self, update: GroupUpdate, *, force: bool = False, dry_run: bool = False
    ) -> DeploymentPlan:
        gid = update.id

        def change(root: RootGroup, version: str) -> RootGroup:
            if update.version is not None:
                return self._group_at_version(root, gid, update.version, version)
            if update.scale_by is not None:
                if gid not in root.groups:
                    raise NotFound(f"Group '{gid}' does not exist")
                return _restamp_scaled(
                    root, root.scaled(gid, update.scale_by, version), self, version
                )
            return apply_group_update(root, update, version, self._stamper(root, version))

        return self.deploy(change, force=force, dry_run=dry_run)

    def _stamper(self, root: RootGroup, version: str) -> Callable[[AppDefinition], AppDefinition]:
        return lambda app: self.stamp(app, version, root.app(app.id))

    def _group_at_version(self, root: RootGroup, gid: str, old_version: str, v: str) -> RootGroup:
        try:
            old_root = self.store.root_at(old_version)
        except KeyError:
            raise NotFound(f"Group '{gid}' does not exist in version {old_version}") from None
        if gid not in old_root.groups:
            raise NotFound(f"Group '{gid}' does not exist in version {old_version}")
        target = root.without_group(gid, v)
        for app in old_root.apps_under(gid):
            target = target.with_app(app, v)
        for gid2, info in sorted(old_root.groups.items()):
            if gid2 == gid or is_under(gid2, gid):
                target = target.with_group(info, v)
        return target

    def delete_group(self, group_id: str, *, force: bool = False) -> DeploymentPlan:
        gid = canonical_path(group_id)
        if gid not in self._root.groups:
            raise NotFound(f"Group '{gid}' does not exist")
        return self.deploy(lambda root, v: root.without_group(gid, v), force=force)

    # -- deployments -----------------------------------------------------------------

    def cancel_deployment(self, dep_id: str, *, force: bool) -> DeploymentPlan | None:
        """DELETE /v2/deployments/{id}: roll back (a new deployment), or just stop (force)."""
        with self._lock:
            running = self._running.get(dep_id)
            if running is None:
                raise NotFound(f"DeploymentPlan {dep_id} does not exist")
            if force:
                self.core.cancel_deployment(dep_id)
                self._running.pop(dep_id, None)
                self.store.remove_deployment(dep_id)
                self.publish(
                    "deployment_failed",
                    {"id": dep_id, "plan": running.plan, "reason": "canceled"},
                )
                return None
            plan = running.plan
            return self.deploy(
                lambda root, v: revert_root(plan, root, v), force=True, replaces=[dep_id]
            )

    # -- hooks for the scheduler (scheduler_iface.CoreHooks) --------------------------

    def deployment_step_started(self, plan_id: str, step: int) -> None:
        with self._lock:
            running = self._running.get(plan_id)
            if running is None or not 1 <= step <= len(running.plan.steps):
                return  # unknown plan (cancelled meanwhile) or a step it does not have
            if step == running.current_step:
                return  # repeated report (e.g. a resumed deployment re-running its step)
            if 1 <= running.current_step <= len(running.plan.steps):
                self.publish(
                    "deployment_step_success",
                    {
                        "plan": running.plan,
                        "currentStep": running.plan.steps[running.current_step - 1].to_json(),
                    },
                )
            running.current_step = step
            with contextlib.suppress(NoNodeError):  # record gone: force-cancelled meanwhile
                self.store.set_deployment_step(plan_id, step)
            self.publish(
                "deployment_info",
                {
                    "plan": running.plan,
                    "currentStep": running.plan.steps[step - 1].to_json(),
                },
            )

    def deployment_finished(self, plan_id: str, success: bool, reason: str = "") -> None:
        with self._lock:
            running = self._running.pop(plan_id, None)
            self._remove_record(plan_id)
            if running is None:
                return
            plan_json = running.plan  # rendered lazily by the event stream
            if success:
                if running.plan.steps:
                    self.publish(
                        "deployment_step_success",
                        {"plan": plan_json, "currentStep": running.plan.steps[-1].to_json()},
                    )
                self.publish("deployment_success", {"id": plan_id, "plan": plan_json})
            else:
                self.publish(
                    "deployment_failed", {"id": plan_id, "plan": plan_json, "reason": reason}
                )

    def current_app(self, app_id: str) -> AppDefinition | None:
        return self._root.app(app_id)

    def publish(self, event_type: str, payload: dict[str, Any]) -> None:
        self.bus.publish(event_type, payload)


def _ancestor_ids(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def _restamp_scaled(
    before: RootGroup, after: RootGroup, service: MarathonService, version: str
) -> RootGroup:
    apps = {
        a: service.stamp(app, version, before.app(a))
        if before.app(a) is not None and before.apps[a].instances != app.instances
        else app
        for a, app in after.apps.items()
    }
    return replace(after, apps=apps)
