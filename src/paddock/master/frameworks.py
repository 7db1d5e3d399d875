"""The scheduler side of the master: the Mesos v1 scheduler calls.

Semantics follow ``docs/scheduler-http-api.md`` and ``src/master/master.cpp``:
SUBSCRIBE opens the event stream (re-subscribing with an id keeps the framework's
tasks; a second subscription fails the first over), ACCEPT launches tasks from
offers after checking they fit, DECLINE installs a refusal filter, RECONCILE
answers with the master's latest knowledge, and a framework that stays
disconnected longer than its ``failover_timeout`` is removed and its tasks killed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from paddock.master.base import CallError, MasterBase
from paddock.master.resources import UNRESERVED, Resources, validate_role
from paddock.master.state import Agent, Executor, Framework, OfferRecord, Task, vid
from paddock.master.streams import EventStream
from paddock.master.views import framework_entry

log = logging.getLogger(__name__)


def _id_of(obj: Any, what: str) -> str:
    if isinstance(obj, dict) and isinstance(obj.get("value"), str) and obj["value"]:
        return str(obj["value"])
    raise CallError(400, f'missing or malformed {what} (want {{"value": "..."}})')


def _list_at(obj: dict[str, Any], *keys: str) -> list[Any]:
    """``obj[k1][k2]...``, a list (absent: empty); 400 when a step is of the wrong type
    (fuzzing found ``"launch": [null]`` raising AttributeError: a 500)."""
    value: Any = obj
    for n, key in enumerate(keys):
        value = value.get(key) or ([] if n == len(keys) - 1 else {})
        want = list if n == len(keys) - 1 else dict
        if not isinstance(value, want):
            what = "a list" if want is list else "an object"
            raise CallError(400, f"'{'.'.join(keys[: n + 1])}' must be {what}")
    return list(value)


def _comparable_executor(info: dict[str, Any]) -> dict[str, Any]:
    """An ExecutorInfo as compared for "the same executor": ``framework_id`` filled in and
    ``type`` CUSTOM by default (the agent reports it so after a failover)."""
    out = dict(info)
    out.pop("framework_id", None)
    out.setdefault("type", "CUSTOM")
    return out


def framework_roles(info: dict[str, Any]) -> list[str]:
    caps = info.get("capabilities") or []
    multi = any(isinstance(c, dict) and c.get("type") == "MULTI_ROLE" for c in caps)
    if multi and isinstance(info.get("roles"), list) and info["roles"]:
        return [str(r) for r in info["roles"]]
    role = info.get("role") or UNRESERVED
    return [str(role)]


class FrameworkMixin(MasterBase):
    # ------------------------------------------------------------------ SUBSCRIBE
    def subscribe(self, call: dict[str, Any], principal: str | None) -> tuple[Framework, bool]:
        """Returns the framework and whether it was already known."""
        self.require_acting()
        sub = call.get("subscribe")
        if not isinstance(sub, dict) or not isinstance(sub.get("framework_info"), dict):
            raise CallError(400, "Expecting 'subscribe.framework_info' to be present")
        info = dict(sub["framework_info"])
        if not isinstance(info.get("user", ""), str) or not isinstance(info.get("name", ""), str):
            raise CallError(400, "framework_info.user and name must be strings")
        caps = info.get("capabilities")
        if caps is not None and not (
            isinstance(caps, list) and all(isinstance(c, dict) for c in caps)
        ):
            raise CallError(400, "'framework_info.capabilities' must be a list of objects")
        if principal is not None and info.get("principal") not in (None, principal):
            raise CallError(
                403,
                f"framework principal {info.get('principal')!r} is not the authenticated "
                f"principal {principal!r}",
            )
        if principal is not None:
            info["principal"] = principal
        roles = framework_roles(info)
        for r in roles:
            try:
                validate_role(r)
            except ValueError as exc:
                raise CallError(400, f"bad role in framework_info: {exc}") from None
        raw_suppressed = sub.get("suppressed_roles")
        if raw_suppressed is not None and not isinstance(raw_suppressed, list):
            raise CallError(400, "'subscribe.suppressed_roles' must be a list")
        suppressed = [r for r in raw_suppressed or [] if r in roles]
        fid = None
        if isinstance(info.get("id"), dict):
            fid = _id_of(info["id"], "framework_info.id")
        if call.get("framework_id") is not None:
            cid = _id_of(call["framework_id"], "framework_id")
            if fid is not None and fid != cid:
                raise CallError(400, "'framework_id' differs from 'subscribe.framework_info.id'")
            fid = cid
        known = False
        if fid is not None and any(f.id == fid for f in self.completed_frameworks):
            raise CallError(403, f"Framework {fid} has been removed (torn down or failed over)")
        if fid is not None and fid in self.frameworks:
            fw = self.frameworks[fid]
            # As Mesos ("changing framework's principal is not allowed"): with
            # authentication on, another principal's SUBSCRIBE with this id would
            # otherwise fail the owner over and take its tasks.
            if principal is not None and fw.info.get("principal") not in (None, principal):
                raise CallError(403, f"Framework {fid} belongs to another principal")
            known = True
            if fw.failover_handle is not None:
                fw.failover_handle.cancel()
                fw.failover_handle = None
            if fw.stream is not None:
                old = fw.stream
                fw.stream = None
                old.send({"type": "ERROR", "error": {"message": "Framework failed over"}})
                old.close()
            info["id"] = vid(fid)
            fw.info = info
            fw.reregistered_time = time.time()
            if roles != fw.roles:
                self.allocator.update_framework(fid, roles)
                fw.roles = roles
            self.allocator.revive(fid)  # SUBSCRIBE sets the suppressed roles afresh
        else:
            if fid is None:
                fid = self.new_id("framework")
            info["id"] = vid(fid)
            fw = Framework(fid, info, roles)
            self.frameworks[fid] = fw
            self.allocator.add_framework(fid, roles, active=False)
        if suppressed:
            self.allocator.suppress(fid, suppressed)
        fw.suppressed = bool(suppressed)
        return fw, known

    def attach_stream(self, fw: Framework, stream: EventStream) -> None:
        first = fw.stream_id is None
        fw.stream = stream
        fw.stream_id = stream.id
        fw.connected = True
        fw.active = True
        fw.unregistered_time = None
        self.allocator.activate_framework(fw.id)
        stream.on_closed = self._framework_stream_closed
        stream.send(
            {
                "type": "SUBSCRIBED",
                "subscribed": {
                    "framework_id": vid(fw.id),
                    "heartbeat_interval_seconds": self.config.heartbeat_interval,
                    "master_info": self.master_info,
                },
            }
        )
        self.counters["frameworks_subscribed"] += 1
        kind = "FRAMEWORK_ADDED" if first else "FRAMEWORK_UPDATED"
        self.publish({"type": kind, kind.lower(): {"framework": framework_entry(self, fw)}})
        self.kick_allocation()

    def _framework_stream_closed(self, stream: EventStream) -> None:
        fw = self.frameworks.get(stream.owner)
        if fw is None or fw.stream is not stream:
            return
        self.disconnect_framework(fw)

    def disconnect_framework(self, fw: Framework) -> None:
        log.info("framework %s disconnected; failover timeout %gs", fw.id, fw.failover_timeout)
        fw.stream = None
        fw.connected = False
        fw.active = False
        fw.unregistered_time = time.time()
        if fw.id in self.allocator.framework_ids():
            self.allocator.deactivate_framework(fw.id)
        for oid in list(fw.offers):
            rec = self.offers.get(oid)
            if rec is not None:
                self.remove_offer(rec, rescind=False)
        self.start_failover_timer(fw)
        self.publish(
            {
                "type": "FRAMEWORK_UPDATED",
                "framework_updated": {"framework": framework_entry(self, fw)},
            }
        )

    def start_failover_timer(self, fw: Framework) -> None:
        if fw.failover_handle is not None:
            fw.failover_handle.cancel()
        fw.failover_handle = asyncio.get_running_loop().call_later(
            fw.failover_timeout, self._failover_expired, fw.id
        )

    def _failover_expired(self, fid: str) -> None:
        fw = self.frameworks.get(fid)
        if fw is None or fw.connected:
            return
        if not self.acting:
            # Try again later: removing needs a working master.
            fw.failover_handle = asyncio.get_running_loop().call_later(
                1.0, self._failover_expired, fid
            )
            return
        log.info("framework %s did not re-subscribe within its failover timeout", fid)
        self.remove_framework(fw, "failover timeout")

    def remove_framework(self, fw: Framework, reason: str) -> None:
        """Tear down: kill its tasks on the agents, free everything, end its stream."""
        if fw.failover_handle is not None:
            fw.failover_handle.cancel()
            fw.failover_handle = None
        for oid in list(fw.offers):
            rec = self.offers.get(oid)
            if rec is not None:
                self.remove_offer(rec, rescind=False)
        # Every connected agent, as Mesos: one may still run the framework's executors
        # after all its tasks there ended.
        for agent in list(self.agents.values()):
            if agent.stream is not None:
                agent.stream.send(
                    {
                        "type": "SHUTDOWN_FRAMEWORK",
                        "shutdown_framework": {"framework_id": vid(fw.id)},
                    }
                )
        for task in list(fw.tasks.values()):
            if not task.terminal:
                st = self.master_status(task, "TASK_KILLED", "REASON_FRAMEWORK_REMOVED", reason)
                self.apply_status(task, st, forward=False)
            self.complete_task(task)
        for aid, eid in list(fw.executors):
            agent_ = self.agents.get(aid)
            if agent_ is not None:
                self.remove_executor(agent_, fw.id, eid)
        fw.executors.clear()
        if fw.id in self.allocator.framework_ids():
            self.allocator.remove_framework(fw.id)
        self.frameworks.pop(fw.id, None)
        fw.active = False
        fw.connected = False
        self.completed_frameworks.append(fw)
        del self.completed_frameworks[:-50]
        if fw.stream is not None:
            stream, fw.stream = fw.stream, None
            stream.close()
        self.counters["frameworks_removed"] += 1
        self.publish(
            {"type": "FRAMEWORK_REMOVED", "framework_removed": {"framework_info": fw.info}}
        )

    # ------------------------------------------------------------------ other calls
    def framework_for_call(self, call: dict[str, Any], stream_id: str | None) -> Framework:
        self.require_acting()
        fid = _id_of(call.get("framework_id"), "framework_id")
        fw = self.frameworks.get(fid)
        if fw is None or fw.stream is None:
            raise CallError(403, f"Framework {fid} is not subscribed")
        if stream_id != fw.stream_id:
            raise CallError(
                400,
                "The stream ID included in this request didn't match the stream ID "
                f"currently associated with framework ID {fid}",
            )
        return fw

    def scheduler_call(self, fw: Framework, call: dict[str, Any]) -> None:
        t = call.get("type")
        body = call.get(str(t).lower()) if isinstance(t, str) else None
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise CallError(400, f"'{str(t).lower()}' must be an object")
        self.counters[f"messages_{str(t).lower()}"] += 1
        if t == "ACCEPT":
            self.accept(fw, body)
        elif t == "DECLINE":
            self.decline(fw, body)
        elif t == "REVIVE":
            self.allocator.revive(fw.id, self._roles_arg(fw, body))
            fw.suppressed = False
            self.kick_allocation()
        elif t == "SUPPRESS":
            self.allocator.suppress(fw.id, self._roles_arg(fw, body))
            fw.suppressed = True
        elif t == "KILL":
            self.kill(fw, body)
        elif t == "ACKNOWLEDGE":
            self.acknowledge(fw, body)
        elif t == "RECONCILE":
            self.reconcile(fw, body)
        elif t == "TEARDOWN":
            self.remove_framework(fw, "framework teardown")
        elif t == "MESSAGE":
            self.framework_message(fw, body)
        elif t in (
            "SHUTDOWN",
            "REQUEST",
            "ACCEPT_INVERSE_OFFERS",
            "DECLINE_INVERSE_OFFERS",
            "RECONCILE_OPERATIONS",
            "ACKNOWLEDGE_OPERATION_STATUS",
            "UPDATE_FRAMEWORK",
        ):
            pass  # accepted, nothing to do in paddock (no executors to message)
        else:
            raise CallError(400, f"Unknown call type {t!r}")

    def framework_message(self, fw: Framework, body: dict[str, Any]) -> None:
        """Scheduler -> executor message: passed to the agent as is, without any
        delivery guarantee (as Mesos); an unknown or disconnected agent drops it."""
        aid = _id_of(body.get("agent_id"), "agent_id")
        ex = _id_of(body.get("executor_id"), "executor_id")
        data = body.get("data")
        if not isinstance(data, str):
            raise CallError(400, "Expecting 'message.data' (base64) to be present")
        agent = self.agents.get(aid)
        if agent is None or agent.stream is None:
            log.info("dropping a message of framework %s for unknown agent %s", fw.id, aid)
            return
        agent.stream.send(
            {
                "type": "FRAMEWORK_MESSAGE",
                "framework_message": {
                    "framework_id": vid(fw.id),
                    "executor_id": vid(ex),
                    "data": data,
                },
            }
        )

    def _roles_arg(self, fw: Framework, body: dict[str, Any]) -> list[str] | None:
        roles = body.get("roles")
        if not roles:
            return None
        if not isinstance(roles, list):
            raise CallError(400, "'roles' must be a list")
        unknown = [r for r in roles if r not in fw.roles]
        if unknown:
            raise CallError(400, f"roles {unknown} are not subscribed by the framework")
        return [str(r) for r in roles]

    def _refuse(self, body: dict[str, Any]) -> float:
        filters = body.get("filters")
        if isinstance(filters, dict) and "refuse_seconds" in filters:
            try:
                return float(filters["refuse_seconds"])
            except (TypeError, ValueError):
                raise CallError(400, "filters.refuse_seconds must be a number") from None
        return 5.0

    def _take_offers(
        self, fw: Framework, body: dict[str, Any]
    ) -> tuple[list[OfferRecord], list[str]]:
        ids = body.get("offer_ids")
        if not isinstance(ids, list):
            raise CallError(400, "'offer_ids' must be a list")
        found: list[OfferRecord] = []
        missing: list[str] = []
        for o in ids:
            oid = _id_of(o, "offer id")
            rec = self.offers.get(oid)
            if rec is None or rec.framework_id != fw.id:
                missing.append(oid)
            else:
                found.append(rec)
        return found, missing

    def decline(self, fw: Framework, body: dict[str, Any]) -> None:
        refuse = self._refuse(body)
        recs, _ = self._take_offers(fw, body)
        for rec in recs:
            self.remove_offer(rec, rescind=False, refuse=refuse)

    def accept(self, fw: Framework, body: dict[str, Any]) -> None:
        refuse = self._refuse(body)
        recs, missing = self._take_offers(fw, body)
        ops = body.get("operations") or []
        if not isinstance(ops, list):
            raise CallError(400, "'operations' must be a list")
        task_infos: list[dict[str, Any]] = []
        for op in ops:
            if not isinstance(op, dict):
                raise CallError(400, "each operation must be an object")
            if op.get("type") == "LAUNCH":
                infos = _list_at(op, "launch", "task_infos")
                task_infos.extend(i for i in infos if isinstance(i, dict))
            elif op.get("type") == "LAUNCH_GROUP":
                lg = op.get("launch_group") or {}
                infos = _list_at(op, "launch_group", "task_group", "tasks")
                for i in infos:
                    if isinstance(i, dict):
                        i = dict(i)
                        if "executor" in lg:
                            i.setdefault("executor", lg["executor"])
                        task_infos.append(i)
        agents = {r.agent_id for r in recs}
        roles = {r.role for r in recs}
        problem = None
        if missing:
            problem = ("REASON_INVALID_OFFERS", f"Offers {missing} are no longer valid")
        elif not recs:
            problem = ("REASON_INVALID_OFFERS", "No offers given")
        elif len(agents) > 1:
            problem = ("REASON_INVALID_OFFERS", "Offers span more than one agent")
        elif len(roles) > 1:
            problem = ("REASON_INVALID_OFFERS", "Offers are allocated to different roles")
        if problem is not None:
            for rec in recs:
                self.remove_offer(rec, rescind=False)
            for info in task_infos:
                self._send_task_error(
                    fw, info, ("TASK_DROPPED" if fw.partition_aware else "TASK_LOST"), *problem
                )
            return
        agent_id = recs[0].agent_id
        role = recs[0].role
        offered = Resources()
        for rec in recs:
            self.offers.pop(rec.id, None)
            fw.offers.discard(rec.id)
            agent_ = self.agents.get(agent_id)
            if agent_ is not None:
                agent_.offers.discard(rec.id)
            offered = offered + rec.resources
        agent = self.agents.get(agent_id)
        used = Resources()
        launched: list[Task] = []
        for info in task_infos:
            err = self._validate_task(fw, info, agent_id)
            res = Resources()
            new_executor: Executor | None = None
            if err is None:
                try:
                    res = Resources.from_json(info.get("resources") or [])
                except ValueError as exc:
                    err = f"Invalid resources: {exc}"
            if err is None and agent is not None and info.get("executor") is not None:
                new_executor, err = self._executor_to_launch(fw, agent, info["executor"], role)
            need = res + new_executor.resources if new_executor is not None else res
            if err is None and not offered.contains(used + need):
                err = f"Task uses more resources {need} than available {offered - used}"
            if err is None and (agent is None or agent.stream is None):
                err = "Agent is not connected"
            if err is not None:
                self._send_task_error(fw, info, "TASK_ERROR", "REASON_TASK_INVALID", err)
                continue
            assert agent is not None
            used = used + need
            if new_executor is not None:
                # The first task naming this executor on this agent launches it: its
                # resources are allocated now, once (Mesos ``isLaunchExecutor``).
                self.add_executor(agent, new_executor)
            task = Task(fw.id, agent_id, dict(info), res, role=role)
            task.info["agent_id"] = vid(agent_id)
            fw.tasks[task.id] = task
            agent.tasks[(fw.id, task.id)] = task
            launched.append(task)
        try:
            self.allocator.accept(
                fw.id, agent_id, offered, used, role=role, refuse_seconds=refuse, now=self.now()
            )
        except (ValueError, KeyError):
            log.exception("allocator refused accept")
        for task in launched:
            task.statuses.append({"state": "TASK_STAGING", "timestamp": time.time()})
            assert agent is not None and agent.stream is not None
            agent.stream.send(
                {"type": "RUN_TASK", "run_task": {"framework": fw.info, "task": task.info}}
            )
            self.counters["tasks_launched"] += 1
            self.publish({"type": "TASK_ADDED", "task_added": {"task": task.to_v1()}})

    def _validate_task(self, fw: Framework, info: dict[str, Any], agent_id: str) -> str | None:
        tid = info.get("task_id")
        if not isinstance(tid, dict) or not isinstance(tid.get("value"), str) or not tid["value"]:
            return "Task has no task_id"
        if tid["value"] in fw.tasks:
            return f"Task {tid['value']} already exists"
        aid = info.get("agent_id")
        if isinstance(aid, dict) and aid.get("value") != agent_id:
            return f"Task uses agent {aid.get('value')} but the offer is for agent {agent_id}"
        return None

    def _executor_to_launch(
        self, fw: Framework, agent: Agent, raw: Any, role: str
    ) -> tuple[Executor | None, str | None]:
        """Check a task's ExecutorInfo; returns the executor the task launches (None when
        it runs on one already on the agent) or an error (Mesos ``validateExecutor``)."""
        if not isinstance(raw, dict):
            return None, "'executor' must be an ExecutorInfo object"
        eid = raw.get("executor_id")
        value = eid.get("value") if isinstance(eid, dict) else None
        if not isinstance(value, str) or not value:
            return None, "ExecutorInfo has no executor_id"
        if (
            value in (".", "..")
            or len(value) > 255
            or any(c == "/" or ord(c) < 32 or ord(c) == 127 for c in value)
        ):
            return None, f"Executor id {value!r} is invalid (empty, '.', '..', '/' or control)"
        fid = raw.get("framework_id")
        if fid is not None and fid != vid(fw.id):
            return None, "ExecutorInfo has an invalid FrameworkID"
        if not isinstance(raw.get("command"), dict):
            # The agent runs custom executors only; without a command it would refuse
            # the task and the executor's resources would never come back.
            return None, "ExecutorInfo has no command (paddock runs custom executors only)"
        try:
            resources = Resources.from_json(raw.get("resources") or [])
        except ValueError as exc:
            return None, f"Invalid executor resources: {exc}"
        info = dict(raw)
        info["framework_id"] = vid(fw.id)
        existing = agent.executors.get((fw.id, value))
        if existing is not None:
            if _comparable_executor(existing.info) != _comparable_executor(info):
                return None, (
                    f"ExecutorInfo is not compatible with existing ExecutorInfo with same "
                    f"ExecutorID {value!r}"
                )
            return None, None
        return Executor(fw.id, agent.id, info, resources, role=role), None

    def _send_task_error(
        self, fw: Framework, info: dict[str, Any], state: str, reason: str, message: str
    ) -> None:
        tid = info.get("task_id") if isinstance(info.get("task_id"), dict) else vid("")
        status = {
            "task_id": tid,
            "state": state,
            "reason": reason,
            "message": message,
            "source": "SOURCE_MASTER",
            "timestamp": time.time(),
        }
        if fw.stream is not None:
            fw.stream.send({"type": "UPDATE", "update": {"status": status}})

    def kill(self, fw: Framework, body: dict[str, Any]) -> None:
        tid = _id_of(body.get("task_id"), "task_id")
        task = fw.tasks.get(tid)
        if task is None:
            # As Mesos's Master::kill: reconcile the task explicitly. Above all, say nothing
            # while its agent may still re-register with it after a failover: a
            # TASK_UNKNOWN now would make the framework forget a task that keeps running.
            item: dict[str, Any] = {"task_id": vid(tid)}
            if isinstance(body.get("agent_id"), dict):
                item["agent_id"] = body["agent_id"]
            self.reconcile(fw, {"tasks": [item]})
            return
        agent = self.agents.get(task.agent_id)
        if agent is None or agent.stream is None:
            return  # the agent will be told when it re-registers (or the task ends unreachable)
        msg: dict[str, Any] = {"framework_id": vid(fw.id), "task_id": vid(tid)}
        if isinstance(body.get("kill_policy"), dict):
            msg["kill_policy"] = body["kill_policy"]
        agent.stream.send({"type": "KILL_TASK", "kill_task": msg})

    def acknowledge(self, fw: Framework, body: dict[str, Any]) -> None:
        aid = _id_of(body.get("agent_id"), "agent_id")
        tid = _id_of(body.get("task_id"), "task_id")
        uuid = body.get("uuid")
        if not isinstance(uuid, str):
            raise CallError(400, "'uuid' must be a base64 string")
        agent = self.agents.get(aid)
        if agent is not None and agent.stream is not None:
            agent.stream.send(
                {
                    "type": "ACKNOWLEDGE",
                    "acknowledge": {"framework_id": vid(fw.id), "task_id": vid(tid), "uuid": uuid},
                }
            )
        task = fw.tasks.get(tid)
        if (
            task is not None
            and task.terminal
            and task.latest_status is not None
            and task.latest_status.get("uuid") == uuid
        ):
            self.complete_task(task)

    def reconcile(self, fw: Framework, body: dict[str, Any]) -> None:
        items = body.get("tasks") or []
        if not isinstance(items, list):
            raise CallError(400, "'tasks' must be a list")
        statuses: list[dict[str, Any]] = []
        if not items:
            for known in fw.tasks.values():
                statuses.append(self._reconcile_status(known))
        for item in items:
            if not isinstance(item, dict):
                raise CallError(400, "each reconcile task must be an object")
            tid = _id_of(item.get("task_id"), "task_id")
            task = fw.tasks.get(tid)
            if task is not None:
                statuses.append(self._reconcile_status(task))
                continue
            aid = (
                item.get("agent_id", {}).get("value")
                if isinstance(item.get("agent_id"), dict)
                else None
            )
            if aid is not None and aid in self.recovered_agents:
                continue  # the agent may still re-register: Mesos stays silent
            state = "TASK_LOST"
            if fw.partition_aware:
                state = "TASK_UNKNOWN"
                if aid is not None and self.registry is not None:
                    if aid in self.registry.state.unreachable:
                        state = "TASK_UNREACHABLE"
                    elif aid in self.registry.state.gone:
                        state = "TASK_GONE"
            st: dict[str, Any] = {
                "task_id": vid(tid),
                "state": state,
                "reason": "REASON_RECONCILIATION",
                "message": "Reconciliation: task is unknown",
                "source": "SOURCE_MASTER",
                "timestamp": time.time(),
            }
            if aid is not None:
                st["agent_id"] = vid(aid)
            statuses.append(st)
        if fw.stream is not None:
            for st in statuses:
                fw.stream.send({"type": "UPDATE", "update": {"status": st}})

    def _reconcile_status(self, task: Task) -> dict[str, Any]:
        base = dict(task.latest_status or {})
        base.pop("uuid", None)
        base.update(
            {
                "task_id": vid(task.id),
                "state": task.state,
                "agent_id": vid(task.agent_id),
                "reason": "REASON_RECONCILIATION",
                "message": "Reconciliation: latest task state",
                "source": "SOURCE_MASTER",
                "timestamp": time.time(),
            }
        )
        return base
