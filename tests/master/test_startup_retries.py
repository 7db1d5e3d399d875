"""A master whose ZooKeeper requests fail transiently while it starts keeps going and leads
(docs/reliability.md, Findings 2: an unhandled ``ConnectionLoss`` from ``_create_replica``
or ``_create_info`` ended the process).

The failures are injected into the master's own kazoo client (a real ZooKeeper server
answers everything else); the worst case is modelled for the sequential leadership znode:
the server created it but the answer was lost, so a blind retry would leave an orphan
znode of our own session that sorts first and that no one ever deletes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, OperationTimeoutError

from paddock.master import daemon as daemon_module
from paddock.master.config import MasterConfig
from paddock.master.daemon import MasterDaemon
from paddock.master.election import INFO_PREFIX, REPLICAS_NODE, ZkElection, parse_zk_url

from .clients import HOST, fixed_ports

pytestmark = pytest.mark.timeout(60)


class FlakyElection(ZkElection):
    """The real election, with a kazoo client whose first replica create fails before
    reaching the server, and whose first leadership create is lost after the server
    made the znode; ``allocate_replica_id``'s create times out once too."""

    injected: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        real = self.zk.create
        done: set[str] = set()

        def create(path: str, value: bytes = b"", *a: Any, **kw: Any) -> str:
            if "/replica_" in path and "replica" not in done:
                done.add("replica")
                FlakyElection.injected.append("replica: connection loss before the create")
                raise ConnectionLoss()
            if f"/{REPLICAS_NODE}/id_" in path and "id" not in done:
                done.add("id")
                FlakyElection.injected.append("replica id: operation timeout")
                raise OperationTimeoutError()
            if f"/{INFO_PREFIX}" in path and "info" not in done:
                done.add("info")
                real(path, value, *a, **kw)
                FlakyElection.injected.append("info: connection loss after the create")
                raise ConnectionLoss()
            return str(real(path, value, *a, **kw))

        self.zk.create = create  # type: ignore[method-assign]


async def test_master_leads_despite_transient_zookeeper_errors_at_startup(
    zk, tmp_path, monkeypatch
):
    monkeypatch.setattr(daemon_module, "ZkElection", FlakyElection)
    FlakyElection.injected = []
    port, registry_port = fixed_ports(2)
    url = f"zk://{zk.hosts}/startup1"
    cfg = MasterConfig(
        zk=parse_zk_url(url),
        quorum=1,
        work_dir=tmp_path / "m1",
        port=port,
        ip=HOST,
        registry_port=registry_port,
        allocation_interval=0.1,
    )
    daemon = MasterDaemon(cfg)
    run = asyncio.get_running_loop().create_task(daemon.run())
    try:
        for _ in range(400):
            if daemon.master.acting or run.done():
                break
            await asyncio.sleep(0.05)
        assert not run.done(), f"the master ended: {run.exception() if run.done() else ''}"
        assert daemon.master.acting, "the master did not come to lead"
        assert sorted(FlakyElection.injected) == [
            "info: connection loss after the create",
            "replica id: operation timeout",
            "replica: connection loss before the create",
        ]
        election = daemon.election
        assert election is not None
        check = KazooClient(hosts=zk.hosts)
        await asyncio.to_thread(check.start, 10)
        try:
            children = await asyncio.to_thread(check.get_children, "/startup1")
            infos = [c for c in children if c.startswith(INFO_PREFIX)]
            assert infos == [election.my_node]  # no orphan of the lost answer
            replicas = await asyncio.to_thread(check.get_children, f"/startup1/{REPLICAS_NODE}")
            assert any(c.startswith("replica_") for c in replicas)
        finally:
            await asyncio.to_thread(check.stop)
            await asyncio.to_thread(check.close)
    finally:
        daemon.request_stop()
        code = await asyncio.wait_for(run, 30)
    assert code == 0
