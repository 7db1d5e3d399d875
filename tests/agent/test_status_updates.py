"""The status update manager: order, head-only, retry doubling, acks, checkpoint/restart."""

from __future__ import annotations

import pytest

from paddock.agent.checkpoint import CheckpointStore
from paddock.agent.status_updates import FileUpdateLog, StatusUpdateManager

KEY = ("fw", "t1")


def st(state: str, uuid: str) -> dict:
    return {"task_id": {"value": "t1"}, "state": state, "uuid": uuid}


def file_manager(tmp_path, **kw) -> StatusUpdateManager:
    store = CheckpointStore(tmp_path)
    return StatusUpdateManager(FileUpdateLog(store.updates_file, store.remove_task), **kw)


def test_only_the_head_is_outstanding_and_acks_advance_in_order():
    m = StatusUpdateManager(retry_min=10, retry_max=600)
    m.connected(0.0)
    assert m.update(KEY, st("TASK_STARTING", "a"), 0.0) == [st("TASK_STARTING", "a")]
    assert m.update(KEY, st("TASK_RUNNING", "b"), 0.1) == []
    assert m.update(KEY, st("TASK_FINISHED", "c"), 0.2) == []
    # acknowledging something that is not the head does nothing
    assert m.acknowledge(KEY, "b", 1.0) == (False, [])
    assert m.acknowledge(KEY, "a", 1.0) == (True, [st("TASK_RUNNING", "b")])
    assert m.acknowledge(KEY, "a", 1.1) == (False, [])  # duplicate
    assert m.acknowledge(KEY, "b", 1.2) == (True, [st("TASK_FINISHED", "c")])
    assert not m.is_finished(KEY)
    assert m.acknowledge(KEY, "c", 1.3) == (True, [])
    assert m.is_finished(KEY)
    with pytest.raises(ValueError):
        m.update(KEY, st("TASK_RUNNING", "d"), 2.0)
    assert m.counters["invalid_acks"] == 2


def test_retry_doubles_up_to_the_cap():
    m = StatusUpdateManager(retry_min=10, retry_max=35)
    m.connected(0.0)
    m.update(KEY, st("TASK_RUNNING", "a"), 0.0)
    sends = []
    now = 0.0
    for _ in range(6):
        deadline = m.next_deadline()
        assert deadline is not None
        assert m.due(deadline - 0.001) == []
        now = deadline
        got = m.due(now)
        assert got == [(KEY, st("TASK_RUNNING", "a"))]
        sends.append(now)
    gaps = [b - a for a, b in zip([0.0, *sends], sends, strict=False)]
    assert gaps == [10, 20, 35, 35, 35, 35]
    ok, nxt = m.acknowledge(KEY, "a", now)
    assert ok and nxt == [] and m.next_deadline() is None


def test_nothing_is_sent_while_disconnected_and_heads_go_on_reconnect():
    m = StatusUpdateManager(retry_min=1, retry_max=2)
    assert m.update(KEY, st("TASK_STARTING", "a"), 0.0) == []
    assert m.update(("fw", "t2"), st("TASK_STARTING", "x"), 0.0) == []
    assert m.due(100.0) == [] and m.next_deadline() is None
    heads = m.connected(5.0)
    assert heads == [(KEY, st("TASK_STARTING", "a")), (("fw", "t2"), st("TASK_STARTING", "x"))]
    assert m.next_deadline() == 6.0
    m.disconnected()
    assert m.next_deadline() is None
    assert [u["uuid"] for u in m.unacknowledged()] == ["a", "x"]


def test_update_without_uuid_is_refused():
    m = StatusUpdateManager()
    with pytest.raises(ValueError):
        m.update(KEY, {"state": "TASK_RUNNING"}, 0.0)


def test_streams_survive_a_restart(tmp_path):
    m = file_manager(tmp_path)
    m.connected(0.0)
    m.update(KEY, st("TASK_STARTING", "a"), 0.0)
    m.update(KEY, st("TASK_RUNNING", "b"), 0.0)
    m.update(KEY, st("TASK_FINISHED", "c"), 0.0)
    m.acknowledge(KEY, "a", 1.0)
    # a crash tore the last line of the log: it is ignored
    with open(CheckpointStore(tmp_path).updates_file(*KEY), "ab") as f:
        f.write(b'{"ack": "b"')

    again = file_manager(tmp_path)
    stream = again.recover(KEY)
    assert [u["uuid"] for u in stream.pending] == ["b", "c"]
    assert [u["state"] for u in stream.history] == [
        "TASK_STARTING",
        "TASK_RUNNING",
        "TASK_FINISHED",
    ]
    assert again.connected(0.0) == [(KEY, st("TASK_RUNNING", "b"))]
    assert again.acknowledge(KEY, "b", 0.0) == (True, [st("TASK_FINISHED", "c")])
    assert again.acknowledge(KEY, "c", 0.0) == (True, [])

    third = file_manager(tmp_path)
    third.recover(KEY)
    assert third.is_finished(KEY)
    third.remove(KEY)
    assert not CheckpointStore(tmp_path).task_dir(*KEY).exists()
