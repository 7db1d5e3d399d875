"""The seam between Marathon's API/state half and its scheduling half.

The API side (``service.MarathonService``) owns desired state: app definitions, groups,
deployment plans, all persisted in the coordination service. The scheduling side owns
what actually runs: it executes deployment plans against Mesos offers, tracks tasks,
runs health checks, keeps the launch queue with its backoff delays, and holds the leader
latch. They meet here:

* :class:`MarathonCore` — what the API calls on the scheduler;
* :class:`CoreHooks` — what the scheduler calls back on the API service (implemented by
  ``MarathonService``): deployment progress, the current definition of an app, events.

:class:`InstantCore` is a stand-in that needs no Mesos master: each deployment runs to
completion as soon as it starts, and "tasks" are records in the store that appear in
state TASK_RUNNING (healthy if the app has health checks) without any process behind
them. It makes the whole REST surface testable today; the scheduling half replaces it.
With ``auto_complete=False`` deployments wait until :meth:`InstantCore.complete` or
:meth:`InstantCore.fail`, so tests can hold an app locked.

Contract for a real scheduler:

* ``start_deployment`` and ``cancel_deployment`` are called with the service's lock held:
  they must only hand the plan over (enqueue) and return, never wait for work that calls
  back into hooks from another thread.
* Steps must be idempotent: after a failover the service calls ``start_deployment`` for
  every stored plan, and the scheduler re-runs it from its first step (scale to N,
  replace instances not yet on the target version), as Marathon does.
* Report progress with ``hooks.deployment_step_started(plan_id, n)`` and the end with
  ``hooks.deployment_finished(plan_id, success, reason)``; publish status, health and
  instance events through ``hooks.publish`` with Marathon's event names and fields.
* Persist task records with ``MarathonStore.put_instances``/``delete_instances`` and
  failures with ``set_task_failure`` so a new leader finds them; keep the framework id
  with ``set_framework_id``.
* ``leader()`` is asked on every API request (the standby proxy): answer from memory.
  On winning the election call ``MarathonService.become_leader()`` (reloads the state a
  standby only proxied, then hands every stored deployment back via start_deployment).

Threading: every method here may block (ZooKeeper reads/writes). The API calls core
methods from worker threads, never from the event loop; a core calls hooks from any
thread (hooks take the service's re-entrant lock).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from paddock.marathon.models import (
    AppDefinition,
    HealthCheckResult,
    IpAddress,
    Task,
    make_task_id,
)
from paddock.marathon.planner import DeploymentAction, DeploymentPlan, select_kills
from paddock.marathon.store import MarathonStore


@dataclass(frozen=True)
class TaskCounts:
    staged: int = 0
    running: int = 0
    healthy: int = 0
    unhealthy: int = 0


@dataclass(frozen=True)
class QueueEntry:
    """One app waiting for launches (``GET /v2/queue``), with why it waits.

    ``processed_offers_summary`` has Marathon's shape: processedOffersCount,
    unusedOffersCount, lastUnusedOfferAt, lastUsedOfferAt, rejectSummaryLastOffers and
    rejectSummaryLaunchAttempt (lists of {reason, declined, processed}); reasons are
    Marathon's (InsufficientCpus, InsufficientMemory, InsufficientPorts,
    UnfulfilledConstraint, UnfulfilledRole, DeclinedScarceResources, ...).
    """

    app_id: str
    count: int
    since: str
    delay_seconds_left: float = 0.0
    overdue: bool = True
    processed_offers_summary: dict[str, Any] = field(default_factory=dict)
    last_unused_offers: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class LeaderInfo:
    """Who leads: ``leader`` is "host:port" of the leading marathon (None: nobody)."""

    leader: str | None
    elected: bool


class CoreHooks(Protocol):
    """What a scheduler calls back on the API service."""

    def deployment_step_started(self, plan_id: str, step: int) -> None:
        """Step ``step`` (1-based) of the plan began."""

    def deployment_finished(self, plan_id: str, success: bool, reason: str = "") -> None:
        """The plan completed (or failed); the service drops its record."""

    def current_app(self, app_id: str) -> AppDefinition | None:
        """The desired definition of an app right now (None: deleted)."""

    def publish(self, event_type: str, payload: dict[str, Any]) -> None:
        """Publish a Marathon event (status_update_event, health_status_changed_event...)."""


class MarathonCore(Protocol):
    """What the API service needs from the scheduling half."""

    def attach(self, hooks: CoreHooks) -> None:
        """Called once by the service before anything else."""

    def start_deployment(self, plan: DeploymentPlan) -> None:
        """Begin executing ``plan`` (also called for stored plans after a restart)."""

    def cancel_deployment(self, plan_id: str) -> None:
        """Stop executing ``plan_id`` where it is (force-delete or before a rollback)."""

    def tasks(self, app_id: str | None = None) -> list[Task]:
        """Known tasks, of one app or all."""

    def task_counts(self, app_id: str) -> TaskCounts: ...

    def kill_tasks(self, tasks: list[Task], *, wipe: bool) -> list[Task]:
        """Kill these tasks (the app keeps its instance count unless the service scales
        it in a deployment); ``wipe`` also forgets reservations. Returns the killed."""

    def queue(self) -> list[QueueEntry]: ...

    def reset_delay(self, app_id: str) -> bool:
        """Reset the launch backoff of an app (False if it has none)."""

    def leader(self) -> LeaderInfo: ...

    def abdicate(self) -> bool:
        """Give up leadership (False: this instance does not lead)."""

    def framework_id(self) -> str | None: ...


# --------------------------------------------------------------------------- stand-in


class InstantCore:
    """A scheduler stand-in without Mesos: plans complete at once, tasks are records."""

    def __init__(
        self,
        store: MarathonStore,
        *,
        clock: Callable[[], str],
        rng: random.Random | None = None,
        host: str = "127.0.0.1",
        advertised: str = "127.0.0.1:8080",
        auto_complete: bool = True,
        first_port: int = 31000,
    ) -> None:
        self.store = store
        self.clock = clock
        self.rng = rng or random.Random(0)
        self.host = host
        self.advertised = advertised
        self.auto_complete = auto_complete
        self._next_port = first_port
        self._plans: dict[str, DeploymentPlan] = {}
        self._delays: dict[str, float] = {}
        self._lock = threading.RLock()
        self._hooks: CoreHooks | None = None
        self.queue_entries: list[QueueEntry] = []  # tests may set what /v2/queue shows
        # In-memory instance tracker (as a real scheduler keeps one), persisted to the
        # store on every change and loaded from it on first use.
        self._tasks: dict[str, dict[str, Task]] | None = None

    def _tracker(self) -> dict[str, dict[str, Task]]:
        with self._lock:
            if self._tasks is None:
                self._tasks = {}
                for task in self.store.all_instances():
                    self._tasks.setdefault(task.app_id, {})[task.id] = task
            return self._tasks

    @property
    def hooks(self) -> CoreHooks:
        if self._hooks is None:
            raise RuntimeError("InstantCore used before attach()")
        return self._hooks

    def attach(self, hooks: CoreHooks) -> None:
        self._hooks = hooks

    # -- deployments -----------------------------------------------------------------

    def start_deployment(self, plan: DeploymentPlan) -> None:
        with self._lock:
            self._plans[plan.id] = plan
        if self.auto_complete:
            self.complete(plan.id)

    def cancel_deployment(self, plan_id: str) -> None:
        with self._lock:
            self._plans.pop(plan_id, None)

    def pending(self) -> list[str]:
        with self._lock:
            return sorted(self._plans)

    def complete(self, plan_id: str) -> None:
        """Run every step of a started plan now and report success."""
        with self._lock:
            plan = self._plans.pop(plan_id, None)
        if plan is None:
            raise KeyError(plan_id)
        for index, step in enumerate(plan.steps, 1):
            self.hooks.deployment_step_started(plan.id, index)
            # One step's actions run "in parallel": read, kill and launch in batches.
            current = {a.app: self.tasks(a.app) for a in step.actions}
            kills: list[Task] = []
            launches: list[Task] = []
            terminated: list[str] = []
            for action in step.actions:
                k, n = self._decide(plan, action, current.get(action.app, []))
                kills += k
                app = plan.target.app(action.app)
                if app is not None and n:
                    launches += self._new_tasks(app, n)
                if action.action == "StopApplication":
                    terminated.append(action.app)
            self._kill(kills)
            self._start(launches)
            for app_id in terminated:
                self.hooks.publish("app_terminated_event", {"appId": app_id})
        self.hooks.deployment_finished(plan.id, True)

    def fail(self, plan_id: str, reason: str = "failed") -> None:
        with self._lock:
            self._plans.pop(plan_id, None)
        self.hooks.deployment_finished(plan_id, False, reason)

    def _decide(
        self, plan: DeploymentPlan, action: DeploymentAction, current: list[Task]
    ) -> tuple[list[Task], int]:
        """Which tasks an action kills and how many it launches."""
        app = plan.target.app(action.app)
        if action.action == "StopApplication" or app is None:
            return current, 0
        if action.action == "RestartApplication":
            return current, app.instances
        if action.action != "ScaleApplication":
            return [], 0
        target = app.instances if action.scale_to is None else action.scale_to
        kills = [t for t in current if t.id in action.kill_tasks]
        alive = [t for t in current if t.id not in action.kill_tasks]
        if len(alive) > target:
            chosen = set(
                select_kills(
                    [(t.id, t.started_at or "") for t in alive],
                    len(alive) - target,
                    app.kill_selection,
                )
            )
            kills += [t for t in alive if t.id in chosen]
        return kills, max(0, target - len(alive))

    # -- tasks -----------------------------------------------------------------------

    def _launch(self, app: AppDefinition, count: int) -> None:
        self._start(self._new_tasks(app, count))

    def _start(self, tasks: list[Task]) -> None:
        self.store.put_instances(tasks)
        tracker = self._tracker()
        with self._lock:
            for task in tasks:
                tracker.setdefault(task.app_id, {})[task.id] = task
        for task in tasks:
            self._status_event(task, "TASK_RUNNING")

    def _new_tasks(self, app: AppDefinition, count: int) -> list[Task]:
        now = self.clock()
        launched = []
        for _ in range(count):
            unique = "%08x-%04x-%04x-%04x-%012x" % tuple(  # noqa: UP031 (uuid shape)
                self.rng.getrandbits(bits) for bits in (32, 16, 16, 16, 48)
            )
            ports = []
            for _ in range(app.host_port_count):
                ports.append(self._next_port)
                self._next_port += 1
            service_ports = [p.port for p in app.port_definitions or []]
            if app.container and app.container.port_mappings:
                service_ports = [m.service_port for m in app.container.port_mappings]
            task = Task(
                id=make_task_id(app.id, unique),
                app_id=app.id,
                host=self.host,
                slave_id="instant-agent",
                ports=ports,
                service_ports=service_ports,
                staged_at=now,
                started_at=now,
                version=app.version or "",
                state="TASK_RUNNING",
                ip_addresses=[IpAddress(ip_address=self.host)],
                health_check_results=[
                    HealthCheckResult(
                        alive=True, first_success=now, last_success=now, instance_id=unique
                    )
                ]
                if app.health_checks
                else [],
            )
            launched.append(task)
        return launched

    def _kill(self, tasks: list[Task]) -> None:
        self.store.delete_instances(tasks)
        tracker = self._tracker()
        with self._lock:
            for task in tasks:
                tracker.get(task.app_id, {}).pop(task.id, None)
        for task in tasks:
            self._status_event(task, "TASK_KILLED")

    def _status_event(self, task: Task, status: str) -> None:
        self.hooks.publish(
            "status_update_event",
            {
                "slaveId": task.slave_id,
                "taskId": task.id,
                "taskStatus": status,
                "message": "",
                "appId": task.app_id,
                "host": task.host,
                "ipAddresses": [a.to_json() for a in task.ip_addresses],
                "ports": task.ports,
                "version": task.version,
            },
        )

    def tasks(self, app_id: str | None = None) -> list[Task]:
        tracker = self._tracker()
        with self._lock:
            if app_id is not None:
                return sorted(tracker.get(app_id, {}).values(), key=lambda t: t.id)
            return [
                t for a in sorted(tracker) for t in sorted(tracker[a].values(), key=lambda t: t.id)
            ]

    def task_counts(self, app_id: str) -> TaskCounts:
        tasks = self.tasks(app_id)
        running = [t for t in tasks if t.state == "TASK_RUNNING"]
        healthy = [
            t
            for t in running
            if t.health_check_results and all(r.alive for r in t.health_check_results)
        ]
        unhealthy = [t for t in running if any(not r.alive for r in t.health_check_results)]
        staged = [t for t in tasks if t.state in ("TASK_STAGING", "TASK_STARTING")]
        return TaskCounts(len(staged), len(running), len(healthy), len(unhealthy))

    def kill_tasks(self, tasks: list[Task], *, wipe: bool) -> list[Task]:
        self._kill(tasks)
        # The app keeps its instance count: replace what was killed, as Marathon's
        # launch queue would.
        for app_id in sorted({t.app_id for t in tasks}):
            app = self.hooks.current_app(app_id)
            if app is not None:
                missing = app.instances - len(self.tasks(app_id))
                if missing > 0:
                    self._launch(app, missing)
        return tasks

    # -- queue, leadership -----------------------------------------------------------

    def queue(self) -> list[QueueEntry]:
        return list(self.queue_entries)

    def reset_delay(self, app_id: str) -> bool:
        self.queue_entries = [
            QueueEntry(e.app_id, e.count, e.since, 0.0, True, e.processed_offers_summary)
            if e.app_id == app_id
            else e
            for e in self.queue_entries
        ]
        return True

    def leader(self) -> LeaderInfo:
        return LeaderInfo(leader=self.advertised, elected=True)

    def abdicate(self) -> bool:
        return True

    def framework_id(self) -> str | None:
        return self.store.framework_id()
