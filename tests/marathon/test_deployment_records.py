"""Deployment records in the store outlive the leader that wrote them; the roots they
name must outlive them, and a leader must never be unable to take over because of one.

Found by the 30-minute chaos run of seed 3001 (cluster workload): the leading marathon
finished a deployment while its ZooKeeper connection dropped, so removing the record
failed after the deployment had left memory. Later commits pruned old roots, keeping only
the roots of deployments in memory, and deleted the two the leftover record named. Every
marathon that was elected afterwards failed to load that record (``KeyError: no root
version ...``) and exited: no leader for the last 650 s of the run.
"""

from __future__ import annotations

import logging

from kazoo.exceptions import ConnectionLoss

from paddock.marathon.api import instant_service
from paddock.marathon.store import MarathonStore
from paddock.marathon.validation import checked_app

MAX_VERSIONS = 3


def _scale(service, app_id: str, n: int):
    return service.deploy(
        lambda root, v: root.with_app(
            service.stamp(
                checked_app({"id": app_id, "cmd": "sleep 100", "instances": n}),
                v,
                root.app(app_id),
            ),
            v,
        )
    )


def test_a_record_left_by_a_failed_removal_keeps_its_roots(zk_client, zk_base, monkeypatch):
    service, _core = instant_service(zk_client, zk_base, max_versions=MAX_VERSIONS)
    store: MarathonStore = service.store
    real_remove = store.remove_deployment

    def lost(dep_id: str) -> bool:
        raise ConnectionLoss()

    _scale(service, "/a", 1)
    monkeypatch.setattr(store, "remove_deployment", lost)
    plan = _scale(service, "/a", 2)  # finishes at once; removing its record fails
    assert [d.id for d in store.deployments()] == [plan.id]
    assert service.running_deployments() == []  # gone from memory, left in the store
    monkeypatch.setattr(store, "remove_deployment", lambda dep_id: False)  # still failing
    for n in range(3, 3 + 2 * MAX_VERSIONS):
        _scale(service, "/a", n)  # each commit prunes old roots
    versions = store.root_versions()
    assert plan.original.version in versions and plan.target.version in versions
    # a new leader over the same store takes over and the record is dealt with
    monkeypatch.setattr(store, "remove_deployment", real_remove)
    other, _ = instant_service(zk_client, zk_base, max_versions=MAX_VERSIONS)
    assert other.root.app("/a").instances == 2 + 2 * MAX_VERSIONS


def test_a_failed_removal_is_retried_after_the_next_commit(zk_client, zk_base, monkeypatch):
    service, _core = instant_service(zk_client, zk_base, max_versions=MAX_VERSIONS)
    store: MarathonStore = service.store
    real_remove = store.remove_deployment
    monkeypatch.setattr(
        store, "remove_deployment", lambda dep_id: (_ for _ in ()).throw(ConnectionLoss())
    )
    plan = _scale(service, "/b", 1)
    assert [d.id for d in store.deployments()] == [plan.id]
    monkeypatch.setattr(store, "remove_deployment", real_remove)
    _scale(service, "/b", 2)  # the coordination service answers again
    assert store.deployments() == []


def test_a_record_naming_a_missing_root_does_not_stop_a_takeover(
    zk_client, zk_base, monkeypatch, caplog
):
    service, _core = instant_service(zk_client, zk_base, max_versions=MAX_VERSIONS)
    store: MarathonStore = service.store
    _scale(service, "/c", 1)
    monkeypatch.setattr(store, "remove_deployment", lambda dep_id: False)  # record stays
    plan = _scale(service, "/c", 2)
    _scale(service, "/c", 3)
    monkeypatch.undo()
    # as a pruning by an older marathon would have left it
    zk_client.delete(f"{store.state}/groups/{plan.original.version}")
    store._snapshots.clear()
    with caplog.at_level(logging.ERROR, logger="paddock.marathon.service"):
        other, _ = instant_service(zk_client, zk_base, max_versions=MAX_VERSIONS)
    assert other.root.app("/c").instances == 3
    assert other.running_deployments() == []
    assert MarathonStore(zk_client, zk_base).deployments() == []  # the broken record is gone
    assert plan.id in caplog.text
