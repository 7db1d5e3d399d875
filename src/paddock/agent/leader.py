"""Finding the leading master, as Mesos agents and pymesos do.

With ``zk://hosts/path`` the leader is the ``json.info_*`` child of ``path`` with the
lowest sequence number; its data is MasterInfo JSON whose ``address`` gives
``hostname``/``ip``/``port``.  The detector watches the children and re-reads them on every
change and on every (re)connection of its ZooKeeper session.  With ``HOST:PORT`` the
address is fixed (the connection code follows 307 redirects from a non-leading master).

kazoo calls back on its own threads; they only set an asyncio event through
``call_soon_threadsafe``; the reading happens in a worker thread driven from the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["LeaderDetector", "StaticLeader", "ZkLeaderDetector", "master_address"]

INFO_PREFIX = "json.info_"
Address = tuple[str, int]


def master_address(info: Any) -> Address | None:
    """``(host, port)`` from MasterInfo JSON, or None when it names no usable address."""
    if not isinstance(info, dict):
        return None
    addr = info.get("address")
    if isinstance(addr, dict):
        host = addr.get("ip") or addr.get("hostname")
        port = addr.get("port")
        if isinstance(host, str) and host and isinstance(port, int) and 0 < port < 65536:
            return host, port
    ip, port = info.get("ip"), info.get("port")
    if isinstance(ip, int) and isinstance(port, int) and 0 < port < 65536:
        # The uint32 holds the network-order bytes read on a little-endian host.
        return socket.inet_ntoa(ip.to_bytes(4, "little")), port
    hostname = info.get("hostname")
    if isinstance(hostname, str) and hostname and isinstance(port, int) and 0 < port < 65536:
        return hostname, port
    return None


class LeaderDetector:
    """The current leader (or None) and a way to wait for it to change."""

    def __init__(self) -> None:
        self.leader: Address | None = None
        self.leader_info: dict[str, Any] | None = None
        self.version = 0
        self._changed = asyncio.Condition()

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        return None

    async def _set(self, leader: Address | None, info: dict[str, Any] | None) -> None:
        if leader == self.leader:
            self.leader_info = info if leader else None
            return
        log.info("leading master: %s", f"{leader[0]}:{leader[1]}" if leader else "none")
        async with self._changed:
            self.leader = leader
            self.leader_info = info
            self.version += 1
            self._changed.notify_all()

    async def wait_for_leader(self) -> Address:
        async with self._changed:
            await self._changed.wait_for(lambda: self.leader is not None)
            assert self.leader is not None
            return self.leader

    async def wait_change(self, since_version: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.version != since_version)


class StaticLeader(LeaderDetector):
    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self._address = (host, port)

    async def start(self) -> None:
        await self._set(self._address, None)


class ZkLeaderDetector(LeaderDetector):
    """Watches ``<path>`` for the lowest ``json.info_*`` child."""

    def __init__(
        self, hosts: str, path: str, *, session_timeout: float = 10.0, poll_interval: float = 30.0
    ) -> None:
        super().__init__()
        self.hosts = hosts
        self.path = path
        self.session_timeout = session_timeout
        self.poll_interval = poll_interval
        self.zk: Any = None
        self.session_state = "CONNECTING"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    async def start(self) -> None:
        from kazoo.client import KazooClient

        self._loop = asyncio.get_running_loop()
        self.zk = KazooClient(hosts=self.hosts, timeout=self.session_timeout)
        self.zk.add_listener(self._listener)
        self._task = asyncio.create_task(self._run(), name="zk-leader-detector")

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.zk is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.zk.stop)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.zk.close)

    def _poke(self, *_: Any) -> None:  # kazoo thread
        if self._loop is not None and not self._stopped:
            with contextlib.suppress(RuntimeError):  # loop closed at shutdown
                self._loop.call_soon_threadsafe(self._wake.set)

    def _listener(self, state: str) -> None:  # kazoo thread
        self.session_state = str(state)
        self._poke()

    async def _run(self) -> None:
        # kazoo's start() blocks until connected; keep trying so a ZooKeeper that comes up
        # later (or a wrong host being fixed) is picked up without restarting the agent.
        while not self._stopped:
            try:
                await asyncio.to_thread(self.zk.start, self.session_timeout)
                break
            except Exception as exc:
                log.warning("cannot reach ZooKeeper %s yet: %s", self.hosts, exc)
                await asyncio.sleep(1.0)
        while not self._stopped:
            self._wake.clear()
            try:
                leader, info = await asyncio.to_thread(self._read)
                await self._set(leader, info)
                timeout = self.poll_interval
            except Exception as exc:
                log.debug("reading the leader from ZooKeeper failed: %s", exc)
                timeout = 1.0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _read(self) -> tuple[Address | None, dict[str, Any] | None]:
        from kazoo.exceptions import NoNodeError

        try:
            children = self.zk.get_children(self.path, watch=self._poke)
        except NoNodeError:
            self.zk.exists(self.path, watch=self._poke)
            return None, None
        infos = sorted(c for c in children if c.startswith(INFO_PREFIX))
        for child in infos:  # normally the first; a vanished or bad one falls to the next
            try:
                data, _ = self.zk.get(f"{self.path}/{child}", watch=self._poke)
            except NoNodeError:
                continue
            try:
                info = json.loads(data)
            except ValueError:
                log.warning("leader znode %s/%s holds no JSON", self.path, child)
                return None, None
            address = master_address(info)
            if address is None:
                log.warning("leader znode %s/%s names no address", self.path, child)
            return address, info
        return None, None
