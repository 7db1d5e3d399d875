"""Fixtures for master tests: real ZooKeeper (and keeper) ensembles, master processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from paddock.testing import (
    Ensemble,
    KeeperUnavailable,
    keeper_unavailable_reason,
    zk_ensemble,
    zookeeper_unavailable_reason,
)

from .clients import MasterProcess

KINDS = tuple(k for k in os.environ.get("PADDOCK_COMPAT_KINDS", "zookeeper,keeper").split(",") if k)


def start_or_skip(kind: str, size: int, **options: object) -> Ensemble:
    reason = zookeeper_unavailable_reason() if kind == "zookeeper" else keeper_unavailable_reason()
    if reason is not None:
        pytest.skip(f"{kind}: {reason}")
    try:
        return zk_ensemble(kind, size, **options)
    except KeeperUnavailable as exc:
        pytest.skip(f"keeper: {exc}")


@pytest.fixture(scope="module")
def zk() -> Iterator[Ensemble]:
    """One real Apache ZooKeeper server shared by a module's tests (each test uses its own
    chroot path)."""
    ensemble = start_or_skip("zookeeper", 1)
    yield ensemble
    ensemble.stop()


class Masters:
    """Starts ``paddock master`` processes and stops every one of them at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.all: list[MasterProcess] = []
        self.cleanups: list[Callable[[], None]] = []

    def start(self, zk: str, quorum: int, name: str, *extra: str) -> MasterProcess:
        m = MasterProcess(zk, quorum, self.tmp_path / name, *extra)
        self.all.append(m)
        return m.start()

    def stop(self) -> None:
        for m in self.all:
            m.kill()
        for fn in self.cleanups:
            fn()


@pytest.fixture
def masters(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Masters]:
    ms = Masters(tmp_path)
    yield ms
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for m in ms.all:
            print(f"--- {m.log_path.name} ---\n{m.log_tail(60)}")
    ms.stop()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
