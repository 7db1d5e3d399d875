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

The class is assembled from parts: the shared state and bookkeeping (core_base.py),
offer matching and launching (offers.py), status updates and health results
(updates.py); this module holds the MarathonCore API, the life cycle and the driver.

Only a leader that is subscribed and whose coordination session is CONNECTED acts
(``acting``): on SUSPENDED the daemon clears it at once, so no launch or kill leaves this
process until the session is back (or lost, and the process exits).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from paddock.marathon.models import (
    AppDefinition,
    Task,
)
from paddock.marathon.planner import DeploymentPlan
from paddock.marathon.scheduler import deployment_executor as dx
from paddock.marathon.scheduler.core_base import (
    DRIVE_MIN_INTERVAL,
    REVIVE_MIN_INTERVAL,
    log,
)
from paddock.marathon.scheduler.instances import (
    Instance,
    PlanRun,
    tracked,
)
from paddock.marathon.scheduler.offers import OfferHandling
from paddock.marathon.scheduler.updates import StatusHandling
from paddock.marathon.scheduler_iface import CoreHooks, LeaderInfo, QueueEntry, TaskCounts

__all__ = ["SchedulerCore"]


class SchedulerCore(OfferHandling, StatusHandling):
    """Runs apps on a Mesos master (see the module docstring)."""

    # ------------------------------------------------------------------ MarathonCore

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
                    reachable=not inst.unreachable,
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
                if inst.killing and now - inst.kill_sent > self.kill_retry_timeout:
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
            expunged: list[Task] = []
            for inst in kills:
                if inst.task.id in to_kill:
                    continue
                if inst.killing and now - inst.kill_sent <= self.kill_retry_timeout:
                    continue
                inst.killing = True
                inst.kill_sent = now
                to_kill[inst.task.id] = inst
                if inst.unreachable and inst.task.id in self._instances:
                    # No confirmation will come while the agent is away: expunge it now
                    # (the KILL still goes out, for when the agent is back).
                    self._expunge(inst)
                    expunged.append(inst.task)
        self._forget_expunged(expunged)
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

    def known_tasks(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(t, i.agent_id) for t, i in sorted(self._instances.items())]
