"""Kills count until they are confirmed (docs/reliability.md, Findings item 3).

The chaos lab saw ``/chaos/a22`` (upgradeStrategy 0/0) run its old and its new task at
once: the restart asked for the old task's kill and launched the replacement in the same
pass, as if the kill had already happened. Marathon counts an instance it asked to kill
until a terminal status confirms the kill (or the agent is unreachable, when its
KillService expunges the instance at once) and resends kills left unconfirmed.

The core is driven by hand here (hand-made offers and status updates, a settable clock,
``_drive()`` called directly): no master, no sleeps.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_matcher import offer

from paddock.marathon.groups import RootGroup
from paddock.marathon.models import AppDefinition
from paddock.marathon.planner import DeploymentAction, DeploymentPlan, DeploymentStep
from paddock.marathon.scheduler import deployment_executor as dx
from paddock.marathon.scheduler.core import SchedulerCore

APP = "/chaos/a22"


def app_def(version: str, mhc: float = 0.0, moc: float = 0.0, instances: int = 1):
    # An unreachable instance stays active for an hour (not replaced as inactive at once).
    return AppDefinition.model_validate(
        {"id": APP, "cmd": f"sleep 1000 # {version}", "cpus": 0.1, "mem": 8, "instances": instances,
         "portDefinitions": [], "version": version,
         "upgradeStrategy": {"minimumHealthCapacity": mhc, "maximumOverCapacity": moc},
         "unreachableStrategy": {"inactiveAfterSeconds": 3600, "expungeAfterSeconds": 7200}}
    )  # fmt: skip


class FakeStore:
    """Takes new instances; the status writer (deletions) is not started here."""

    def put_instances(self, tasks: Any) -> None:
        pass


class Hooks:
    def __init__(self) -> None:
        self.root = RootGroup()
        self.finished: list[str] = []

    def current_app(self, app_id: str) -> AppDefinition | None:
        return self.root.apps.get(app_id)

    def publish(self, _event_type: str, _payload: dict[str, Any]) -> None:
        pass

    def deployment_step_started(self, _plan_id: str, _step: int) -> None:
        pass

    def deployment_finished(self, plan_id: str, _ok: bool) -> None:
        self.finished.append(plan_id)


class Rig:
    """A scheduler core with a recording master and a clock the test moves."""

    def __init__(self, **core_kw: Any) -> None:
        self.now = 100.0
        self.store = FakeStore()
        self.hooks = Hooks()
        self.core = SchedulerCore(
            self.store,  # type: ignore[arg-type]
            advertised="127.0.0.1:8080",
            clock=lambda: f"2026-01-01T00:00:{int(self.now) % 60:02d}.000Z",
            rng=random.Random(7),
            monotonic=lambda: self.now,
            **core_kw,
        )
        self.core.attach(self.hooks)  # type: ignore[arg-type]
        self.calls: list[tuple[str, Any]] = []
        self.offer_no = 0

        async def call(kind: str, body: Any) -> int:
            self.calls.append((kind, body))
            return 202

        self.core.call = call
        self.core.acting = True

    def killed(self) -> list[str]:
        return [b["task_id"]["value"] for kind, b in self.calls if kind == "KILL"]

    def wanted(self) -> int:
        e = self.core.queue_state.entries.get(APP)
        return e.count if e is not None else 0

    async def step(self) -> None:
        """One driver pass, then one fresh offer (so whatever is wanted launches)."""
        await self.core._drive()
        self.offer_no += 1
        await self.core.on_offers([offer(host=f"h{self.offer_no}").raw])

    async def update(self, task_id: str, state: str, **extra: Any) -> None:
        await self.core.on_update({"task_id": {"value": task_id}, "state": state, **extra})

    def deleted(self) -> list[str]:
        """Instances handed to the status writer for deletion from the store."""
        return [tid for tid, (_t, keep) in self.core.writer._writes.items() if not keep]

    def ids(self) -> list[str]:
        return [t.id for t in self.core.tasks(APP)]

    async def run_v1(self, mhc: float = 0.0, moc: float = 0.0, n: int = 1) -> list[str]:
        self.hooks.root = RootGroup(apps={APP: app_def("v1", mhc, moc, n)})
        await self.step()
        for tid in self.ids():
            await self.update(tid, "TASK_RUNNING")
        assert len(self.ids()) == n
        return self.ids()

    def restart_to_v2(self, mhc: float = 0.0, moc: float = 0.0, n: int = 1) -> None:
        original = self.hooks.root
        self.hooks.root = RootGroup(apps={APP: app_def("v2", mhc, moc, n)})
        plan = DeploymentPlan(
            id="d1", version="v2", original=original, target=self.hooks.root,
            steps=(DeploymentStep((DeploymentAction("RestartApplication", APP),)),),
        )  # fmt: skip
        self.core.start_deployment(plan)


async def test_restart_0_0_waits_for_the_kill_before_starting_the_new_task():
    rig = Rig()
    (old,) = await rig.run_v1()
    rig.restart_to_v2()
    await rig.step()
    assert rig.killed() == [old]
    # The agent has not confirmed: the old task still runs, nothing new may start.
    assert rig.ids() == [old] and rig.wanted() == 0
    for _ in range(3):
        rig.now += 0.5
        await rig.step()
        assert rig.ids() == [old]
    await rig.update(old, "TASK_KILLED")
    assert rig.ids() == []
    await rig.step()
    (new,) = rig.ids()
    assert new != old and rig.core.tasks(APP)[0].version == "v2"
    await rig.update(new, "TASK_RUNNING")
    await rig.core._drive()
    assert rig.hooks.finished == ["d1"]


@pytest.mark.parametrize("state", ["TASK_LOST", "TASK_GONE", "TASK_UNKNOWN", "TASK_UNREACHABLE"])
async def test_an_unreachable_class_answer_ends_the_kill(state):
    rig = Rig()
    (old,) = await rig.run_v1()
    rig.restart_to_v2()
    await rig.step()
    assert rig.ids() == [old]
    # The agent is gone: the master (or its reconciliation) says so, and that ends it.
    await rig.update(old, state, reason="REASON_RECONCILIATION")
    assert rig.ids() == [] and old in rig.deleted()
    await rig.step()
    assert len(rig.ids()) == 1 and rig.ids()[0] != old


async def test_killing_an_unreachable_instance_expunges_it_at_once():
    rig = Rig()
    (old,) = await rig.run_v1()
    await rig.update(old, "TASK_UNREACHABLE")
    rig.restart_to_v2()
    await rig.step()
    assert rig.killed() == [old]  # still told to the master, for when the agent is back
    assert old in rig.deleted()
    (new,) = rig.ids()
    assert new != old


async def test_an_unconfirmed_kill_is_retried_after_the_timeout():
    rig = Rig(kill_retry_timeout=2.0)
    (old,) = await rig.run_v1()
    rig.restart_to_v2()
    await rig.step()
    assert rig.killed() == [old]
    rig.now += 1.5
    await rig.step()
    assert rig.killed() == [old]  # not yet
    rig.now += 1.0
    await rig.step()
    assert rig.killed() == [old, old]  # resent
    assert rig.ids() == [old]  # and still counted
    rig.now += 2.5
    await rig.step()
    assert rig.killed() == [old, old, old]


async def test_a_kill_request_outside_deployments_is_replaced_only_once_confirmed():
    rig = Rig()
    a, b = await rig.run_v1(n=2)
    rig.core.kill_tasks([t for t in rig.core.tasks(APP) if t.id == a], wipe=False)
    await rig.step()
    assert rig.killed() == [a] and sorted(rig.ids()) == sorted([a, b])
    await rig.update(a, "TASK_KILLED")
    await rig.step()
    assert len(rig.ids()) == 2 and a not in rig.ids()


async def test_restart_1_05_counts_killing_tasks_against_the_over_capacity():
    # n=4, minimumHealthCapacity 1, maximumOverCapacity 0.5: at most 6 tasks at any time,
    # killed-but-unconfirmed ones included.
    rig = Rig()
    await rig.run_v1(1.0, 0.5, 4)
    rig.restart_to_v2(1.0, 0.5, 4)
    killing: list[str] = []
    most = 0
    for _round in range(60):
        await rig.step()
        most = max(most, len(rig.ids()))
        assert len(rig.ids()) <= 6
        fresh = [t for t in rig.killed() if t not in killing and t in rig.ids()]
        # Confirm the oldest outstanding kill, and start one new task, per round.
        if killing and killing[0] in rig.ids():
            await rig.update(killing.pop(0), "TASK_KILLED")
        killing += fresh
        for t in rig.core.tasks(APP):
            if t.state == "TASK_STAGING":
                await rig.update(t.id, "TASK_RUNNING")
                break
        if rig.hooks.finished:
            break
    assert rig.hooks.finished == ["d1"]
    assert most == 6
    assert {t.version for t in rig.core.tasks(APP)} == {"v2"} and len(rig.ids()) == 4


def test_executor_counts_dying_instances_as_capacity():
    old = dx.InstanceView("o1", "v1", "t1")
    dying = dx.InstanceView("o2", "v1", "t2", alive=False)
    new = dx.InstanceView("n1", "v2", "t3")
    # (1, 0.5) with n=2: minHealthy 2, maxCapacity 3; three tasks exist already.
    assert dx.restart_decision(2, "v2", 1.0, 0.5, [old, dying, new]).launch == 0
    # ... unless the dying one is unreachable (it is expunged as it is killed).
    gone = dx.InstanceView("o2", "v1", "t2", alive=False, running=False, reachable=False)
    assert dx.restart_decision(2, "v2", 1.0, 0.5, [old, gone, new]).launch == 1
    # (0, 0) with n=1: the old one is killed now, the new one waits for the confirmation.
    assert dx.restart_decision(1, "v2", 0.0, 0.0, [old]).launch == 0
    assert dx.restart_decision(1, "v2", 0.0, 0.0, [dying]).launch == 0
    assert dx.restart_decision(1, "v2", 0.0, 0.0, []).launch == 1
    # A scale keeps a dying instance's slot until it is gone.
    views = [dx.InstanceView("a", "v1", "t"), dying]
    assert dx.scale_decision(2, views).launch == 0


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 8),
    mhc=st.sampled_from([0.0, 0.5, 1.0]),
    moc=st.sampled_from([0.0, 0.5, 1.0]),
    lag=st.integers(0, 3),
)
def test_restart_with_slow_kill_confirmations_stays_within_capacity(n, mhc, moc, lag):
    """Kills are confirmed ``lag`` rounds after they are asked for; killed-but-unconfirmed
    instances still count, so old + new + dying never exceed maxCapacity."""
    _min_healthy, max_capacity = dx.capacity(n, mhc, moc)
    views = {f"o{i}": dx.InstanceView(f"o{i}", "v1", f"2020-{i:04d}") for i in range(n)}
    dying: dict[str, int] = {}
    seq = 0
    for _round in range(20 * (n + 2) * (lag + 1)):
        d = dx.restart_decision(n, "v2", mhc, moc, list(views.values()))
        for k in d.kills:
            v = views[k]
            views[k] = dx.InstanceView(k, v.version, v.started_at, False, v.running, v.healthy)
            dying[k] = lag
        for _ in range(d.launch):
            seq += 1
            views[f"n{seq}"] = dx.InstanceView(
                f"n{seq}", "v2", f"2021-{seq:04d}", True, False, None
            )
        assert len(views) <= max_capacity, (n, mhc, moc, lag)
        if d.done:
            assert len(views) == n and all(v.version == "v2" for v in views.values())
            return
        for k in list(dying):
            if dying[k] == 0:
                del views[k], dying[k]
            else:
                dying[k] -= 1
        for v in list(views.values()):
            if v.version == "v2" and not v.healthy:
                views[v.id] = dx.InstanceView(v.id, "v2", v.started_at, True, True, True)
                break
    raise AssertionError("restart did not finish")
