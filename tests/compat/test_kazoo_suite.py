"""kazoo's own test suite against each server kind (see run_kazoo_suite.py).

A representative subset runs in the default suite against both kinds, and the
whole suite (about two minutes) runs against keeper by default too, since it is
keeper's compatibility proof; the whole suite against ZooKeeper (the baseline of
known exclusions) is marked slow. A failure outside the known
exclusions of tests/compat/kazoo_exclusions.py fails the test.
"""

from __future__ import annotations

import pytest

from paddock.testing.kazoo_suite import run_kazoo_suite

from .conftest import unavailable_reason
from .kazoo_exclusions import ZOOKEEPER_BASELINE_PASSED, known_failures

# Core client operations, watches, and the lock/queue/barrier recipes that
# exercise sequential+ephemeral nodes and watch ordering.
SUBSET = [
    "test_client.py::TestClient",
    "test_client.py::TestClientTransactions",
    "test_client.py::TestAuthentication",
    "test_watchers.py",
    "test_lock.py::KazooLockTests",
    "test_queue.py",
    "test_barrier.py",
]
# Left to the full suite: they mostly wait (fixed sleeps of 4-10 s).
SUBSET_DESELECT = [
    "test_watchers.py::KazooChildrenWatcherTests::test_child_watcher_remove_session_watcher",
    "test_watchers.py::KazooChildrenWatcherTests::test_child_stop_on_session_loss",
    "test_client.py::TestClient::test_update_host_list",
]


def _check(kind: str, selection: list[str] | None, deselect: list[str] | None = None) -> None:
    reason = unavailable_reason(kind)
    if reason is not None:
        pytest.skip(f"{kind}: {reason}")
    result = run_kazoo_suite(kind, selection, quiet=True, deselect=deselect)
    counts = result.counts()
    assert counts["passed"] > 0, f"kazoo suite ran nothing: {result.summary()}"
    known = known_failures(kind)
    unexpected = {
        t: result.messages.get(t, result.outcomes[t]) for t in result.failing() if t not in known
    }
    assert not unexpected, f"{result.summary()}; unexpected failures: {unexpected}"
    if selection is None:
        extra_exclusions = len(known) - len(known_failures("zookeeper"))
        expected_passes = ZOOKEEPER_BASELINE_PASSED - extra_exclusions
        assert counts["passed"] >= expected_passes, result.summary()


def test_kazoo_suite_subset(kind):
    _check(kind, SUBSET, SUBSET_DESELECT)


def test_kazoo_suite_full_against_keeper():
    _check("keeper", None)


@pytest.mark.slow
def test_kazoo_suite_full(kind):
    _check(kind, None)
