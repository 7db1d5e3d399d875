"""Fixtures that run each compatibility test against real Apache ZooKeeper and keeper.

The keeper variants skip, with the reason, until ``paddock keeper`` implements
its command-line contract (see docs/compatibility.md). Ensembles are
session-scoped: a JVM ensemble starts in about a second, but a test that kills
or restarts members should take its own ensemble from ``ensemble_factory``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from paddock.testing import (
    Ensemble,
    KeeperUnavailable,
    keeper_unavailable_reason,
    zk_ensemble,
    zookeeper_unavailable_reason,
)

# PADDOCK_COMPAT_KINDS=zookeeper (or keeper) restricts the runs to one kind.
KINDS = tuple(k for k in os.environ.get("PADDOCK_COMPAT_KINDS", "zookeeper,keeper").split(",") if k)
# The digest super user of kazoo's suite: "super:test".
SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="


def unavailable_reason(kind: str) -> str | None:
    if kind == "zookeeper":
        return zookeeper_unavailable_reason()
    return keeper_unavailable_reason()


def start_or_skip(kind: str, size: int, **options: object) -> Ensemble:
    """Start an ensemble, or skip the test with the reason it cannot run here."""
    reason = unavailable_reason(kind)
    if reason is not None:
        pytest.skip(f"{kind}: {reason}")
    try:
        return zk_ensemble(kind, size, **options)
    except KeeperUnavailable as exc:
        pytest.skip(f"keeper: {exc}")


@pytest.fixture(scope="session", params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """The server kind of the parametrised compat tests."""
    return str(request.param)


@pytest.fixture(scope="session")
def cluster(kind: str) -> Iterator[Ensemble]:
    """A shared 3-server ensemble of ``kind`` (do not kill its members)."""
    ensemble = start_or_skip(kind, 3, super_digest=SUPER_DIGEST)
    yield ensemble
    ensemble.stop()


@pytest.fixture(scope="session")
def standalone(kind: str) -> Iterator[Ensemble]:
    """A shared single server of ``kind``."""
    ensemble = start_or_skip(kind, 1, super_digest=SUPER_DIGEST)
    yield ensemble
    ensemble.stop()


@pytest.fixture
def ensemble_factory() -> Iterator[Callable[..., Ensemble]]:
    """Make private ensembles (``factory(kind, size, **options)``), stopped after the test."""
    made: list[Ensemble] = []

    def factory(kind: str, size: int = 1, **options: object) -> Ensemble:
        ensemble = start_or_skip(kind, size, **options)
        made.append(ensemble)
        return ensemble

    yield factory
    for ensemble in made:
        ensemble.stop()
