"""The scheduler core's state and bookkeeping, shared by its parts.

``SchedulerCore`` (core.py: the MarathonCore API, life cycle and the driver) is built
from :class:`OfferHandling` (offers.py: matching offers, launching) and
:class:`StatusHandling` (updates.py: status updates, health results, events), which
all work on the state held here: the instances by task id and by app, the running
plans, the launch queue, the status writer and the health checkers. The threading
rules are core.py's (the lock guards in-memory state; I/O runs on the loop).
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
)
from paddock.marathon.scheduler.health import HealthChecker, HealthState, ReadinessChecker
from paddock.marathon.scheduler.instances import (
    Instance,
    PlanRun,
)
from paddock.marathon.scheduler.launch_queue import LaunchQueue
from paddock.marathon.scheduler.status_writer import StatusWriter
from paddock.marathon.scheduler_iface import CoreHooks, TaskCounts
from paddock.marathon.store import MarathonStore

log = logging.getLogger("paddock.marathon.scheduler.core")

KILL_RETRY_SECONDS = 10.0
REVIVE_MIN_INTERVAL = 1.0
DRIVE_MIN_INTERVAL = 0.25


class CoreBase:
    """State and bookkeeping of the scheduler core (see the module docstring)."""

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
        kill_retry_timeout: float = KILL_RETRY_SECONDS,
    ) -> None:
        self.store = store
        self.advertised = advertised
        self.clock = clock
        self.rng = rng or random.Random()
        self.role = role
        self.monotonic = monotonic
        self.task_launch_timeout = task_launch_timeout
        # A KILL not confirmed by a terminal status within this long is sent again
        # (Marathon's --kill_retry_timeout); the instance counts as running meanwhile.
        self.kill_retry_timeout = kill_retry_timeout
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

    @property
    def hooks(self) -> CoreHooks:
        if self._hooks is None:
            raise RuntimeError("SchedulerCore used before attach()")
        return self._hooks

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

    def _expunge(self, inst: Instance) -> None:
        """Forget an instance for good (its kill needs no confirmation: its agent is
        unreachable, as Marathon's KillService expunges such instances). Call under the
        lock; :meth:`_forget_expunged` does the I/O afterwards."""
        self._remove(inst.task.id)
        log.info("%s: expunged (killed while its agent is unreachable)", inst.task.id)

    def _forget_expunged(self, tasks: list[Any]) -> None:
        for task in tasks:
            self.health.forget(task.id)
            self.readiness.forget(task.id)
            self.writer.delete(task)

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

    async def _call(self, call_type: str, body: dict[str, Any] | None) -> int:
        if self.call is None:
            return 0
        result: int = await self.call(call_type, body)
        return result

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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

    # Provided by the parts (declared for the type checker).
    def _on_health(
        self, task_id: str, index: int, state: HealthState, changed: bool, kill: bool
    ) -> None:
        raise NotImplementedError
