"""Leader election and registry-replica discovery through ZooKeeper (or keeper), as Mesos does.

Each master creates an EPHEMERAL|SEQUENTIAL znode ``<path>/json.info_NNNNNNNNNN``
holding its MasterInfo as JSON; the lowest sequence number leads. Clients (pymesos,
agents) read the same children to find the leader, so nothing else but
``log_replicas`` may live directly under ``<path>``.

Registry replicas announce their consensus address as ephemeral children
``<path>/log_replicas/replica_<id>`` (JSON ``{"id", "host", "port"}``); replica ids
come from a persistent-sequential counter node under ``log_replicas`` and are kept
in the master's work dir, so a restarted master keeps its id.

kazoo runs its own threads; every callback is handed to the asyncio loop with
``call_soon_threadsafe``. The session state matters for safety: on SUSPENDED the
master stops acting at once (it may no longer be the leader), on LOST it is
certainly not (its znode is gone).

Requests that fail transiently (connection loss, operation timeout, session
expiry: kazoo reconnects, with a new session after an expiry) are retried with
backoff until the election is stopped, as the initial connect is: a keeper blip
while a master starts must not end it. The sequential leadership znode is
created idempotently: a create whose answer was lost may have made it, so before
(re)creating we adopt a ``json.info_`` child our current session owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.protocol.states import KazooState

log = logging.getLogger(__name__)

__all__ = [
    "INFO_PREFIX",
    "REPLICAS_NODE",
    "ZkElection",
    "ZkUrl",
    "ip_to_uint32",
    "leader_child",
    "parse_zk_url",
]

INFO_PREFIX = "json.info_"
REPLICAS_NODE = "log_replicas"

T = TypeVar("T")

# Failures after which the same request may succeed once kazoo has reconnected.
TRANSIENT_ZK_ERRORS = (ConnectionLoss, OperationTimeoutError, SessionExpiredError)
RETRY_FIRST_DELAY = 0.1
RETRY_MAX_DELAY = 2.0


@dataclass(frozen=True)
class ZkUrl:
    hosts: str
    path: str


def parse_zk_url(url: str) -> ZkUrl:
    """``zk://h1:p,h2:p/mesos`` -> hosts ``h1:p,h2:p``, path ``/mesos``."""
    if not url.startswith("zk://"):
        raise ValueError(f"--zk must look like zk://host:port[,host:port...]/path, got {url!r}")
    rest = url[len("zk://") :]
    if "@" in rest.split("/", 1)[0]:
        rest = rest.split("@", 1)[1]  # credentials are not supported; ignore them
    hosts, sep, path = rest.partition("/")
    if not hosts or not sep or not path.strip("/"):
        raise ValueError(f"--zk must name hosts and a path (zk://host:port/mesos), got {url!r}")
    for h in hosts.split(","):
        parts = urlsplit("//" + h)
        if not parts.hostname:
            raise ValueError(f"bad ZooKeeper host {h!r} in {url!r}")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError(f"bad ZooKeeper port in {h!r}") from None
    return ZkUrl(hosts, "/" + path.strip("/"))


def ip_to_uint32(ip: str) -> int:
    """MasterInfo.ip: the IPv4 address as the uint32 whose memory is the network-order
    bytes, read on a little-endian host (Mesos writes ``in_addr.s_addr``)."""
    return int.from_bytes(socket.inet_aton(ip), "little")


def parse_membership(data: bytes | None) -> dict[int, tuple[str, int]] | None:
    """The membership recorded in ``log_replicas``'s data, or None (empty or not ours)."""
    if not data:
        return None
    try:
        members = json.loads(data)["members"]
        out = {int(k): (str(v[0]), int(v[1])) for k, v in members.items()}
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        log.warning("ignoring unreadable membership data in %s", REPLICAS_NODE)
        return None
    return out or None


def leader_child(children: list[str]) -> str | None:
    infos = [c for c in children if c.startswith(INFO_PREFIX)]
    return min(infos) if infos else None


class ZkElection:
    """One master's contender + detector + replica registration.

    Callbacks (always run on the asyncio loop):

    * ``on_leader(info | None, is_me)`` when the leading znode (or its data) changes;
    * ``on_session(state)`` with "CONNECTED", "SUSPENDED" or "LOST".
    """

    def __init__(
        self,
        url: ZkUrl,
        master_info: dict[str, Any],
        *,
        session_timeout: float,
        loop: asyncio.AbstractEventLoop,
        on_leader: Callable[[dict[str, Any] | None, bool], None],
        on_session: Callable[[str], None],
    ) -> None:
        self.url = url
        self.master_info = master_info
        self.loop = loop
        self.on_leader = on_leader
        self.on_session = on_session
        self.zk = KazooClient(hosts=url.hosts, timeout=session_timeout)
        self.zk.add_listener(self._listener)
        self.my_node: str | None = None
        self.leader_node: str | None = None
        self.leader_info: dict[str, Any] | None = None
        self.state = "CONNECTING"
        self._replica: tuple[int, str, int] | None = None
        self._stopped = False
        self._stopping: asyncio.Event | None = None
        self._info_lock = threading.Lock()  # contend() and a recreate may overlap

    def _retrying(self, what: str, request: Callable[[], T]) -> T:  # a worker thread
        """``request()``, repeated after transient ZooKeeper errors (backoff 0.1 s doubling
        to 2 s) until it succeeds or the election is stopped (then the error is raised)."""
        delay = RETRY_FIRST_DELAY
        while True:
            try:
                return request()
            except TRANSIENT_ZK_ERRORS as exc:
                if self._stopped or (self._stopping is not None and self._stopping.is_set()):
                    raise
                log.warning("%s failed (%s); retrying in %.1f s", what, type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY)

    # ---------------------------------------------------------------- lifecycle
    async def start(self, stopping: asyncio.Event, attempt_timeout: float = 5.0) -> bool:
        """Connect (retrying until ``stopping`` is set: ZooKeeper may come up after us).
        Returns False if stopped before connecting."""
        self._stopping = stopping
        while not stopping.is_set():
            try:
                await asyncio.to_thread(self.zk.start, attempt_timeout)
                break
            except Exception as exc:  # kazoo's timeout_exception and socket errors
                log.warning("cannot connect to ZooKeeper %s yet: %s", self.url.hosts, exc)
        else:
            return False
        self.state = "CONNECTED"
        await asyncio.to_thread(self._setup_paths)
        return True

    def _setup_paths(self) -> None:
        path = f"{self.url.path}/{REPLICAS_NODE}"
        self._retrying("creating " + path, lambda: self.zk.ensure_path(path))

    async def contend(self) -> None:
        """Create our json.info znode and start watching the children."""
        await asyncio.to_thread(self._create_info)
        self.zk.ChildrenWatch(self.url.path, self._children_changed)

    def _create_info(self) -> None:
        with self._info_lock:
            self.my_node = self._retrying("contending for leadership", self._create_info_once)
        log.info("contending for leadership as %s", self.my_node)

    def _create_info_once(self) -> str:
        mine = self._own_info_nodes()
        if mine:
            # Made by an earlier attempt whose answer was lost: keep the lowest.
            for extra in mine[1:]:
                with contextlib.suppress(NoNodeError):
                    self.zk.delete(f"{self.url.path}/{extra}")
            return mine[0]
        data = json.dumps(self.master_info).encode()
        created = self.zk.create(
            f"{self.url.path}/{INFO_PREFIX}", data, ephemeral=True, sequence=True
        )
        return str(created).rsplit("/", 1)[1]

    def _own_info_nodes(self) -> list[str]:
        """The ``json.info_`` children whose ephemeral owner is our current session."""
        client_id = self.zk.client_id
        if client_id is None:
            return []
        mine = []
        for child in sorted(self.zk.get_children(self.url.path)):
            if not child.startswith(INFO_PREFIX):
                continue
            stat = self.zk.exists(f"{self.url.path}/{child}")
            if stat is not None and stat.ephemeralOwner == client_id[0]:
                mine.append(child)
        return mine

    async def stop(self) -> None:
        self._stopped = True
        try:
            await asyncio.to_thread(self._close)
        except Exception:
            log.debug("closing the ZooKeeper session failed", exc_info=True)

    def _close(self) -> None:
        self.zk.stop()
        self.zk.close()

    # ---------------------------------------------------------------- replicas
    async def allocate_replica_id(self) -> int:
        def alloc() -> int:
            node = self.zk.create(
                f"{self.url.path}/{REPLICAS_NODE}/id_", b"", sequence=True, makepath=True
            )
            self.zk.delete(node)
            return int(node.rsplit("_", 1)[1]) + 1

        return await asyncio.to_thread(self._retrying, "allocating a replica id", alloc)

    async def register_replica(self, replica_id: int, host: str, port: int) -> None:
        self._replica = (replica_id, host, port)
        await asyncio.to_thread(self._create_replica)

    def _create_replica(self) -> None:
        if self._replica is None:
            return
        rid, host, port = self._replica
        path = f"{self.url.path}/{REPLICAS_NODE}/replica_{rid}"
        data = json.dumps({"id": rid, "host": host, "port": port}).encode()

        def create() -> None:
            try:
                self.zk.create(path, data, ephemeral=True)
            except NodeExistsError:
                # Left by our previous session (not yet expired), or made by an
                # attempt whose answer was lost: replace it.
                with contextlib.suppress(NoNodeError):
                    self.zk.delete(path)
                self.zk.create(path, data, ephemeral=True)

        self._retrying("registering replica " + path, create)

    async def replicas(self) -> dict[int, tuple[str, int]]:
        def read() -> dict[int, tuple[str, int]]:
            base = f"{self.url.path}/{REPLICAS_NODE}"
            out: dict[int, tuple[str, int]] = {}
            for child in self.zk.get_children(base):
                if not child.startswith("replica_"):
                    continue
                try:
                    data, _ = self.zk.get(f"{base}/{child}")
                    obj = json.loads(data)
                    out[int(obj["id"])] = (str(obj["host"]), int(obj["port"]))
                except (NoNodeError, ValueError, KeyError, TypeError):
                    continue
            return out

        return await asyncio.to_thread(self._retrying, "reading the replicas", read)

    async def membership(self) -> dict[int, tuple[str, int]] | None:
        """The registry's membership as first formed, recorded as the data of the
        persistent ``log_replicas`` node; None while none is recorded."""

        def read() -> dict[int, tuple[str, int]] | None:
            data, _ = self.zk.get(f"{self.url.path}/{REPLICAS_NODE}")
            return parse_membership(data)

        return await asyncio.to_thread(self._retrying, "reading the membership", read)

    async def publish_membership(
        self, members: dict[int, tuple[str, int]]
    ) -> dict[int, tuple[str, int]]:
        """Record ``members`` as the membership unless one is recorded already (first
        writer wins, by the node's version); returns the recorded membership. Every
        master adopts the recorded one, so a master that was killed before it saw the
        membership form, or saw a different set of replicas, still agrees with the rest."""
        path = f"{self.url.path}/{REPLICAS_NODE}"
        encoded = json.dumps({"members": {str(k): list(v) for k, v in members.items()}})

        def publish() -> dict[int, tuple[str, int]]:
            data, stat = self.zk.get(path)
            recorded = parse_membership(data)
            if recorded is not None:
                return recorded
            try:
                self.zk.set(path, encoded.encode(), version=stat.version)
                return members
            except BadVersionError:  # another master recorded one first
                data, _ = self.zk.get(path)
                return parse_membership(data) or members

        return await asyncio.to_thread(self._retrying, "recording the membership", publish)

    # ---------------------------------------------------------------- callbacks
    def _listener(self, state: str) -> None:  # kazoo thread
        name = {
            KazooState.CONNECTED: "CONNECTED",
            KazooState.SUSPENDED: "SUSPENDED",
            KazooState.LOST: "LOST",
        }.get(state, str(state))
        self.state = name
        if not self._stopped:
            self.loop.call_soon_threadsafe(self.on_session, name)

    def _children_changed(self, children: list[str]) -> bool:  # kazoo thread
        if self._stopped:
            return False
        lowest = leader_child(children)
        info: dict[str, Any] | None = None
        if lowest is not None:
            try:
                data, _ = self.zk.get(f"{self.url.path}/{lowest}")
                info = json.loads(data)
            except NoNodeError:
                return True  # changed again; the next call will see it
            except ValueError:
                log.warning("leader znode %s holds no JSON", lowest)
        self.leader_node = lowest
        self.leader_info = info
        is_me = lowest is not None and lowest == self.my_node
        self.loop.call_soon_threadsafe(self.on_leader, info, is_me)
        return True

    async def round_trip(self, timeout: float) -> bool:
        """One request answered by the ZooKeeper server within ``timeout`` seconds:
        proof that our session was alive when the server got it (kazoo's asynchronous
        API: no thread of ours waits)."""
        if self.state != "CONNECTED":
            return False
        loop = self.loop
        done: asyncio.Future[bool] = loop.create_future()

        def answered(result: Any) -> None:  # kazoo thread
            ok = result.successful()

            def settle() -> None:
                if not done.done():
                    done.set_result(ok)

            loop.call_soon_threadsafe(settle)

        try:
            self.zk.exists_async(self.url.path).rawlink(answered)
            return await asyncio.wait_for(done, timeout)
        except Exception:  # TimeoutError, or kazoo refusing while disconnected
            return False

    async def read_leader(self) -> tuple[dict[str, Any] | None, bool]:
        """Read the leading znode now: (its MasterInfo or None, whether it is ours).

        Only an answer for the caller: the watch stays the one source of
        ``leader_node`` (a read that raced a watch event could otherwise leave an
        older view in place)."""

        def read() -> tuple[dict[str, Any] | None, bool]:
            while True:
                lowest = leader_child(self.zk.get_children(self.url.path))
                if lowest is None:
                    return None, False
                try:
                    data, _ = self.zk.get(f"{self.url.path}/{lowest}")
                except NoNodeError:
                    continue  # gone meanwhile: read again
                try:
                    info = json.loads(data)
                except ValueError:
                    info = None
                return info, lowest == self.my_node

        return await asyncio.to_thread(read)

    def is_leader(self) -> bool:
        """Our znode is the lowest and our session is connected right now."""
        return (
            self.state == "CONNECTED"
            and self.my_node is not None
            and self.leader_node == self.my_node
        )

    async def recreate_after_loss(self) -> None:
        """After LOST a new session starts without our ephemeral nodes: contend again."""
        await asyncio.to_thread(self._recreate)

    def _recreate(self) -> None:
        self._create_replica()
        self._create_info()
        # Our previous ChildrenWatch keeps running in the new session; refresh now.
        children = self._retrying(
            "reading the contenders", lambda: self.zk.get_children(self.url.path)
        )
        self._children_changed(children)
