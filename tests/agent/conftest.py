"""Fixtures for agent tests: an in-process agent against an in-test master stand-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from paddock.agent.config import AgentConfig

from .fake_master import FakeMaster


def make_config(work_dir: Path, master: str, **extra) -> AgentConfig:
    defaults = {
        "registration_backoff": 0.05,
        "registration_backoff_max": 0.2,
        "status_retry_min": 10.0,
        "status_retry_max": 600.0,
        "default_kill_grace": 1.0,
    }
    defaults.update(extra)
    return AgentConfig.from_flags(
        master=master,
        work_dir=str(work_dir),
        port=0,
        ip="127.0.0.1",
        hostname="localhost",
        resources="cpus:2;mem:1024;disk:2000;ports:[31000-31010]",
        attributes="rack:a",
        **defaults,
    )


@pytest.fixture(scope="module")
def zk():
    """One real Apache ZooKeeper server per test module (tests use their own paths)."""
    from paddock.testing import zk_ensemble, zookeeper_unavailable_reason

    reason = zookeeper_unavailable_reason()
    if reason is not None:
        pytest.skip(f"zookeeper: {reason}")
    ensemble = zk_ensemble("zookeeper", 1)
    yield ensemble
    ensemble.stop()


@pytest.fixture
async def fake_master():
    m = await FakeMaster().start()
    yield m
    await m.stop()
