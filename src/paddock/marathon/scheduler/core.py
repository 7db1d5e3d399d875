"""The real scheduling core: ``scheduler_iface.MarathonCore`` over a Mesos master.

Threading: the core lives on one asyncio loop (the daemon's). The API calls its
``MarathonCore`` methods from worker threads; those only touch in-memory state under
``self._lock`` (never blocking, never calling back into the service) and poke the loop.
Everything that talks to the master, the store or the service's hooks runs on the loop
(blocking store and hook calls via ``asyncio.to_thread``), never while holding the lock.

What runs is decided level-triggered in :meth:`_drive`: on every change (status update,
health result, new deployment, offers) and at least once a second, the deployments'
current steps are evaluated with ``deployment_executor`` against the instances as they
are, apps outside any deployment are kept at their instance count (replacing failed
tasks, with backoff), tasks of apps that no longer exist are killed, and the launch queue
is set to what is missing. Offers are matched against that queue.

Only a leader that is subscribed and whose coordination session is CONNECTED acts
(``acting``): on SUSPENDED the daemon clears it at once, so no launch or kill leaves this
process until the session is back (or lost, and the process exits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from paddock.marathon.models import (
    AppDefinition,
    HealthCheckResult,
    IpAddress,
    Task,
    TaskFailure,
)
from paddock.marathon.planner import DeploymentPlan
from paddock.marathon.scheduler import deployment_executor as dx
from paddock.marathon.scheduler.health import HealthChecker, HealthState, ReadinessChecker
from paddock.marathon.scheduler.instances import (
    BACKOFF_STATES,
    FAILURES,
    TERMINAL,
    Instance,
    PlanRun,
    TrackedTask,
    changed_task,
    tracked,
)
from paddock.marathon.scheduler.launch_queue import LaunchQueue
from paddock.marathon.scheduler.matcher import Match, Offer, Placement, consume, match_offer
from paddock.marathon.scheduler.status_writer import StatusWriter
from paddock.marathon.scheduler.taskinfo import build_task_info, new_task_id
from paddock.marathon.scheduler_iface import CoreHooks, LeaderInfo, QueueEntry, TaskCounts
from paddock.marathon.store import MarathonStore

log = logging.getLogger(__name__)

KILL_RETRY_SECONDS = 10.0
REVIVE_MIN_INTERVAL = 1.0
DRIVE_MIN_INTERVAL = 0.25


class SchedulerCore:
    """Runs apps on a Mesos master (see the module docstring)."""

    def __init__(
        self,
        store: MarathonStore,
        *,
        advertised: str,
        clock: Callable[[], str],
        rng: random.Random | None = None,
        role: str = "*",
        monotonic: Callable[[], float] = time.monotonic,
        task_launch_timeout: float = 300.0,
    ) -> None:
        self.store = store
        self.advertised = advertised
        self.clock = clock
        self.rng = rng or random.Random()
        self.role = role
        self.monotonic = monotonic
        self.task_launch_timeout = task_launch_timeout
        self._lock = threading.RLock()
        self._hooks: CoreHooks | None = None
        self._instances: dict[str, Instance] = {}
        self._by_app: dict[str, set[str]] = {}
        self._plans: dict[str, PlanRun] = {}
        self._counts: dict[str, TaskCounts] = {}  # per app, dropped on every change
        self.writer = StatusWriter(store, self._call, lambda: self.acting)
        self._background: set[asyncio.Task[Any]] = set()
        self.max_update_lag = 0.0
        self._lag_warned = -1e9
        self.queue_state = LaunchQueue()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self.health = HealthChecker(self._on_health, clock, monotonic)
        self.readiness = ReadinessChecker(self._on_ready)
        # Set by the daemon: who leads, whether we act, how to abdicate, the master.
        self.elected = False
        self.acting = False
        self.leader_address: str | None = None
        self.abdicate_fn: Callable[[], bool] | None = None
        self.call: Callable[[str, dict[str, Any] | None], Any] | None = None
        self._suppressed = False
        self._revive_pending = False
        self._last_revive = -1e9
        self._last_wanted: dict[str, int] = {}
        self._driver: asyncio.Task[None] | None = None
        self.loaded = False

    # ------------------------------------------------------------------ MarathonCore

    @property
    def hooks(self) -> CoreHooks:
        if self._hooks is None:
            raise RuntimeError("SchedulerCore used before attach()")
        return self._hooks

    def attach(self, hooks: CoreHooks) -> None:
        self._hooks = hooks

    def start_deployment(self, plan: DeploymentPlan) -> None:
        step = 0
        running = getattr(self._hooks, "running_deployments", None)
        if callable(running):  # resuming after a failover: continue at the stored step
            for d in running():
                if d.plan.id == plan.id and d.current_step > 0:
                    step = d.current_step - 1
        with self._lock:
            self._plans[plan.id] = PlanRun(plan, step, announced=step if step else -1)
            self._counts.clear()  # checks may have changed with the definitions
            for app_id in plan.affected_apps:
                self.queue_state.reset(app_id)  # a new deployment resets the backoff
        self.poke()

    def cancel_deployment(self, plan_id: str) -> None:
        with self._lock:
            self._plans.pop(plan_id, None)
        self.poke()

    def tasks(self, app_id: str | None = None) -> list[Task]:
        with self._lock:
            if app_id is not None:
                ids = sorted(self._by_app.get(app_id, ()))
                return [self._instances[i].task for i in ids]
            return [self._instances[i].task for i in sorted(self._instances)]

    def task_counts(self, app_id: str) -> TaskCounts:
        with self._lock:
            cached = self._counts.get(app_id)
            if cached is None:
                cached = self._counts[app_id] = self._count(app_id)
            return cached

    def _count(self, app_id: str) -> TaskCounts:
        with self._lock:
            staged = running = healthy = unhealthy = 0
            ids = self._by_app.get(app_id, ())
            if not ids:
                return TaskCounts()
            kinds = self._check_kinds(self._app_of(self._instances[next(iter(ids))]))
            for tid in ids:
                inst = self._instances[tid]
                state = inst.task.state
                if state in ("TASK_STAGING", "TASK_STARTING"):
                    staged += 1
                elif state == "TASK_RUNNING":
                    running += 1
                    if any(kinds):
                        h = self._health_of(inst, kinds)
                        if h is True:
                            healthy += 1
                        elif h is False:
                            unhealthy += 1
            return TaskCounts(staged, running, healthy, unhealthy)

    def kill_tasks(self, tasks: list[Task], *, wipe: bool) -> list[Task]:
        killed = []
        with self._lock:
            for t in tasks:
                inst = self._instances.get(t.id)
                if inst is not None:
                    inst.killing = True
                    inst.kill_sent = 0.0
                    killed.append(inst.task)
        self.poke()
        return killed

    def queue(self) -> list[QueueEntry]:
        now = self.monotonic()
        with self._lock:
            out = []
            for app_id, entry in sorted(self.queue_state.entries.items()):
                if entry.count <= 0:  # all launched since the last pass
                    continue
                left = self.queue_state.delay_left(app_id, now)
                out.append(
                    QueueEntry(
                        app_id=app_id,
                        count=entry.count,
                        since=entry.since,
                        delay_seconds_left=round(left, 3),
                        overdue=left <= 0,
                        processed_offers_summary=entry.summary.to_json(),
                        last_unused_offers=list(entry.summary.last_unused_offers),
                    )
                )
            return out

    def reset_delay(self, app_id: str) -> bool:
        with self._lock:
            had = self.queue_state.reset(app_id)
        self.poke()
        return had or app_id in self.queue_state.entries

    def leader(self) -> LeaderInfo:
        if self.elected:
            return LeaderInfo(self.advertised, True)
        return LeaderInfo(self.leader_address, False)

    def abdicate(self) -> bool:
        if not self.elected or self.abdicate_fn is None:
            return False
        return self.abdicate_fn()

    def framework_id(self) -> str | None:
        return self.store.framework_id()

    # ------------------------------------------------------------------ life cycle

    def load_instances(self) -> None:
        """Read the instances the store knows (blocking; before subscribing)."""
        tasks = self.store.all_instances()
        with self._lock:
            self._instances.clear()
            self._by_app.clear()
            for t in tasks:
                inst = Instance(tracked(t), t.slave_id)
                if t.state == "TASK_RUNNING":
                    inst.started_mono = self.monotonic() - 3600.0  # started long ago
                self._add(inst)
            self.loaded = True

    def start_known_checks(self) -> None:
        """Start health checks for the RUNNING instances loaded from the store (on the
        loop), so a new leader learns their health without waiting for updates."""
        with self._lock:
            pairs = [(i, self._app_of(i)) for i in self._instances.values()]
        for inst, app in pairs:
            if app is not None and inst.task.state == "TASK_RUNNING":
                self._start_checks(inst, app)

    def start(self) -> None:
        """Start the driver on the running loop."""
        self.loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._driver = self.loop.create_task(self._drive_forever())
        self.writer.start()

    async def stop(self) -> None:
        self.acting = False
        await self.writer.stop()
        for task in (self._driver, *self._background):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self.health.stop()
        self.readiness.stop()

    def poke(self) -> None:
        """Ask the driver to run soon (from any thread)."""
        loop, wake = self.loop, self._wake
        if loop is None or wake is None:
            return
        with contextlib.suppress(RuntimeError):  # loop closed at shutdown
            loop.call_soon_threadsafe(wake.set)

    # ------------------------------------------------------------------ bookkeeping

    def _on_ready(self, _task_id: str) -> None:
        with self._lock:
            self._counts.clear()
        self.poke()

    def _add(self, inst: Instance) -> None:
        self._counts.pop(inst.task.app_id, None)
        self._instances[inst.task.id] = inst
        self._by_app.setdefault(inst.task.app_id, set()).add(inst.task.id)

    def _remove(self, task_id: str) -> Instance | None:
        inst = self._instances.pop(task_id, None)
        if inst is not None:
            self._counts.pop(inst.task.app_id, None)
            ids = self._by_app.get(inst.task.app_id)
            if ids is not None:
                ids.discard(task_id)
                if not ids:
                    del self._by_app[inst.task.app_id]
        return inst

    def _app_of(self, inst: Instance) -> AppDefinition | None:
        if self._hooks is None:
            return None
        app = self._hooks.current_app(inst.task.app_id)
        if app is not None:
            return app
        for run in self._plans.values():
            app = run.plan.original.app(inst.task.app_id)
            if app is not None:
                return app
        return None

    @staticmethod
    def _check_kinds(app: AppDefinition | None) -> tuple[bool, bool, bool]:
        """(has Marathon-run checks, has agent-run checks, has a readiness check)."""
        if app is None:
            return (False, False, False)
        checks = app.health_checks
        return (
            any(c.run_by_marathon for c in checks),
            any(not c.run_by_marathon for c in checks),
            bool(app.readiness_checks),
        )

    def _health_of(
        self, inst: Instance, kinds: tuple[bool, bool, bool] | None = None
    ) -> bool | None:
        """True/False/None (unknown) for a RUNNING instance; apps without checks: True."""
        if inst.task.state != "TASK_RUNNING":
            return False
        marathon_checks, agent_checks, readiness = kinds or self._check_kinds(self._app_of(inst))
        verdicts: list[bool | None] = []
        if marathon_checks:
            verdicts.append(self.health.healthy(inst.task.id))
        if agent_checks:
            verdicts.append(inst.mesos_healthy)
        if readiness:
            verdicts.append(True if inst.task.id in self.readiness.ready else None)
        if any(v is False for v in verdicts):
            return False
        if any(v is None for v in verdicts):
            return None
        return True

    def _views(self, app_id: str, now: float) -> list[dx.InstanceView]:
        out = []
        ids = sorted(self._by_app.get(app_id, ()))
        app = self._hooks.current_app(app_id) if self._hooks else None
        kinds = self._check_kinds(self._app_of(self._instances[ids[0]])) if ids else None
        for tid in ids:
            inst = self._instances[tid]
            if inst.unreachable_since is not None and app is not None:
                strategy = app.unreachable_strategy
                inactive_after = (
                    strategy.inactive_after_seconds if not isinstance(strategy, str) else None
                )
                if inactive_after is not None and now - inst.unreachable_since >= inactive_after:
                    continue  # inactive: replaced, but not killed (it may come back)
            out.append(
                dx.InstanceView(
                    id=tid,
                    version=inst.task.version,
                    started_at=inst.task.started_at or inst.task.staged_at or "",
                    alive=not inst.killing,
                    running=inst.task.state == "TASK_RUNNING",
                    healthy=self._health_of(inst, kinds),
                )
            )
        return out

    # ------------------------------------------------------------------ the driver

    async def _drive_forever(self) -> None:
        assert self._wake is not None
        last = -1e9
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            # A pass looks at every instance: coalesce bursts of changes (hundreds of
            # status updates a second) into at most one pass per DRIVE_MIN_INTERVAL.
            pause = last + DRIVE_MIN_INTERVAL - self.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            self._wake.clear()
            last = self.monotonic()
            if not self.acting or self._hooks is None:
                continue
            try:
                await self._drive()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler driver step failed")

    async def _drive(self) -> None:
        now = self.monotonic()
        announce: list[tuple[str, int]] = []
        finished: list[str] = []
        terminated: list[str] = []
        kills: list[Instance] = []
        wanted: dict[str, tuple[AppDefinition, int]] = {}
        with self._lock:
            locked: set[str] = set()
            for run in sorted(self._plans.values(), key=lambda r: (r.plan.version, r.plan.id)):
                locked |= set(run.plan.affected_apps)
                while run.step < len(run.plan.steps):
                    if run.announced < run.step:
                        run.announced = run.step
                        announce.append((run.plan.id, run.step + 1))
                    step = run.plan.steps[run.step]
                    all_done = True
                    for action in step.actions:
                        decision, app = self._decide(run.plan, action, now)
                        for tid in decision.kills:
                            kills.append(self._instances[tid])
                        if app is not None and decision.launch:
                            have = wanted.get(app.id, (app, 0))[1]
                            wanted[app.id] = (app, have + decision.launch)
                        if decision.done and action.action == "StopApplication":
                            terminated.append(action.app)
                        all_done = all_done and decision.done
                    if not all_done:
                        break
                    run.step += 1
                if run.step >= len(run.plan.steps):
                    finished.append(run.plan.id)
            for plan_id in finished:
                self._plans.pop(plan_id, None)
            apps = self._all_apps()
            for app_id, app in apps.items():
                if app_id in locked:
                    continue
                views = self._views(app_id, now)
                d = dx.scale_decision(app.instances, views, app.kill_selection)
                kills += [self._instances[t] for t in d.kills if self._may_auto_kill(t)]
                if d.launch:
                    wanted[app_id] = (app, d.launch)
            # Tasks of apps that exist nowhere any more (deleted while we were away).
            known = set(apps) | locked
            for app_id in list(self._by_app):
                if app_id not in known:
                    kills += [self._instances[t] for t in self._by_app[app_id]]
            # Explicit kill requests and kills that were not answered.
            for inst in self._instances.values():
                if inst.killing and now - inst.kill_sent > KILL_RETRY_SECONDS:
                    kills.append(inst)
                elif (
                    inst.task.state == "TASK_STAGING"
                    and now - inst.launched_mono > self.task_launch_timeout
                    and inst.launched_mono
                ):
                    kills.append(inst)  # stuck in staging
            self.queue_state.expire(apps, now)
            self.queue_state.set_wanted(wanted, self.clock())
            queued = bool(self.queue_state.entries)
            counts = {a: e.count for a, e in self.queue_state.entries.items()}
            grew = any(n > self._last_wanted.get(a, 0) for a, n in counts.items())
            self._last_wanted = counts
            if grew:
                self._revive_pending = True
            to_kill: dict[str, Instance] = {}
            for inst in kills:
                if inst.task.id in to_kill:
                    continue
                if inst.killing and now - inst.kill_sent <= KILL_RETRY_SECONDS:
                    continue
                inst.killing = True
                inst.kill_sent = now
                to_kill[inst.task.id] = inst
        for plan_id, step_no in announce:
            await asyncio.to_thread(self.hooks.deployment_step_started, plan_id, step_no)
        for app_id in terminated:
            self.hooks.publish("app_terminated_event", {"appId": app_id})
        for plan_id in finished:
            log.info("deployment %s finished", plan_id)
            await asyncio.to_thread(self.hooks.deployment_finished, plan_id, True)
        if to_kill:
            await asyncio.gather(
                *(self._send_kill(i) for i in to_kill.values()), return_exceptions=True
            )
        if queued and (self._suppressed or self._revive_pending):
            # New launches wanted: clear the refusal filters of earlier declines too.
            if now - self._last_revive >= REVIVE_MIN_INTERVAL or self._suppressed:
                self._suppressed = False
                self._revive_pending = False
                self._last_revive = now
                await self._call("REVIVE", None)
        elif not queued and not self._suppressed and self.acting:
            self._suppressed = True
            await self._call("SUPPRESS", None)
        if finished:
            self.poke()

    def _may_auto_kill(self, task_id: str) -> bool:
        """Outside deployments, surplus instances are killed only once they are RUNNING
        (a surplus STAGING one may be a replacement that is about to be needed)."""
        return self._instances[task_id].task.state == "TASK_RUNNING"

    def _all_apps(self) -> dict[str, AppDefinition]:
        root = getattr(self._hooks, "root", None)
        return dict(root.apps) if root is not None else {}

    def _decide(
        self, plan: DeploymentPlan, action: Any, now: float
    ) -> tuple[dx.Decision, AppDefinition | None]:
        app = plan.target.app(action.app)
        views = self._views(action.app, now)
        if action.action == "StartApplication":
            return dx.Decision(done=True), app
        if action.action == "StopApplication" or app is None:
            return dx.stop_decision(views), None
        if action.action == "RestartApplication":
            us = app.upgrade_strategy
            return (
                dx.restart_decision(
                    app.instances,
                    app.version or "",
                    us.minimum_health_capacity,
                    us.maximum_over_capacity,
                    views,
                ),
                app,
            )
        target = app.instances if action.scale_to is None else action.scale_to
        return dx.scale_decision(target, views, app.kill_selection, action.kill_tasks), app

    async def _call(self, call_type: str, body: dict[str, Any] | None) -> int:
        if self.call is None:
            return 0
        result: int = await self.call(call_type, body)
        return result

    async def _send_kill(self, inst: Instance) -> None:
        if not self.acting:
            return
        body: dict[str, Any] = {"task_id": {"value": inst.task.id}}
        if inst.agent_id:
            body["agent_id"] = {"value": inst.agent_id}
        app = self._app_of(inst)
        if app is not None and app.task_kill_grace_period_seconds is not None:
            grace = int(app.task_kill_grace_period_seconds * 1e9)
            body["kill_policy"] = {"grace_period": {"nanoseconds": grace}}
        await self._call("KILL", body)

    # ------------------------------------------------------------------ offers

    async def on_offers(self, offers: list[dict[str, Any]]) -> None:
        now = self.monotonic()
        now_iso = self.clock()
        launches: list[tuple[dict[str, Any], list[dict[str, Any]], list[Instance]]] = []
        declines: list[dict[str, Any]] = []
        with self._lock:
            entries = self.queue_state.launchable(now) if self.acting else []
            # Where each app's instances are (for constraints), built once per event and
            # extended as instances are placed: not rebuilt for every launch.
            placements: dict[str, list[Placement]] = {}
            for entry in entries:
                entry.summary.new_round()
                placements[entry.app.id] = (
                    self._placements(entry.app.id) if entry.app.constraints else []
                )
            for raw in offers:
                try:
                    offer = Offer.from_json(raw)
                except (KeyError, TypeError, ValueError):
                    log.warning("ignoring a malformed offer: %r", raw)
                    continue
                infos: list[dict[str, Any]] = []
                new: list[Instance] = []
                for entry in entries:
                    while entry.count > 0:
                        placed = placements[entry.app.id]
                        result = match_offer(
                            entry.app, offer, placed, self.rng, default_role=self.role
                        )
                        entry.summary.record(offer, result, now_iso)
                        if not isinstance(result, Match):
                            break
                        consume(offer, result)
                        inst = self._new_instance(entry.app, offer, result, now, now_iso)
                        infos.append(
                            build_task_info(
                                entry.app, inst.task.id, offer.agent_id, result.ports, result.role
                            )
                        )
                        new.append(inst)
                        entry.count -= 1
                        if entry.app.constraints:
                            placed.append(Placement(offer.hostname, dict(offer.attributes)))
                if infos:
                    launches.append((raw["id"], infos, new))
                else:
                    declines.append(raw["id"])
            queued = bool(self.queue_state.entries) or bool(self._plans)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "offers from %s: launching %s, declining %d (wanted %s)",
                    sorted(str(o.get("hostname")) for o in offers),
                    [len(infos) for _, infos, _ in launches],
                    len(declines),
                    {e.app.id: e.count for e in entries},
                )
        for offer_id, infos, new in launches:
            # Write the instances before launching: a marathon that dies right after the
            # ACCEPT still knows these tasks when its successor reconciles (no orphans).
            await asyncio.to_thread(self.store.put_instances, [i.task for i in new])
            status = 0
            if self.acting:
                status = await self._call(
                    "ACCEPT",
                    {
                        "offer_ids": [offer_id],
                        "operations": [{"type": "LAUNCH", "launch": {"task_infos": infos}}],
                        "filters": {"refuse_seconds": 1.0},
                    },
                )
            if status != 202:
                log.warning("launch of %d tasks not accepted (HTTP %s)", len(new), status)
                with self._lock:
                    for inst in new:
                        self._remove(inst.task.id)
                await asyncio.to_thread(self.store.delete_instances, [i.task for i in new])
            else:
                for inst in new:
                    self._publish_status(inst, "TASK_STAGING", "")
        if declines:
            refuse = 1.0 if queued else 5.0
            await self._call(
                "DECLINE", {"offer_ids": declines, "filters": {"refuse_seconds": refuse}}
            )
        self.poke()

    def _placements(self, app_id: str) -> list[Placement]:
        return [
            Placement(self._instances[t].task.host, self._instances[t].attributes)
            for t in self._by_app.get(app_id, ())
            if not self._instances[t].killing
        ]

    def _new_instance(
        self, app: AppDefinition, offer: Offer, match: Match, now: float, now_iso: str
    ) -> Instance:
        task_id = new_task_id(app.id, self.rng)
        service_ports = [p.port for p in app.port_definitions or []]
        if app.container and app.container.port_mappings:
            service_ports = [m.service_port for m in app.container.port_mappings]
        task = TrackedTask(
            id=task_id,
            app_id=app.id,
            host=offer.hostname,
            slave_id=offer.agent_id,
            ports=list(match.ports),
            service_ports=service_ports,
            staged_at=now_iso,
            version=app.version or "",
            state="TASK_STAGING",
            ip_addresses=[],
            role=match.role,
        )
        inst = Instance(task, offer.agent_id, dict(offer.attributes), launched_mono=now)
        self._add(inst)
        return inst

    # ------------------------------------------------------------------ status updates

    async def on_update(self, status: dict[str, Any]) -> None:
        task_id = str((status.get("task_id") or {}).get("value", ""))
        state = str(status.get("state", ""))
        now = self.monotonic()
        self._note_lag(status, now)
        now_iso = self.clock()
        persist: Task | None = None
        delete: Task | None = None
        failure: TaskFailure | None = None
        unknown_kill = False
        health_start: tuple[Instance, AppDefinition] | None = None
        mesos_health_changed = False
        with self._lock:
            inst = self._instances.get(task_id)
            if inst is None:
                unknown_kill = state not in TERMINAL
            else:
                self._counts.pop(inst.task.app_id, None)
                old_state = inst.task.state
                changes: dict[str, Any] = {"state": state}
                if "healthy" in status and bool(status["healthy"]) != inst.mesos_healthy:
                    # An agent-run check (COMMAND, MESOS_*) reported: show it as a result.
                    inst.mesos_healthy = bool(status["healthy"])
                    changes["health_check_results"] = self._results(inst)
                    mesos_health_changed = True
                if state == "TASK_UNREACHABLE":
                    if inst.unreachable_since is None:
                        inst.unreachable_since = now
                else:
                    inst.unreachable_since = None
                ips = _status_ips(status)
                if ips and not inst.task.ip_addresses:
                    changes["ip_addresses"] = ips
                if state == "TASK_RUNNING" and inst.task.started_at is None:
                    changes["started_at"] = now_iso
                    inst.started_mono = now
                if state == "TASK_RUNNING" and not inst.task.ip_addresses and not ips:
                    changes["ip_addresses"] = [IpAddress(ip_address=inst.task.host)]
                if state in TERMINAL:
                    self._remove(task_id)
                    delete = inst.task
                    app = self._app_of(inst)
                    if state in FAILURES or (state == "TASK_FINISHED" and not inst.killing):
                        failure = TaskFailure(
                            app_id=inst.task.app_id,
                            host=inst.task.host,
                            message=str(status.get("message", "")),
                            state=state,
                            task_id=task_id,
                            slave_id=inst.agent_id,
                            timestamp=now_iso,
                            version=inst.task.version,
                        )
                    if state in BACKOFF_STATES and not inst.killing and app is not None:
                        delay = self.queue_state.failed(app, now)
                        log.info("%s %s: next launch of %s in %.1fs", task_id, state, app.id, delay)
                elif state != old_state or "ip_addresses" in changes or mesos_health_changed:
                    inst.task = changed_task(inst.task, **changes)
                    persist = inst.task
                if state == "TASK_RUNNING":
                    app = self._app_of(inst)
                    if app is not None:
                        health_start = (inst, app)
        if unknown_kill:
            log.info("killing unknown task %s (%s)", task_id, state)
            body: dict[str, Any] = {"task_id": {"value": task_id}}
            if status.get("agent_id"):
                body["agent_id"] = status["agent_id"]
            if self.acting:
                self._spawn(self._call("KILL", body))
        if inst is not None:
            if delete is not None:
                self.health.forget(task_id)
                self.readiness.forget(task_id)
                self.writer.delete(delete)
                if failure is not None:
                    self.writer.failure(failure)
            elif persist is not None:
                self.writer.put(persist)
            if health_start is not None:
                self._start_checks(*health_start)
            self._publish_status(inst, state, str(status.get("message", "")))
            if mesos_health_changed and self._hooks is not None:
                self._hooks.publish(
                    "health_status_changed_event",
                    {"appId": inst.task.app_id, "taskId": task_id, "instanceId": task_id,
                     "version": inst.task.version, "alive": bool(inst.mesos_healthy)},
                )  # fmt: skip
        if status.get("uuid") and status.get("agent_id"):
            self.writer.ack(
                {
                    "agent_id": status["agent_id"],
                    "task_id": status["task_id"],
                    "uuid": status["uuid"],
                }
            )
        self.writer.wake()
        self.poke()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _note_lag(self, status: dict[str, Any], now: float) -> None:
        """Warn (at most every 10 s) when updates arrive long after the agent made them."""
        stamp = status.get("timestamp")
        if not isinstance(stamp, (int, float)) or status.get("reason") == "REASON_RECONCILIATION":
            return
        lag = time.time() - float(stamp)
        self.max_update_lag = max(self.max_update_lag, lag)
        if lag > 2.0 and now - self._lag_warned > 10.0:
            self._lag_warned = now
            log.warning("status updates arrive late: %.1fs after the agent sent them", lag)

    def _start_checks(self, inst: Instance, app: AppDefinition) -> None:
        task = inst.task
        started = inst.started_mono if inst.started_mono is not None else self.monotonic()
        if any(c.run_by_marathon for c in app.health_checks):
            self.health.watch(task.id, task.host, list(task.ports), app.health_checks, started)
        for rc in app.readiness_checks[:1]:
            names = app.port_names()
            port = None
            if rc.port_name in names and names.index(rc.port_name) < len(task.ports):
                port = task.ports[names.index(rc.port_name)]
            elif task.ports:
                port = task.ports[0]
            self.readiness.watch(task.id, task.host, port, rc)

    def _results(self, inst: Instance) -> list[HealthCheckResult]:
        """healthCheckResults: Marathon-run checks, then the agent's verdict if any."""
        out = self.health.results(inst.task.id)
        if inst.mesos_healthy is not None:
            out.append(
                HealthCheckResult(
                    alive=inst.mesos_healthy,
                    consecutive_failures=0 if inst.mesos_healthy else 1,
                    instance_id=inst.task.id,
                )
            )
        return out

    def _on_health(
        self, task_id: str, index: int, state: HealthState, changed: bool, kill: bool
    ) -> None:
        """A Marathon-run check finished (on the loop)."""
        with self._lock:
            inst = self._instances.get(task_id)
            if inst is None:
                return
            self._counts.pop(inst.task.app_id, None)
            inst.task = changed_task(inst.task, health_check_results=self._results(inst))
            unreachable = inst.unreachable_since is not None
            do_kill = kill and not unreachable and not inst.killing and self.acting
            if do_kill:
                inst.killing = True
                inst.kill_sent = 0.0  # the driver sends the KILL
        payload = {
            "appId": inst.task.app_id,
            "taskId": task_id,
            "instanceId": task_id,
            "version": inst.task.version,
            "alive": bool(state.alive),
        }
        if changed:
            self.hooks.publish("health_status_changed_event", payload)
        if state.alive is False:
            self.hooks.publish(
                "failed_health_check_event",
                {"appId": inst.task.app_id, "taskId": task_id, "instanceId": task_id,
                 "healthCheck": state.check.to_json()},
            )  # fmt: skip
        if do_kill:
            log.info("killing %s: %d consecutive health check failures", task_id,
                     state.consecutive_failures)  # fmt: skip
            self.hooks.publish(
                "unhealthy_instance_kill_event",
                {"appId": inst.task.app_id, "taskId": task_id, "instanceId": task_id,
                 "version": inst.task.version, "reason": state.last_failure_cause or "",
                 "host": inst.task.host, "slaveId": inst.agent_id},
            )  # fmt: skip
        self.poke()

    def _publish_status(self, inst: Instance, state: str, message: str) -> None:
        if self._hooks is None:
            return
        t = inst.task
        self._hooks.publish(
            "status_update_event",
            {
                "slaveId": inst.agent_id,
                "taskId": t.id,
                "taskStatus": state,
                "message": message,
                "appId": t.app_id,
                "host": t.host,
                "ipAddresses": [a.to_json() for a in t.ip_addresses],
                "ports": t.ports,
                "version": t.version,
            },
        )

    def known_tasks(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(t, i.agent_id) for t, i in sorted(self._instances.items())]


def _status_ips(status: dict[str, Any]) -> list[IpAddress]:
    out = []
    for info in (status.get("container_status") or {}).get("network_infos") or []:
        for addr in info.get("ip_addresses") or []:
            if addr.get("ip_address"):
                out.append(
                    IpAddress(ip_address=addr["ip_address"], protocol=addr.get("protocol", "IPv4"))
                )
    return out
