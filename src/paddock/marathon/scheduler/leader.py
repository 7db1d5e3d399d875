"""Leader latch for marathons under ``<zk path>/leader``.

Each marathon creates an EPHEMERAL|SEQUENTIAL ``member_NNNNNNNNNN`` znode holding its
``host:port``; the lowest sequence leads (the recipe behind Curator's LeaderLatch, which
Marathon used). Everyone watches the children, so standbys always know whom to proxy to.

Safety over liveness: ``leading`` is true only while our znode is lowest *and* the
session is CONNECTED. On SUSPENDED (connection lost, session maybe still alive) it turns
false at once — the leader stops launching and killing before the session could expire
and another marathon take over. On LOST (session expired) ``lost`` is set and the daemon
exits (a supervisor restarts it; it rejoins at the back of the line), as Marathon did —
no ghost leader (Marathon issue #1043). Abdication deletes our znode.

kazoo calls the watch and listener in its own threads; this class only records facts
and calls ``on_change`` (which must be thread-safe and must not block).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NoNodeError
from kazoo.recipe.watchers import ChildrenWatch

log = logging.getLogger(__name__)

PREFIX = "member_"


class LeaderLatch:
    def __init__(
        self, client: KazooClient, path: str, identifier: str, on_change: Callable[[], None]
    ) -> None:
        self.client = client
        self.path = path.rstrip("/")
        self.identifier = identifier
        self.on_change = on_change
        self.node: str | None = None
        self.is_lowest = False
        self.connected = True
        self.lost = False
        self.leader_address: str | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def leading(self) -> bool:
        return self.is_lowest and self.connected and not self.lost and not self._closed

    def start(self) -> None:
        """Join the election (blocking)."""
        self.client.add_listener(self._on_state)
        self.client.ensure_path(self.path)
        created = self.client.create(
            f"{self.path}/{PREFIX}", self.identifier.encode(), ephemeral=True, sequence=True
        )
        self.node = created.rsplit("/", 1)[1]
        ChildrenWatch(self.client, self.path, self._on_children)

    def _on_state(self, state: str) -> None:
        if state == KazooState.SUSPENDED:
            self.connected = False
        elif state == KazooState.LOST:
            self.connected = False
            self.lost = True
        elif state == KazooState.CONNECTED:
            self.connected = True
        log.info("coordination session %s", state)
        self.on_change()

    def _on_children(self, children: list[str]) -> bool | None:
        if self._closed:
            return False
        members = sorted((c for c in children if c.startswith(PREFIX)), key=lambda c: c[-10:])
        if not members:
            self.is_lowest = False
            self.leader_address = None
            self.on_change()
            return None
        lowest = members[0]
        self.is_lowest = lowest == self.node
        if self.is_lowest:
            self.leader_address = self.identifier
            self.on_change()
        else:
            result = self.client.get_async(f"{self.path}/{lowest}")

            def got(async_result: object) -> None:
                with contextlib.suppress(NoNodeError, Exception):
                    data, _ = result.get_nowait()
                    self.leader_address = data.decode() or None
                self.on_change()

            result.rawlink(got)
        return None

    def abdicate(self) -> None:
        """Leave the election: delete our znode (blocking)."""
        self._closed = True
        self.is_lowest = False
        if self.node is not None:
            with contextlib.suppress(NoNodeError):
                self.client.delete(f"{self.path}/{self.node}")
        self.on_change()
