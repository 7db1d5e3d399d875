"""Status updates and health results: instance state, persistence, events, ACKs.

Each update changes the instance in memory at once, is handed to the status writer
(persisted in batches, then acknowledged) and published as Marathon's
``status_update_event``; Marathon-run health results arrive through ``_on_health``.
"""

from __future__ import annotations

import time
from typing import Any

from paddock.marathon.models import (
    AppDefinition,
    HealthCheckResult,
    IpAddress,
    Task,
    TaskFailure,
)
from paddock.marathon.scheduler.core_base import CoreBase, log
from paddock.marathon.scheduler.health import HealthState
from paddock.marathon.scheduler.instances import (
    BACKOFF_STATES,
    FAILURES,
    TERMINAL,
    Instance,
    changed_task,
)


class StatusHandling(CoreBase):
    """The status-update half of the scheduler core (see the module docstring)."""

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
        stale = False
        with self._lock:
            inst = self._instances.get(task_id)
            if inst is not None and _stale(inst, status):
                # A resend of an earlier update that arrives after a later one (the agent
                # resent its head while the acknowledgement was on its way): acknowledged
                # below, but it must not move the task back (e.g. RUNNING -> STARTING,
                # which held a rolling restart until the next reconciliation).
                stale = True
                log.info("%s: ignoring a stale %s (resent before a later update)",
                         task_id, state)  # fmt: skip
            elif inst is None:
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
                if state in TERMINAL or (state == "TASK_UNREACHABLE" and inst.killing):
                    # A terminal status confirms a kill; an unreachable agent ends it too
                    # (the instance is expunged, as Marathon's KillService does).
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
        if inst is not None and not stale:
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


def _stale(inst: Instance, status: dict[str, Any]) -> bool:
    """Whether ``status`` was made before the last update applied to ``inst`` (and
    remember this one's time when it is not). Reconciliation answers state the master's
    current view and are never stale."""
    stamp = status.get("timestamp")
    if not isinstance(stamp, (int, float)) or status.get("reason") == "REASON_RECONCILIATION":
        return False
    if stamp < inst.status_stamp:
        return True
    inst.status_stamp = float(stamp)
    return False


def _status_ips(status: dict[str, Any]) -> list[IpAddress]:
    out = []
    for info in (status.get("container_status") or {}).get("network_infos") or []:
        for addr in info.get("ip_addresses") or []:
            if addr.get("ip_address"):
                out.append(
                    IpAddress(ip_address=addr["ip_address"], protocol=addr.get("protocol", "IPv4"))
                )
    return out
