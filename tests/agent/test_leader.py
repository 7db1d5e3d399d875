"""Finding the leader: MasterInfo parsing, and a real ZooKeeper whose leading json.info_
znode changes under a running agent."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid

from kazoo.client import KazooClient

from paddock.agent.leader import master_address

from .fake_master import FakeMaster
from .test_agent_integration import running_agent


def test_master_address_forms():
    assert master_address({"address": {"ip": "10.0.0.2", "port": 5050}}) == ("10.0.0.2", 5050)
    assert master_address({"address": {"hostname": "m1", "port": 5050}}) == ("m1", 5050)
    ip = int.from_bytes(socket.inet_aton("192.168.1.7"), "little")
    assert master_address({"ip": ip, "port": 5050}) == ("192.168.1.7", 5050)
    for bad in (None, [], {}, {"address": {"ip": "x"}}, {"address": {"ip": "x", "port": 0}}):
        assert master_address(bad) is None


def _info(m: FakeMaster) -> bytes:
    return json.dumps(
        {"id": str(m.port), "address": {"hostname": "localhost", "ip": "127.0.0.1", "port": m.port}}
    ).encode()


async def test_agent_follows_the_lowest_info_znode(zk, tmp_path):
    path = f"/leader-{uuid.uuid4().hex[:8]}"
    a = await FakeMaster(agent_id="agent-A").start()
    b = await FakeMaster(agent_id="agent-B").start()
    client = KazooClient(hosts=zk.hosts)
    await asyncio.to_thread(client.start, 15)
    try:
        # The agent starts before any master exists (the path is not even there).
        async with running_agent(tmp_path, a, master_url=f"zk://{zk.hosts}{path}") as server:
            await asyncio.sleep(0.3)
            assert server.detector.leader is None
            await asyncio.to_thread(client.ensure_path, path)
            await asyncio.to_thread(client.create, f"{path}/log_replicas", b"")
            node_a = await asyncio.to_thread(
                client.create, f"{path}/json.info_", _info(a), ephemeral=True, sequence=True
            )
            await asyncio.to_thread(
                client.create, f"{path}/json.info_", _info(b), ephemeral=True, sequence=True
            )
            reg = await a.wait_registrations(1, timeout=20)
            assert "id" not in reg["agent_info"]
            assert b.registrations == []
            await a.wait_for(lambda m: server.agent.agent_id == "agent-A")

            # A's znode goes (its session ended): the agent moves to B with its id.
            await asyncio.to_thread(client.delete, node_a)
            reg = await b.wait_registrations(1, timeout=20)
            assert reg["agent_info"]["id"] == {"value": "agent-A"}
            await b.wait_for(lambda m: server.agent.agent_id == "agent-B")
    finally:
        await asyncio.to_thread(client.stop)
        await asyncio.to_thread(client.close)
        await a.stop()
        await b.stop()
