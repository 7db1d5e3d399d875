"""``Master``: the scheduler and agent halves together, plus leadership transitions,
periodic work (allocation, heartbeats, offer timeouts) and the operator views."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from paddock.master.agents import AgentMixin
from paddock.master.base import Unavailable
from paddock.master.frameworks import FrameworkMixin
from paddock.master.registry import RegistryUnavailable
from paddock.master.state import TERMINAL_STATES

log = logging.getLogger(__name__)


class Master(FrameworkMixin, AgentMixin):
    # ------------------------------------------------------------------ leadership
    def start_acting(self) -> None:
        """The registry accepted our "elected" record: serve as the leader."""
        if self.leading:
            return
        first = self.elected_time is None
        self.leading = True
        if first:
            self.elected_time = time.time()
            assert self.registry is not None
            if self.registry.state.weights:
                self.allocator.update_weights(self.registry.state.weights)
            for aid, info in self.registry.state.admitted.items():
                if aid not in self.agents:
                    self.recovered_agents[aid] = info
            log.info(
                "elected and recovered: %d admitted agents expected to re-register",
                len(self.recovered_agents),
            )
            self.loop_tasks.append(
                asyncio.get_running_loop().create_task(self.reregister_deadline())
            )
        else:
            log.info("registry quorum is back: acting as leader again")
        self.kick_allocation()
        self._wake_acting_waiters()

    async def update_weights(self, weights: dict[str, float]) -> None:
        """Role weights are in the registry (they survive failover), then in the allocator."""
        assert self.registry is not None
        try:
            await self.registry.write({"op": "weights", "weights": weights})
        except RegistryUnavailable as exc:
            raise Unavailable(str(exc)) from None
        self.allocator.update_weights(weights)

    def stop_acting(self, why: str) -> None:
        """Stop offering, launching and admitting at once (streams stay open)."""
        if not self.leading:
            return
        self.leading = False
        log.warning("stopped acting as leader: %s", why)
        for rec in list(self.offers.values()):
            self.remove_offer(rec, rescind=True)

    def start_loops(self) -> None:
        loop = asyncio.get_running_loop()
        self.loop_tasks += [
            loop.create_task(self._allocation_loop()),
            loop.create_task(self._heartbeat_loop()),
            loop.create_task(self.health_loop()),
        ]

    async def stop(self) -> None:
        self.leading = False
        for t in self.loop_tasks:
            t.cancel()
        await asyncio.gather(*self.loop_tasks, return_exceptions=True)
        for fw in self.frameworks.values():
            if fw.failover_handle is not None:
                fw.failover_handle.cancel()
            if fw.stream is not None:
                fw.stream.close()
        for agent in self.agents.values():
            if agent.stream is not None:
                agent.stream.close()
        for stream in self.operator_streams:
            stream.close()

    async def _allocation_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.allocation_interval)
            if self.acting:
                try:
                    self.expire_offers()
                    self.allocate()
                except Exception:
                    log.exception("allocation round failed")

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            for fw in self.frameworks.values():
                if fw.stream is not None:
                    fw.stream.send({"type": "HEARTBEAT"})
            self.publish({"type": "HEARTBEAT"})

    # ------------------------------------------------------------------ views
    def task_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for fw in self.frameworks.values():
            for t in fw.tasks.values():
                counts[t.state] = counts.get(t.state, 0) + 1
        return counts

    def state_json(
        self, leader_info: dict[str, Any] | None, *, summary: bool = False
    ) -> dict[str, Any]:
        leader = ""
        if leader_info is not None:
            addr = leader_info.get("address", {})
            leader = f"master@{addr.get('ip', '')}:{addr.get('port', '')}"
        me = self.master_info
        slaves = [a.to_classic(self.offered_on(a)) for a in self.agents.values()]
        frameworks = [f.to_classic(self.offered_to(f)) for f in self.frameworks.values()]
        counts = self.task_counts()
        if summary:
            for s, a in zip(slaves, self.agents.values(), strict=True):
                for st in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING"):
                    s[st] = sum(1 for t in a.tasks.values() if t.state == st)
                s["framework_ids"] = sorted({t.framework_id for t in a.tasks.values()})
            for f in frameworks:
                f["slave_ids"] = sorted(
                    {t.agent_id for t in self.frameworks[f["id"]].tasks.values()}
                )
                for key in ("tasks", "completed_tasks", "unreachable_tasks", "offers", "executors"):
                    f.pop(key, None)
            return {
                "hostname": me["hostname"],
                "cluster": "",
                "slaves": slaves,
                "frameworks": frameworks,
            }
        return {
            "version": me["version"],
            "git_sha": "",
            "build_date": "",
            "build_time": 0,
            "build_user": "paddock",
            "start_time": self.start_time,
            "elected_time": self.elected_time or 0,
            "id": me["id"],
            "pid": me["pid"],
            "hostname": me["hostname"],
            "capabilities": ["AGENT_UPDATE", "MULTI_ROLE"],
            "activated_slaves": sum(1 for a in self.agents.values() if a.connected),
            "deactivated_slaves": sum(1 for a in self.agents.values() if not a.connected),
            "unreachable_slaves": len(self.registry.state.unreachable) if self.registry else 0,
            "leader": leader,
            "leader_info": leader_info or {},
            "log_dir": "",
            "flags": self.flags_json(),
            "slaves": slaves,
            "recovered_slaves": [{"id": k, **v} for k, v in self.recovered_agents.items()],
            "frameworks": frameworks,
            "completed_frameworks": [
                f.to_classic(self.offered_to(f)) for f in self.completed_frameworks
            ],
            "orphan_tasks": [],
            "unregistered_frameworks": [],
            "staged_tasks": counts.get("TASK_STAGING", 0),
        }

    def flags_json(self) -> dict[str, str]:
        c = self.config
        return {
            "zk": f"zk://{c.zk.hosts}{c.zk.path}",
            "quorum": str(c.quorum),
            "port": str(c.port),
            "ip": c.ip,
            "hostname": c.hostname,
            "work_dir": str(c.work_dir),
            "registry": "replicated_log",
            "allocation_interval": f"{c.allocation_interval}secs",
            "agent_ping_timeout": f"{c.agent_ping_timeout}secs",
            "max_agent_ping_timeouts": str(c.max_agent_ping_timeouts),
            "authenticate_frameworks": str(c.credentials is not None).lower(),
            "authenticate_agents": str(c.credentials is not None).lower(),
            "zk_session_timeout": f"{c.zk_session_timeout}secs",
        }

    def metrics_snapshot(self, elected: bool) -> dict[str, float]:
        counts = self.task_counts()
        c = self.counters
        agents = list(self.agents.values())
        total_cpus = sum(a.total.get_scalar("cpus") for a in agents)
        total_mem = sum(a.total.get_scalar("mem") for a in agents)
        used_cpus = sum(a.used().get_scalar("cpus") for a in agents)
        used_mem = sum(a.used().get_scalar("mem") for a in agents)
        out: dict[str, float] = {
            "master/elected": 1.0 if elected else 0.0,
            "master/uptime_secs": time.time() - self.start_time,
            "master/agents_active": float(sum(1 for a in agents if a.connected and a.active)),
            "master/agents_inactive": float(sum(1 for a in agents if not a.active)),
            "master/agents_connected": float(sum(1 for a in agents if a.connected)),
            "master/agents_disconnected": float(sum(1 for a in agents if not a.connected)),
            "master/agents_unreachable": float(
                len(self.registry.state.unreachable) if self.registry else 0
            ),
            "master/slaves_active": float(sum(1 for a in agents if a.connected and a.active)),
            "master/slaves_connected": float(sum(1 for a in agents if a.connected)),
            "master/slave_registrations": float(c["agents_registered"]),
            "master/slave_reregistrations": float(c["agents_reregistered"]),
            "master/frameworks_active": float(sum(1 for f in self.frameworks.values() if f.active)),
            "master/frameworks_inactive": float(
                sum(1 for f in self.frameworks.values() if not f.active)
            ),
            "master/frameworks_connected": float(
                sum(1 for f in self.frameworks.values() if f.connected)
            ),
            "master/frameworks_disconnected": float(
                sum(1 for f in self.frameworks.values() if not f.connected)
            ),
            "master/outstanding_offers": float(len(self.offers)),
            "master/messages_resource_offers": float(c["messages_resource_offers"]),
            "master/offers_sent": float(c["offers_sent"]),
            "master/offers_rescinded": float(c["offers_rescinded"]),
            "master/tasks_launched": float(c["tasks_launched"]),
            "master/cpus_total": total_cpus,
            "master/cpus_used": used_cpus,
            "master/mem_total": total_mem,
            "master/mem_used": used_mem,
            "master/valid_status_updates": float(c["status_updates_received"]),
            "master/messages_exited_executor": float(c["messages_exited_executor"]),
            "allocator/mesos/allocation_runs": float(c["allocation_runs"]),
            "allocator/mesos/allocation_run_ms": c["allocation_run_us"] / 1000.0,
        }
        for state in (
            "STAGING",
            "STARTING",
            "RUNNING",
            "KILLING",
            "UNREACHABLE",
        ):
            out[f"master/tasks_{state.lower()}"] = float(counts.get(f"TASK_{state}", 0))
        for state in TERMINAL_STATES:
            short = state[5:].lower()
            out[f"master/tasks_{short}"] = float(c["tasks_" + short])
        return out
