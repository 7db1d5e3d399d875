"""The agent side of the master (``docs/agent-protocol.md``).

Admission writes the agent to the registry *before* the agent is told it is
registered, so a master without a quorum of masters admits no one. Health: every
``agent_ping_timeout`` the master sends PING; an agent that misses
``max_agent_ping_timeouts`` in a row (or stays disconnected that long) is marked
unreachable in the registry and its tasks become TASK_UNREACHABLE (partition-aware
frameworks) or TASK_LOST. When it re-registers, all its tasks are re-added and their
frameworks told they run (REASON_AGENT_REREGISTERED); none is killed, also not those of
frameworks that are not partition-aware (Mesos >= 1.5).

Custom executors are accounted once per (framework, executor) on an agent: from the
ACCEPT that launches the first task on one, or the agent's REGISTER ``executors``, until
the agent's ``EXITED_EXECUTOR`` call or the framework's removal.  Which run of the
executor that is (the agent's ``container_id``) is tracked by
:mod:`paddock.master.executor_runs`, so the exit of an old run does not free a new one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from paddock.master.attributes import attributes_from_json
from paddock.master.base import CallError, MasterBase, Unavailable
from paddock.master.executor_runs import (
    exit_applies,
    note_exit,
    note_task_run,
    pending_tasks,
    run_of_status,
)
from paddock.master.frameworks import framework_roles
from paddock.master.registry import RegistryError, RegistryUnavailable
from paddock.master.resources import Resources
from paddock.master.state import Agent, Executor, Framework, Task, vid
from paddock.master.streams import EventStream
from paddock.master.views import agent_entry

log = logging.getLogger(__name__)

REREGISTERED = "REASON_AGENT_REREGISTERED"  # v1 name of Mesos's REASON_SLAVE_REREGISTERED


def _id_value(obj: Any) -> str | None:
    value = obj.get("value") if isinstance(obj, dict) else None
    return value if isinstance(value, str) and value else None


def _executor_id(task_info: dict[str, Any]) -> str | None:
    """The executor a task runs under: ``executor_id`` (agent's Task) or ``executor``."""
    ex = task_info.get("executor")
    if isinstance(ex, dict):
        return _id_value(ex.get("executor_id"))
    return _id_value(task_info.get("executor_id"))


def _framework_infos(fws_in: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fws_in:
        if isinstance(f, dict) and isinstance(f.get("id"), dict):
            out[str(f["id"].get("value"))] = f
    return out


def _role_of(fw: Framework, res: Resources) -> str:
    """The allocation role of resources an agent reports: their reservation's role when
    the framework has it, else the framework's first role."""
    rs = res.roles()
    if len(rs) == 1 and rs[0] in fw.roles:
        return rs[0]
    return fw.roles[0]


class AgentMixin(MasterBase):
    async def register_agent(self, call: dict[str, Any], stream: EventStream) -> Agent:
        """REGISTER (new or returning agent). Raises CallError/Unavailable."""
        self.require_acting()
        reg = call.get("register")
        if not isinstance(reg, dict) or not isinstance(reg.get("agent_info"), dict):
            raise CallError(400, "Expecting 'register.agent_info'")
        info = dict(reg["agent_info"])
        if not isinstance(info.get("hostname"), str) or not info["hostname"]:
            raise CallError(400, "agent_info.hostname is required")
        port = info.get("port", 5051)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise CallError(400, "agent_info.port must be a TCP port number")
        try:
            total = Resources.from_json(info.get("resources") or [])
            attributes = [a.to_json() for a in attributes_from_json(info.get("attributes") or [])]
        except ValueError as exc:
            raise CallError(400, f"bad agent_info: {exc}") from None
        tasks_in = reg.get("tasks") or []
        fws_in = reg.get("frameworks") or []
        executors_in = reg.get("executors")
        if not isinstance(tasks_in, list) or not isinstance(fws_in, list):
            raise CallError(400, "'tasks' and 'frameworks' must be lists")
        if executors_in is not None and not isinstance(executors_in, list):
            raise CallError(400, "'executors' must be a list")
        agent_id: str | None = None
        if isinstance(info.get("id"), dict) and isinstance(info["id"].get("value"), str):
            agent_id = info["id"]["value"] or None
        assert self.registry is not None
        regstate = self.registry.state
        if agent_id is not None and agent_id in regstate.gone:
            raise CallError(403, f"Agent {agent_id} has been marked gone; it may not re-register")
        if agent_id is None:
            agent_id = self.new_id("agent")
        info["id"] = vid(agent_id)
        stored = {"hostname": info["hostname"], "port": info.get("port", 5051)}
        returning = agent_id in regstate.admitted  # Mesos counts these as re-registrations
        needs_write = not returning or regstate.admitted[agent_id] != stored
        was_unreachable = agent_id in regstate.unreachable
        expected = agent_id in self.recovered_agents  # admitted, awaited after a failover
        if needs_write:
            try:
                await self.registry.write({"op": "admit", "agent_id": agent_id, "info": stored})
            except RegistryError as exc:
                raise CallError(403, str(exc)) from None
            except RegistryUnavailable as exc:
                raise Unavailable(str(exc)) from None
            self.require_acting()  # we may have lost leadership while writing
        self.recovered_agents.pop(agent_id, None)
        old = self.agents.get(agent_id)
        known_executors = list(old.executors.values()) if old is not None else []
        if old is not None:
            self._drop_agent_state(old)
        agent = Agent(agent_id, info, total, attributes, time.time())
        agent.version = str(reg.get("version", ""))
        shut_down = self._adopt_agent_tasks(agent, tasks_in, fws_in)
        if executors_in is not None:
            shut_down |= self._adopt_agent_executors(agent, executors_in, fws_in)
        else:
            # An agent that does not list its executors (older protocol): keep what this
            # master knew of them (a master that did not know them cannot count them).
            for ex in known_executors:
                if ex.framework_id in self.frameworks:
                    ex.agent_id = agent_id
                    self.add_executor(agent, ex)
        recovered = [] if old is not None or expected else list(agent.tasks.values())
        missing: list[tuple[str, str]] = []
        if old is not None:
            # Tasks the master launched there that the agent did not report (a RUN_TASK
            # lost with the old stream?) stay known; the agent is asked to reconcile
            # them and answers with their status (TASK_LOST if it never got them).
            for key, task in old.tasks.items():
                if key not in agent.tasks and not task.terminal:
                    agent.tasks[key] = task
                    missing.append(key)
        self.agents[agent_id] = agent
        used: dict[Any, Resources] = {}
        for task in agent.tasks.values():
            if task.terminal or task.state == "TASK_UNREACHABLE" or not task.resources:
                continue
            key = (task.framework_id, task.role)
            used[key] = used.get(key, Resources()) + task.resources
        for ex in agent.executors.values():
            if ex.resources:
                key = (ex.framework_id, ex.role)
                used[key] = used.get(key, Resources()) + ex.resources
        self.allocator.add_agent(agent_id, total, used=used)
        agent.stream = stream
        agent.connected = True
        stream.owner = agent_id
        stream.on_closed = self._agent_stream_closed
        stream.send(
            {
                "type": "REGISTERED",
                "registered": {
                    "agent_id": vid(agent_id),
                    "master_info": self.master_info,
                    "ping_interval_seconds": self.config.agent_ping_timeout,
                },
            }
        )
        # The agent re-sends its unacknowledged updates after REGISTERED; here they
        # only bring the master's view of the tasks up to date.
        for st in reg.get("unacknowledged_updates") or []:
            if isinstance(st, dict):
                self.agent_update(agent, {"status": st}, forward=False)
        # As Mesos >= 1.5 (apache/mesos 9d0cadc, MESOS-7215): every re-added task keeps
        # running, also those of frameworks that are not partition-aware (they were told
        # TASK_LOST); the update below tells them it runs.
        self._report_recovered_tasks(recovered, was_unreachable)
        for fid in sorted(shut_down):
            stream.send(
                {"type": "SHUTDOWN_FRAMEWORK", "shutdown_framework": {"framework_id": vid(fid)}}
            )
        if missing:
            items = [{"framework_id": vid(f), "task_id": vid(t)} for f, t in missing]
            stream.send({"type": "RECONCILE", "reconcile": {"tasks": items}})
        self.counters["agents_reregistered" if returning else "agents_registered"] += 1
        log.info("agent %s (%s) registered", agent_id, agent.hostname)
        self.publish({"type": "AGENT_ADDED", "agent_added": {"agent": agent_entry(self, agent)}})
        self.kick_allocation([agent_id])
        return agent

    def _adopt_agent_tasks(self, agent: Agent, tasks_in: list[Any], fws_in: list[Any]) -> set[str]:
        """Take over the tasks the agent reports; returns ids of frameworks that were
        removed here (their tasks are not adopted; the agent must shut them down)."""
        removed = {f.id for f in self.completed_frameworks}
        to_shut_down: set[str] = set()
        fw_infos = _framework_infos(fws_in)
        for t in tasks_in:
            if not isinstance(t, dict):
                continue
            try:
                fid = str(t["framework_id"]["value"])
                tid = str(t["task_id"]["value"])
                res = Resources.from_json(t.get("resources") or [])
            except (KeyError, TypeError, ValueError):
                log.warning("agent %s reported a malformed task; ignored", agent.id)
                continue
            if fid in removed:
                to_shut_down.add(fid)
                continue
            fw = self._framework_of_agent(fid, fw_infos)
            state = str(t.get("state", "TASK_RUNNING"))
            task = fw.tasks.get(tid)
            if task is None or task.agent_id != agent.id:
                task = Task(fid, agent.id, dict(t), res, state=state, role=_role_of(fw, res))
                fw.tasks[tid] = task
                # A task the master had ended on its own (TASK_LOST when the agent became
                # unreachable) is back: it is not also a completed one (MESOS-9940).
                fw.completed_tasks = [c for c in fw.completed_tasks if c.id != tid]
            else:
                task.state = state
                task.resources_recovered = False
            if isinstance(t.get("statuses"), list) and t["statuses"]:
                task.statuses = list(t["statuses"])
                task.latest_status = t["statuses"][-1]
            if task.terminal:
                task.resources_recovered = True
            agent.tasks[(fid, tid)] = task
        return to_shut_down

    def _framework_of_agent(self, fid: str, fw_infos: dict[str, Any]) -> Framework:
        fw = self.frameworks.get(fid)
        if fw is None:
            finfo = dict(fw_infos.get(fid) or {"id": vid(fid), "name": "", "user": ""})
            fw = Framework(fid, finfo, framework_roles(finfo))
            # Recovered from an agent after a failover: as Mesos, it waits for the
            # framework to re-subscribe (no failover timer until it has connected).
            try:
                self.allocator.add_framework(fid, fw.roles, active=False)
            except ValueError:
                fw.roles = ["*"]  # the agent sent roles we cannot use
                self.allocator.add_framework(fid, fw.roles, active=False)
            self.frameworks[fid] = fw
        return fw

    def _adopt_agent_executors(
        self, agent: Agent, executors_in: list[Any], fws_in: list[Any]
    ) -> set[str]:
        """Take over the executors the agent runs (REGISTER ``executors``), each counted
        once; returns ids of removed frameworks among them (to shut down)."""
        removed = {f.id for f in self.completed_frameworks}
        fw_infos = _framework_infos(fws_in)
        to_shut_down: set[str] = set()
        for raw in executors_in:
            try:
                fid = str(raw["framework_id"]["value"])
                eid = str(raw["executor_id"]["value"])
                res = Resources.from_json(raw.get("resources") or [])
            except (KeyError, TypeError, ValueError):
                log.warning("agent %s reported a malformed executor; ignored", agent.id)
                continue
            if fid in removed:
                to_shut_down.add(fid)
                continue
            fw = self._framework_of_agent(fid, fw_infos)
            role = _role_of(fw, res)
            info = dict(raw)
            run_id = _id_value(info.pop("container_id", None))  # the run, not ExecutorInfo
            executor = Executor(fid, agent.id, info, res, role=role, run_id=run_id)
            for task in agent.tasks.values():  # the role its tasks were launched with
                if task.framework_id == fid and _executor_id(task.info) == eid:
                    role = executor.role = task.role
                    if run_id is not None:  # the agent's tasks are in its current run
                        executor.task_runs[task.id] = run_id
            self.add_executor(agent, executor)
        return to_shut_down

    def _report_recovered_tasks(self, tasks: list[Task], was_unreachable: bool) -> None:
        """Tell each framework the state of its tasks on an agent that re-registered after
        being marked unreachable (or that this master did not expect), as Mesos >= 1.5
        does (``Master::_reregisterSlave``): the framework was told TASK_UNREACHABLE or
        TASK_LOST, or never heard of the task from this master, and may have forgotten
        it; without this it learns that the task still runs only at its next
        reconciliation. A framework that is not connected misses it (as in Mesos)."""
        message = "Unreachable agent re-registered"
        if not was_unreachable:
            message = "Unknown agent re-registered"
        for task in tasks:
            fw = self.frameworks.get(task.framework_id)
            if fw is None or fw.stream is None:
                continue
            status: dict[str, Any] = {
                key: value
                for key, value in (task.latest_status or {}).items()
                if key in ("executor_id", "healthy", "check_status", "container_status")
            }
            executor_id = _executor_id(task.info)
            if "executor_id" not in status and executor_id is not None:
                status["executor_id"] = vid(executor_id)
            status.update(self.master_status(task, task.state, REREGISTERED, message))
            fw.stream.send({"type": "UPDATE", "update": {"status": status}})
            self.counters["status_updates_forwarded"] += 1

    def _drop_agent_state(self, agent: Agent) -> None:
        """Forget the allocator's view of the agent and its offers (before re-adding it)."""
        self.rescind_offers(set(agent.offers))
        self.forget_agent_executors(agent)
        if agent.stream is not None:
            stream, agent.stream = agent.stream, None
            stream.close()
        if agent.id in self.allocator.agent_ids():
            self.allocator.remove_agent(agent.id)
        self.agents.pop(agent.id, None)

    def _agent_stream_closed(self, stream: EventStream) -> None:
        agent = self.agents.get(stream.owner)
        if agent is None or agent.stream is not stream:
            return
        log.info("agent %s disconnected", agent.id)
        agent.stream = None
        agent.connected = False
        self.rescind_offers(set(agent.offers))
        if agent.id in self.allocator.agent_ids():
            self.allocator.deactivate_agent(agent.id)

    def agent_for_call(self, stream_id: str | None) -> Agent:
        self.require_acting()
        for agent in self.agents.values():
            if agent.stream is not None and agent.stream.id == stream_id:
                return agent
        raise CallError(403, "Unknown or stale Paddock-Agent-Stream-Id; register again")

    def agent_call(self, agent: Agent, call: dict[str, Any]) -> None:
        t = call.get("type")
        if t == "UPDATE":
            body = call.get("update")
            if not isinstance(body, dict) or not isinstance(body.get("status"), dict):
                raise CallError(400, "Expecting 'update.status'")
            self.agent_update(agent, body)
        elif t == "PONG":
            agent.pong_since_ping = True
            agent.missed_pings = 0
        elif t == "UNREGISTER":
            asyncio.get_running_loop().create_task(self.remove_agent(agent, "agent unregistered"))
        elif t == "FRAMEWORK_MESSAGE":
            self.executor_message(agent, call.get("framework_message"))
        elif t == "EXITED_EXECUTOR":
            self.exited_executor(agent, call.get("exited_executor"))
        else:
            raise CallError(400, f"Unknown agent call type {t!r}")

    def executor_message(self, agent: Agent, body: Any) -> None:
        """Executor -> scheduler message (``MESSAGE`` event), no delivery guarantee."""
        if not isinstance(body, dict) or not isinstance(body.get("data"), str):
            raise CallError(400, "Expecting 'framework_message.data' (base64)")
        fw_id, ex = body.get("framework_id"), body.get("executor_id")
        fid = fw_id.get("value") if isinstance(fw_id, dict) else None
        fw = self.frameworks.get(fid) if isinstance(fid, str) else None
        if fw is None or fw.stream is None or not isinstance(ex, dict):
            log.info("dropping an executor message for framework %s", fid)
            return
        fw.stream.send(
            {
                "type": "MESSAGE",
                "message": {
                    "agent_id": {"value": agent.id},
                    "executor_id": {"value": str(ex.get("value", ""))},
                    "data": body["data"],
                },
            }
        )

    def exited_executor(self, agent: Agent, body: Any) -> None:
        """An executor on the agent ended (Mesos ``ExitedExecutorMessage``): its resources
        come back, and a connected framework gets a ``FAILURE`` event naming it (its tasks'
        updates come from the agent). Unknown executors are ignored, as in Mesos."""
        if not isinstance(body, dict):
            raise CallError(400, "Expecting 'exited_executor'")
        fid = _id_value(body.get("framework_id"))
        eid = _id_value(body.get("executor_id"))
        status = body.get("status", 0)
        if fid is None or eid is None:
            raise CallError(400, "Expecting 'exited_executor.framework_id' and 'executor_id'")
        if isinstance(status, bool) or not isinstance(status, int):
            raise CallError(400, "'exited_executor.status' must be an integer (wait status)")
        run_id = _id_value(body.get("container_id"))
        self.counters["messages_exited_executor"] += 1
        executor = agent.executors.get((fid, eid))
        if executor is None:
            log.info("ignoring unknown exited executor %s of %s on %s", eid, fid, agent.id)
            return
        log.info(
            "executor %s of framework %s on agent %s exited (%d, run %s)",
            eid,
            fid,
            agent.id,
            status,
            run_id,
        )
        fw = self.frameworks.get(fid)
        if fw is not None and fw.stream is not None:
            failure = {"agent_id": vid(agent.id), "executor_id": vid(eid), "status": status}
            fw.stream.send({"type": "FAILURE", "failure": failure})
        if not exit_applies(executor, run_id):
            assert run_id is not None
            executor.exited_runs.add(run_id)
            log.info("executor %s: run %s still counted", eid, executor.run_id)
            return
        note_exit(executor, run_id)
        self._settle_executor(agent, executor)

    def _settle_executor(self, agent: Agent, executor: Executor) -> None:
        """Free an executor whose counted run ended, unless one of its live tasks may be
        in a run the agent has not reported yet (:mod:`paddock.master.executor_runs`)."""
        if not executor.exit_pending or agent.executors.get(executor.key) is not executor:
            return
        waiting = pending_tasks(executor, agent.tasks.values())
        if waiting:
            log.info(
                "executor %s of %s exited; still counted until tasks %s are placed",
                executor.id,
                executor.framework_id,
                ", ".join(sorted(waiting)),
            )
            return
        self.remove_executor(agent, executor.framework_id, executor.id)

    def agent_update(self, agent: Agent, body: dict[str, Any], *, forward: bool = True) -> None:
        status = dict(body["status"])
        tid = (
            status.get("task_id", {}).get("value")
            if isinstance(status.get("task_id"), dict)
            else None
        )
        if not isinstance(tid, str):
            raise CallError(400, "status.task_id is required")
        fid = None
        for src in (body.get("framework_id"), status.get("framework_id")):
            if isinstance(src, dict) and isinstance(src.get("value"), str):
                fid = src["value"]
        task: Task | None = None
        if fid is not None:
            task = agent.tasks.get((fid, tid))
        else:
            for (f, t), cand in agent.tasks.items():
                if t == tid:
                    fid, task = f, cand
                    break
        status.setdefault("agent_id", vid(agent.id))
        status.pop("framework_id", None)
        if task is None:
            fw = self.frameworks.get(fid) if fid else None
            if forward and fw is not None and fw.stream is not None:
                fw.stream.send({"type": "UPDATE", "update": {"status": status}})
            elif (
                fw is None
                and fid is not None
                and agent.stream is not None
                and isinstance(status.get("uuid"), str)
                and any(f.id == fid for f in self.completed_frameworks)
            ):
                # Nobody will acknowledge updates of a removed framework: do it for
                # it, or the agent retries them forever.
                ack = {"framework_id": vid(fid), "task_id": vid(tid), "uuid": status["uuid"]}
                agent.stream.send({"type": "ACKNOWLEDGE", "acknowledge": ack})
            return
        self.counters["status_updates_received"] += 1
        eid = _executor_id(task.info)
        executor = agent.executors.get((task.framework_id, eid)) if eid is not None else None
        run_id = run_of_status(status)
        if executor is not None and run_id is not None:
            note_task_run(executor, tid, run_id)
        self.apply_status(task, status, forward=forward)
        if executor is not None:
            if task.terminal:
                executor.task_runs.pop(tid, None)
            self._settle_executor(agent, executor)

    # ------------------------------------------------------------------ health
    async def health_loop(self) -> None:
        interval = self.config.agent_ping_timeout
        while True:
            await asyncio.sleep(interval)
            if not self.acting:
                continue
            for agent in list(self.agents.values()):
                if not agent.connected or not agent.pong_since_ping:
                    agent.missed_pings += 1
                else:
                    agent.missed_pings = 0
                if agent.missed_pings >= self.config.max_agent_ping_timeouts:
                    asyncio.get_running_loop().create_task(
                        self.mark_unreachable(agent, "health check timed out")
                    )
                    continue
                if agent.stream is not None:
                    agent.pong_since_ping = False
                    agent.stream.send({"type": "PING", "ping": {}})

    async def mark_unreachable(self, agent: Agent, reason: str) -> None:
        if not self.acting or self.agents.get(agent.id) is not agent:
            return
        assert self.registry is not None
        try:
            await self.registry.write(
                {"op": "unreachable", "agent_id": agent.id, "time": time.time()}
            )
        except (RegistryUnavailable, RegistryError) as exc:
            log.warning("could not mark agent %s unreachable: %s", agent.id, exc)
            return
        if self.agents.get(agent.id) is not agent:
            return
        log.warning("agent %s marked unreachable: %s", agent.id, reason)
        self.counters["agents_unreachable"] += 1
        self._lose_agent(agent, reason, unreachable=True)

    async def remove_agent(self, agent: Agent, reason: str) -> None:
        if self.registry is not None:
            try:
                await self.registry.write({"op": "remove", "agent_id": agent.id})
            except (RegistryUnavailable, RegistryError) as exc:
                log.warning("could not remove agent %s: %s", agent.id, exc)
                return
        if self.agents.get(agent.id) is agent:
            self._lose_agent(agent, reason, unreachable=False)

    async def mark_gone(self, agent_id: str) -> None:
        assert self.registry is not None
        try:
            await self.registry.write({"op": "gone", "agent_id": agent_id, "time": time.time()})
        except RegistryUnavailable as exc:
            raise Unavailable(str(exc)) from None
        agent = self.agents.get(agent_id)
        self.recovered_agents.pop(agent_id, None)
        if agent is not None:
            if agent.stream is not None:
                agent.stream.send({"type": "ERROR", "error": {"message": "Agent marked gone"}})
            self._lose_agent(agent, "agent marked gone", unreachable=False, gone=True)

    def _lose_agent(
        self, agent: Agent, reason: str, *, unreachable: bool, gone: bool = False
    ) -> None:
        """Remove the agent from service; its tasks end (or become unreachable)."""
        self.rescind_offers(set(agent.offers))
        for task in list(agent.tasks.values()):
            if task.terminal:
                continue
            fw = self.frameworks.get(task.framework_id)
            pa = fw is not None and fw.partition_aware
            if gone:
                state = "TASK_GONE_BY_OPERATOR" if pa else "TASK_LOST"
            elif unreachable:
                state = "TASK_UNREACHABLE" if pa else "TASK_LOST"
            else:
                state = "TASK_GONE" if pa else "TASK_LOST"
            reason_code = "REASON_AGENT_REMOVED" if not unreachable else "REASON_AGENT_UNREACHABLE"
            self.apply_status(task, self.master_status(task, state, reason_code, reason))
        for fw in self.frameworks.values():
            if fw.stream is not None:
                fw.stream.send({"type": "FAILURE", "failure": {"agent_id": vid(agent.id)}})
        if agent.stream is not None:
            stream, agent.stream = agent.stream, None
            stream.close()
        agent.connected = False
        self.forget_agent_executors(agent)
        if agent.id in self.allocator.agent_ids():
            self.allocator.remove_agent(agent.id)
        self.agents.pop(agent.id, None)
        self.publish({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": vid(agent.id)}})

    async def reregister_deadline(self) -> None:
        """Admitted agents that do not re-register after a failover become unreachable."""
        await asyncio.sleep(self.config.agent_reregister_timeout)
        if not self.acting:
            return
        assert self.registry is not None
        for aid in list(self.recovered_agents):
            try:
                await self.registry.write(
                    {"op": "unreachable", "agent_id": aid, "time": time.time()}
                )
            except (RegistryUnavailable, RegistryError):
                return
            self.recovered_agents.pop(aid, None)
