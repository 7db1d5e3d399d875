"""Fixtures for the Marathon tests: one real Apache ZooKeeper for the session.

Each test gets its own base path (``/marathon-<n>``) so tests never see each other's
state, and its own kazoo client, stopped when the test ends.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from paddock.testing import Ensemble, zk_ensemble, zookeeper_unavailable_reason

_bases = itertools.count()


@pytest.fixture(scope="session")
def zookeeper() -> Iterator[Ensemble]:
    reason = zookeeper_unavailable_reason()
    if reason is not None:
        pytest.skip(f"zookeeper: {reason}")
    ensemble = zk_ensemble("zookeeper", 1)
    yield ensemble
    ensemble.stop()


@pytest.fixture
def zk_client(zookeeper: Ensemble) -> Iterator[KazooClient]:
    client = KazooClient(hosts=zookeeper.hosts, timeout=10)
    client.start(timeout=20)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def zk_base() -> str:
    return f"/marathon-{next(_bases)}"
