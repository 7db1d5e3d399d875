"""The shared core of the leading master: state, allocator, offers and status updates.

``Master`` (``core.py``) combines this with the framework-facing
(``frameworks.py``) and agent-facing (``agents.py``) halves. Everything runs on one
asyncio loop; the only awaits are registry writes, so handlers re-check what they
looked up after an await.

"Acting" gates all work: the master acts only while ZooKeeper names it leader
(session connected), it is the registry's consensus leader and it has committed
its "elected" record. When it stops acting (SUSPENDED session, lost quorum) it
makes no offers, launches nothing and admits no one; calls get 503.

``leading`` is that decision; ``acting`` adds a lease on the ZooKeeper session
(``lease_until``, renewed by the daemon): the master acts only while ZooKeeper has
recently confirmed its session, so one that was paused or cut off longer than
that stops at once — before ZooKeeper can expire its session and let another
master lead — even if it has not heard yet that its session is gone.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections import Counter
from typing import Any

from paddock.master.allocator import HierarchicalAllocator
from paddock.master.config import MESOS_VERSION, MasterConfig
from paddock.master.registry import Registry
from paddock.master.resources import Resources
from paddock.master.state import Agent, Executor, Framework, OfferRecord, Task, vid
from paddock.master.streams import EventStream

log = logging.getLogger(__name__)


class Unavailable(Exception):
    """The master cannot serve this now (not acting, registry unavailable): HTTP 503."""


class CallError(Exception):
    """A malformed or refused call: HTTP ``status`` with a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class MasterBase:
    def __init__(
        self, config: MasterConfig, master_info: dict[str, Any], registry: Registry | None
    ) -> None:
        self.config = config
        self.master_info = master_info
        self.id: str = master_info["id"]
        self.registry = registry
        self.leading = False
        #: time.monotonic() until which the ZooKeeper session is surely alive (the
        #: daemon renews it; in-process tests that run no daemon need none).
        self.lease_until = float("inf")
        self._acting_waiters: list[asyncio.Future[None]] = []
        self.elected_time: float | None = None
        self.start_time = time.time()
        self.allocator = HierarchicalAllocator(
            allocation_interval=config.allocation_interval,
            rng=random.Random(config.seed),
        )
        self.agents: dict[str, Agent] = {}
        self.recovered_agents: dict[str, dict[str, Any]] = {}  # admitted, not re-registered
        self.frameworks: dict[str, Framework] = {}
        self.completed_frameworks: list[Framework] = []
        self.offers: dict[str, OfferRecord] = {}
        self._ids = itertools.count(1)
        self._alloc_pending: set[str] | None = None
        self._alloc_handle: asyncio.Handle | None = None
        self.counters: Counter[str] = Counter()
        self.loop_tasks: list[asyncio.Task[Any]] = []
        self.operator_streams: set[EventStream] = set()

    # ------------------------------------------------------------------ ids, time
    def now(self) -> float:
        return time.monotonic()

    def new_id(self, kind: str) -> str:
        n = next(self._ids)
        if kind == "framework":
            return f"{self.id}-{n:04d}"
        if kind == "agent":
            return f"{self.id}-S{n}"
        return f"{self.id}-O{n}"

    @property
    def acting(self) -> bool:
        """Leading, and the ZooKeeper session is within its lease."""
        return self.leading and time.monotonic() < self.lease_until

    async def wait_acting(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until this master acts as leader; True if it does.

        A master that ZooKeeper has just named leader needs a moment to take over the
        registry. Agents and frameworks learn of the new leader from ZooKeeper at the
        same moment it does; holding their calls for that moment spares them a 503 and
        a retry backoff (an agent's is up to ``--registration-backoff-factor``)."""
        if self.acting:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acting_waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            if fut in self._acting_waiters:
                self._acting_waiters.remove(fut)
        return self.acting

    def _wake_acting_waiters(self) -> None:
        waiters, self._acting_waiters = self._acting_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def require_acting(self) -> None:
        if not self.acting:
            raise Unavailable("Master is not leading or is recovering (no registry quorum)")

    def publish(self, event: dict[str, Any]) -> None:
        """Send an event to every operator SUBSCRIBE stream."""
        for stream in list(self.operator_streams):
            if not stream.send(event):
                self.operator_streams.discard(stream)

    # ------------------------------------------------------------------ overridden
    def remove_framework(self, fw: Framework, reason: str) -> None:  # pragma: no cover
        raise NotImplementedError

    def start_failover_timer(self, fw: Framework) -> None:  # pragma: no cover
        raise NotImplementedError

    # ------------------------------------------------------------------ offers
    def kick_allocation(self, agent_ids: list[str] | None = None) -> None:
        """Allocate soon for these agents (all if None): resources came back."""
        if not self.acting:
            return
        if self._alloc_handle is None:
            self._alloc_pending = None if agent_ids is None else set(agent_ids)
            self._alloc_handle = asyncio.get_running_loop().call_soon(self._allocate_pending)
        elif self._alloc_pending is not None:
            if agent_ids is None:
                self._alloc_pending = None
            else:
                self._alloc_pending.update(agent_ids)

    def _allocate_pending(self) -> None:
        agents = self._alloc_pending
        self._alloc_handle = None
        self._alloc_pending = None
        self.allocate(agents)

    def allocate(self, agent_ids: set[str] | None = None) -> int:
        """One allocation round; send OFFERS events. Returns the number of offers."""
        if not self.acting:
            return 0
        now = self.now()
        t0 = time.perf_counter()
        self.allocator.expire_filters(now)
        offers = self.allocator.allocate(now, agents=agent_ids)
        self.counters["allocation_runs"] += 1
        self.counters["allocation_run_us"] = int((time.perf_counter() - t0) * 1e6)
        by_fw: dict[str, list[dict[str, Any]]] = {}
        for o in offers:
            fw = self.frameworks.get(o.framework_id)
            agent = self.agents.get(o.agent_id)
            if fw is None or agent is None or fw.stream is None:
                self.allocator.recover_resources(
                    o.framework_id, o.agent_id, o.resources, role=o.role, now=now, used=False
                )
                continue
            rec = OfferRecord(self.new_id("offer"), fw.id, agent.id, o.resources, o.role, now)
            self.offers[rec.id] = rec
            fw.offers.add(rec.id)
            agent.offers.add(rec.id)
            by_fw.setdefault(fw.id, []).append(self.offer_json(rec, agent))
        for fw_id, items in by_fw.items():
            fw = self.frameworks[fw_id]
            assert fw.stream is not None
            fw.stream.send({"type": "OFFERS", "offers": {"offers": items}})
            self.counters["messages_resource_offers"] += 1
            self.counters["offers_sent"] += len(items)
        return len(offers)

    def offer_json(self, rec: OfferRecord, agent: Agent) -> dict[str, Any]:
        out = {
            "id": vid(rec.id),
            "framework_id": vid(rec.framework_id),
            "agent_id": vid(agent.id),
            "hostname": agent.hostname,
            "url": {
                "scheme": "http",
                "address": {"hostname": agent.hostname, "ip": agent.hostname, "port": agent.port},
                "path": "/slave(1)",
            },
            "resources": rec.resources.to_json(allocation_role=rec.role),
            "attributes": agent.attributes,
            "allocation_info": {"role": rec.role},
        }
        # The framework's executors running there (Mesos ``Offer.executor_ids``).
        executor_ids = [vid(eid) for fid, eid in agent.executors if fid == rec.framework_id]
        if executor_ids:
            out["executor_ids"] = executor_ids
        return out

    def remove_offer(self, rec: OfferRecord, *, rescind: bool, refuse: float | None = None) -> None:
        """Take an outstanding offer back (recovering its resources); optionally tell the
        framework (RESCIND)."""
        self.offers.pop(rec.id, None)
        fw = self.frameworks.get(rec.framework_id)
        agent = self.agents.get(rec.agent_id)
        if fw is not None:
            fw.offers.discard(rec.id)
            if rescind and fw.stream is not None:
                fw.stream.send({"type": "RESCIND", "rescind": {"offer_id": vid(rec.id)}})
                self.counters["offers_rescinded"] += 1
        if agent is not None:
            agent.offers.discard(rec.id)
        try:
            self.allocator.recover_resources(
                rec.framework_id,
                rec.agent_id,
                rec.resources,
                role=rec.role,
                refuse_seconds=refuse,
                now=self.now(),
                used=False,
            )
        except (ValueError, KeyError):
            log.exception("recovering offer %s failed", rec.id)

    def rescind_offers(self, offer_ids: set[str]) -> None:
        for oid in list(offer_ids):
            rec = self.offers.get(oid)
            if rec is not None:
                self.remove_offer(rec, rescind=True)

    def expire_offers(self) -> None:
        timeout = self.config.offer_timeout
        if not timeout:
            return
        limit = self.now() - timeout
        for rec in [r for r in self.offers.values() if r.created <= limit]:
            self.remove_offer(rec, rescind=True)

    # ------------------------------------------------------------------ status updates
    def master_status(
        self, task: Task, state: str, reason: str, message: str, source: str = "SOURCE_MASTER"
    ) -> dict[str, Any]:
        return {
            "task_id": vid(task.id),
            "state": state,
            "reason": reason,
            "message": message,
            "source": source,
            "agent_id": vid(task.agent_id),
            "timestamp": time.time(),
        }

    def apply_status(self, task: Task, status: dict[str, Any], *, forward: bool = True) -> None:
        """Record a task's new status, free its resources when it ends, tell the framework."""
        old = task.state
        state = str(status.get("state", old))
        task.state = state
        task.latest_status = status
        if state != old or not task.statuses:
            task.statuses.append(status)
            if state in (
                "TASK_FINISHED",
                "TASK_FAILED",
                "TASK_KILLED",
                "TASK_LOST",
                "TASK_ERROR",
            ) or state in ("TASK_DROPPED", "TASK_GONE", "TASK_UNREACHABLE"):
                self.counters["tasks_" + state[5:].lower()] += 1
        if (task.terminal or state == "TASK_UNREACHABLE") and not task.resources_recovered:
            task.resources_recovered = True
            agent = self.agents.get(task.agent_id)
            if agent is not None and task.resources:
                try:
                    self.allocator.recover_resources(
                        task.framework_id,
                        task.agent_id,
                        task.resources,
                        role=task.role,
                        now=self.now(),
                        used=True,
                    )
                except (ValueError, KeyError):
                    log.warning("could not recover resources of task %s", task.id, exc_info=True)
                self.kick_allocation([agent.id])
        if self.operator_streams:
            self.publish(
                {
                    "type": "TASK_UPDATED",
                    "task_updated": {
                        "framework_id": vid(task.framework_id),
                        "status": status,
                        "state": state,
                    },
                }
            )
        fw = self.frameworks.get(task.framework_id)
        if forward and fw is not None and fw.stream is not None:
            fw.stream.send({"type": "UPDATE", "update": {"status": status}})
            self.counters["status_updates_forwarded"] += 1
        if task.terminal and "uuid" not in status:
            # No acknowledgement will come for a master-generated update: done now.
            self.complete_task(task)

    def complete_task(self, task: Task) -> None:
        fw = self.frameworks.get(task.framework_id)
        if fw is not None and fw.tasks.get(task.id) is task:
            del fw.tasks[task.id]
            fw.completed_tasks.append(task)
            del fw.completed_tasks[:-1000]
        agent = self.agents.get(task.agent_id)
        if agent is not None and agent.tasks.get((task.framework_id, task.id)) is task:
            del agent.tasks[(task.framework_id, task.id)]

    # ------------------------------------------------------------------ executors
    def add_executor(self, agent: Agent, executor: Executor) -> None:
        """Track an executor on ``agent`` (its resources are allocated by the caller: in
        the ACCEPT that launches it, or by re-adding the agent)."""
        key = (executor.framework_id, executor.id)
        agent.executors[key] = executor
        fw = self.frameworks.get(executor.framework_id)
        if fw is not None:
            fw.executors[(agent.id, executor.id)] = executor

    def remove_executor(self, agent: Agent, framework_id: str, executor_id: str) -> None:
        """The executor ended (or its framework went): forget it and give its resources
        back to the allocator, as Mesos's ``Master::removeExecutor``."""
        executor = agent.executors.pop((framework_id, executor_id), None)
        if executor is None:
            return
        fw = self.frameworks.get(framework_id)
        if fw is not None and fw.executors.get((agent.id, executor_id)) is executor:
            del fw.executors[(agent.id, executor_id)]
        if executor.resources and self.agents.get(agent.id) is agent:
            try:
                self.allocator.recover_resources(
                    framework_id,
                    agent.id,
                    executor.resources,
                    role=executor.role,
                    now=self.now(),
                    used=True,
                )
            except (ValueError, KeyError):
                log.warning("could not recover resources of executor %s", executor_id)
            self.kick_allocation([agent.id])

    def forget_agent_executors(self, agent: Agent) -> None:
        """The agent left the master's books (removed, unreachable, re-added): its executors
        go from the frameworks' views too (the allocator forgets the agent as a whole)."""
        for (fid, eid), executor in list(agent.executors.items()):
            fw = self.frameworks.get(fid)
            if fw is not None and fw.executors.get((agent.id, eid)) is executor:
                del fw.executors[(agent.id, eid)]
        agent.executors.clear()

    # ------------------------------------------------------------------ introspection
    def offered_on(self, agent: Agent) -> Resources:
        total = Resources()
        for oid in agent.offers:
            rec = self.offers.get(oid)
            if rec is not None:
                total = total + rec.resources
        return total

    def offered_to(self, fw: Framework) -> Resources:
        total = Resources()
        for oid in fw.offers:
            rec = self.offers.get(oid)
            if rec is not None:
                total = total + rec.resources
        return total

    def all_tasks(self) -> list[Task]:
        out: list[Task] = []
        for fw in self.frameworks.values():
            out.extend(fw.tasks.values())
        return out

    def version_json(self) -> dict[str, Any]:
        return {
            "version": MESOS_VERSION,
            "build_date": "",
            "build_time": 0,
            "build_user": "paddock",
            "git_sha": "",
        }
