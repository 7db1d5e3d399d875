"""The scheduler core's offer handling, driven without a master: a fake store and a
recording ``call``. Instances are spread round-robin over one event's offers, all new
instances are written in one batch before any ACCEPT, and each offer gets one ACCEPT
with one LAUNCH of all its tasks."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from test_matcher import app, offer

from paddock.marathon.scheduler.core import SchedulerCore


class FakeStore:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.deleted: list[str] = []

    def put_instances(self, tasks: Any) -> None:
        self.batches.append([t.id for t in tasks])

    def delete_instances(self, tasks: Any) -> None:
        self.deleted += [t.id for t in tasks]


class FakeHooks:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def current_app(self, _app_id: str) -> None:
        return None

    def publish(self, event_type: str, payload: dict[str, Any]) -> None:
        self.events.append((event_type, payload))


def make_core(answer: int = 202) -> tuple[SchedulerCore, FakeStore, list[tuple[str, Any]]]:
    store = FakeStore()
    core = SchedulerCore(
        store,  # type: ignore[arg-type]
        advertised="127.0.0.1:8080",
        clock=lambda: "2026-01-01T00:00:00.000Z",
        rng=random.Random(3),
        monotonic=lambda: 100.0,
    )
    core.attach(FakeHooks())  # type: ignore[arg-type]
    calls: list[tuple[str, Any]] = []

    async def call(kind: str, body: Any) -> int:
        calls.append((kind, body))
        return answer

    core.call = call
    core.acting = True
    return core, store, calls


async def test_instances_are_spread_round_robin_over_the_offers():
    core, store, calls = make_core()
    a = app(instances=10, cpus=0.1, mem=8, portDefinitions=[])
    core.queue_state.set_wanted({a.id: (a, 10)}, "now")
    raws = [offer(host=h, cpus=4, mem=1024).raw for h in ("h1", "h2", "h3")]
    raws.append(offer(host="small", cpus=0.15, mem=1024).raw)  # room for one only
    await core.on_offers(raws)
    accepts = [body for kind, body in calls if kind == "ACCEPT"]
    per_offer = {
        b["offer_ids"][0]["value"]: len(b["operations"][0]["launch"]["task_infos"]) for b in accepts
    }
    assert per_offer == {"o-h1": 3, "o-h2": 3, "o-h3": 3, "o-small": 1}
    assert all(len(b["operations"]) == 1 for b in accepts)
    assert len(store.batches) == 1 and len(store.batches[0]) == 10  # one write, first
    assert Counter(t.host for t in core.tasks()) == {"h1": 3, "h2": 3, "h3": 3, "small": 1}
    assert core.queue_state.entries[a.id].count == 0


async def test_offers_left_over_are_declined_and_refused_launches_forgotten():
    core, store, calls = make_core(answer=409)
    a = app(instances=2, cpus=1, mem=8, portDefinitions=[])
    core.queue_state.set_wanted({a.id: (a, 2)}, "now")
    raws = [offer(host=h, cpus=4, mem=1024).raw for h in ("h1", "h2", "h3")]
    await core.on_offers(raws)
    kinds = Counter(kind for kind, _ in calls)
    assert kinds["ACCEPT"] == 2
    declined = [b["offer_ids"] for kind, b in calls if kind == "DECLINE"]
    assert declined == [[{"value": "o-h3"}]]
    assert core.tasks() == []  # the master refused: nothing launched is kept
    assert sorted(store.deleted) == sorted(store.batches[0])


async def test_a_stale_resend_does_not_move_a_task_back():
    core, _store, _calls = make_core()
    a = app(instances=1, cpus=0.1, mem=8, portDefinitions=[])
    core.queue_state.set_wanted({a.id: (a, 1)}, "now")
    await core.on_offers([offer(host="h1").raw])
    (task,) = core.tasks()

    def status(state: str, stamp: float, uuid: str) -> dict[str, Any]:
        return {"task_id": {"value": task.id}, "agent_id": {"value": "a-h1"},
                "state": state, "timestamp": stamp, "uuid": uuid}  # fmt: skip

    await core.on_update(status("TASK_STARTING", 10.0, "u1"))
    await core.on_update(status("TASK_RUNNING", 20.0, "u2"))
    await core.on_update(status("TASK_STARTING", 10.0, "u1"))  # the late resend
    assert core.tasks()[0].state == "TASK_RUNNING"
    assert [ack["uuid"] for ack in core.writer._acks] == ["u1", "u2", "u1"]  # all acked
    # The master's reconciliation answer is applied whatever its time.
    await core.on_update({**status("TASK_STAGING", 1.0, ""), "reason": "REASON_RECONCILIATION"})
    assert core.tasks()[0].state == "TASK_STAGING"
