"""Per-server watch registrations and the notifications a change produces.

Watches are not replicated: each server keeps those of the sessions connected to
it, and turns the :class:`WatchTrigger` list that ``DataTree.apply`` returns into
deliveries for its sessions. The rules are ZooKeeper 3.9's
(``server/watch/WatchManager.java``, ``DataTree``):

- two tables, as ZooKeeper's ``dataWatches`` and ``childWatches``. getData and
  exists register in the data table (exists also on an absent node), getChildren
  in the child table; ``addWatch`` PERSISTENT registers in both,
  PERSISTENT_RECURSIVE only in the data table;
- NodeCreated and NodeDataChanged fire the data table at the path, NodeDeleted the
  data table and then the child table at the path (a session notified by the first
  is not notified twice), NodeChildrenChanged the child table at the parent;
- at the exact path every mode fires and one-shot (standard) registrations are
  consumed; at ancestors only PERSISTENT_RECURSIVE ones fire, so a recursive
  watch sees NodeCreated/Deleted/DataChanged below it but never
  NodeChildrenChanged;
- a session gets at most one event per trigger, and only if it may READ the node
  (``ServerCnxn.process(event, znodeAcl)``); a filtered one-shot watch is still
  consumed, as in ZooKeeper.

Deliveries are ordered by trigger, then by session id, so two servers with the same
registrations emit the same sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from paddock.keeper.acl import READ, Id, check_acl
from paddock.keeper.codes import AddWatchMode, KeeperState, WatcherType
from paddock.keeper.znode import EventType, WatchTrigger

if TYPE_CHECKING:
    from paddock.keeper.datatree import DataTree

STANDARD = 1
PERSISTENT = 2
PERSISTENT_RECURSIVE = 4

SYNC_CONNECTED = int(KeeperState.SYNC_CONNECTED)
#: zxid of events that come from setWatches rather than from a transaction
NO_ZXID = -1


class WatchDelivery(NamedTuple):
    """One notification to send: ReplyHeader(-1, zxid, 0) + WatcherEvent(type, state, path)."""

    session_id: int
    event_type: int
    state: int
    path: str
    zxid: int


_CREATED = int(EventType.NODE_CREATED)
_DELETED = int(EventType.NODE_DELETED)
_DATA_CHANGED = int(EventType.NODE_DATA_CHANGED)
_CHILDREN_CHANGED = int(EventType.NODE_CHILDREN_CHANGED)

AuthLookup = Callable[[int], Sequence[Id]]


class _Table:
    """path -> {session: mode bits}, plus the reverse index and a recursive count."""

    __slots__ = ("by_path", "by_session", "recursive")

    def __init__(self) -> None:
        self.by_path: dict[str, dict[int, int]] = {}
        self.by_session: dict[int, set[str]] = {}
        self.recursive = 0

    def add(self, path: str, session: int, mode: int) -> bool:
        watchers = self.by_path.get(path)
        if watchers is None:
            watchers = self.by_path[path] = {}
        old = watchers.get(session, 0)
        if old & mode:
            return False
        watchers[session] = old | mode
        self.by_session.setdefault(session, set()).add(path)
        if mode == PERSISTENT_RECURSIVE:
            self.recursive += 1
        return True

    def has(self, path: str, session: int, mode: int | None) -> bool:
        bits = self.by_path.get(path, {}).get(session, 0)
        return bool(bits) if mode is None else bool(bits & mode)

    def remove(self, path: str, session: int, mode: int | None) -> bool:
        """Drop ``mode`` (all modes if None); True if anything was registered."""
        watchers = self.by_path.get(path)
        if watchers is None:
            return False
        old = watchers.get(session, 0)
        new = 0 if mode is None else old & ~mode
        if old == new:
            return False
        if old & PERSISTENT_RECURSIVE and not new & PERSISTENT_RECURSIVE:
            self.recursive -= 1
        if new:
            watchers[session] = new
        else:
            self._forget(path, session, watchers)
        return True

    def _forget(self, path: str, session: int, watchers: dict[int, int]) -> None:
        del watchers[session]
        if not watchers:
            del self.by_path[path]
        paths = self.by_session.get(session)
        if paths is not None:
            paths.discard(path)
            if not paths:
                del self.by_session[session]

    def drop_session(self, session: int) -> None:
        for path in self.by_session.pop(session, ()):
            watchers = self.by_path[path]
            if watchers.pop(session, 0) & PERSISTENT_RECURSIVE:
                self.recursive -= 1
            if not watchers:
                del self.by_path[path]

    def fire(self, path: str, out: set[int]) -> None:
        """Collect sessions watching ``path`` (and recursive ancestors) into ``out``."""
        watchers = self.by_path.get(path)
        if watchers:
            for session, bits in list(watchers.items()):
                out.add(session)
                if bits & STANDARD:
                    if bits == STANDARD:
                        self._forget(path, session, watchers)
                    else:
                        watchers[session] = bits & ~STANDARD
        if self.recursive and path != "/":
            by_path = self.by_path
            parent = path
            while parent != "/":
                parent = parent[: parent.rfind("/")] or "/"
                above = by_path.get(parent)
                if above:
                    for session, bits in above.items():
                        if bits & PERSISTENT_RECURSIVE:
                            out.add(session)

    def count(self) -> int:
        return sum(len(w) for w in self.by_path.values())


class WatchManager:
    """Watch registrations of one server's sessions."""

    def __init__(self) -> None:
        self._data = _Table()
        self._child = _Table()

    # ---------------------------------------------------------- registration

    def add_data_watch(self, session_id: int, path: str) -> None:
        """getData/exists with watch=true (exists also when the node is absent)."""
        self._data.add(path, session_id, STANDARD)

    add_exist_watch = add_data_watch

    def add_child_watch(self, session_id: int, path: str) -> None:
        """getChildren/getChildren2 with watch=true."""
        self._child.add(path, session_id, STANDARD)

    def add_watch(self, session_id: int, path: str, mode: int) -> None:
        """addWatch (opcode 106): mode 0 persistent, 1 persistent recursive."""
        if mode == AddWatchMode.PERSISTENT_RECURSIVE:
            self._data.add(path, session_id, PERSISTENT_RECURSIVE)
        elif mode == AddWatchMode.PERSISTENT:
            self._data.add(path, session_id, PERSISTENT)
            self._child.add(path, session_id, PERSISTENT)
        else:
            raise ValueError(f"unknown addWatch mode {mode}")

    def contains(self, session_id: int, path: str, watcher_type: int) -> bool:
        """checkWatches (17): is there a watch of that type? (False -> NoWatcher)."""
        wt = watcher_type
        if wt == WatcherType.CHILDREN:
            return self._child.has(path, session_id, STANDARD)
        if wt == WatcherType.DATA:
            return self._data.has(path, session_id, STANDARD)
        if wt == WatcherType.PERSISTENT:
            return self._data.has(path, session_id, PERSISTENT)
        if wt == WatcherType.PERSISTENT_RECURSIVE:
            return self._data.has(path, session_id, PERSISTENT_RECURSIVE)
        if wt == WatcherType.ANY:
            return self._child.has(path, session_id, None) or self._data.has(path, session_id, None)
        raise ValueError(f"unknown watcher type {watcher_type}")

    def remove(self, session_id: int, path: str, watcher_type: int) -> bool:
        """removeWatches (18): True if something was removed (False -> NoWatcher)."""
        wt = watcher_type
        if wt == WatcherType.CHILDREN:
            return self._child.remove(path, session_id, STANDARD)
        if wt == WatcherType.DATA:
            return self._data.remove(path, session_id, STANDARD)
        if wt == WatcherType.PERSISTENT:
            removed_child = self._child.remove(path, session_id, PERSISTENT)
            removed_data = self._data.remove(path, session_id, PERSISTENT)
            return removed_child or removed_data
        if wt == WatcherType.PERSISTENT_RECURSIVE:
            return self._data.remove(path, session_id, PERSISTENT_RECURSIVE)
        if wt == WatcherType.ANY:
            removed_child = self._child.remove(path, session_id, None)
            removed_data = self._data.remove(path, session_id, None)
            return removed_child or removed_data
        raise ValueError(f"unknown watcher type {watcher_type}")

    def remove_session(self, session_id: int) -> None:
        """Forget every watch of a session (its connection closed or it expired)."""
        self._data.drop_session(session_id)
        self._child.drop_session(session_id)

    # --------------------------------------------------------------- firing

    def trigger(
        self,
        triggers: Iterable[WatchTrigger],
        zxid: int,
        auth_of: AuthLookup | None = None,
    ) -> list[WatchDelivery]:
        """Deliveries for the changes of one applied transaction.

        ``auth_of(session_id)`` gives a session's authenticated ids for the READ
        filter; without it nothing is filtered.
        """
        out: list[WatchDelivery] = []
        for path, event_type, acl in triggers:
            sessions: set[int] = set()
            if event_type == _CHILDREN_CHANGED:
                self._child.fire(path, sessions)
            else:
                self._data.fire(path, sessions)
                if event_type == _DELETED:
                    self._child.fire(path, sessions)
            if not sessions:
                continue
            for session in sorted(sessions):
                if auth_of is not None and not check_acl(acl, READ, auth_of(session)):
                    continue
                out.append(WatchDelivery(session, event_type, SYNC_CONNECTED, path, zxid))
        return out

    def set_watches(
        self,
        session_id: int,
        relative_zxid: int,
        tree: DataTree,
        data: Iterable[str] = (),
        exist: Iterable[str] = (),
        child: Iterable[str] = (),
        persistent: Iterable[str] = (),
        persistent_recursive: Iterable[str] = (),
    ) -> list[WatchDelivery]:
        """SetWatches/SetWatches2 from a reconnecting client (``DataTree.setWatches``).

        A watch whose event the client missed while away fires at once instead of
        being registered: a data watch on a deleted node -> NodeDeleted, on a node
        changed after ``relative_zxid`` -> NodeDataChanged; an exist watch on a node
        that now exists -> NodeCreated; a child watch -> NodeDeleted or, if pzxid
        moved past ``relative_zxid``, NodeChildrenChanged. Persistent watches are
        simply registered again. These events carry zxid -1 and no ACL filter.
        """
        out: list[WatchDelivery] = []
        nodes = tree.nodes
        for path in data:
            node = nodes.get(path)
            if node is None:
                out.append(WatchDelivery(session_id, _DELETED, SYNC_CONNECTED, path, NO_ZXID))
            elif node.mzxid > relative_zxid:
                out.append(WatchDelivery(session_id, _DATA_CHANGED, SYNC_CONNECTED, path, NO_ZXID))
            else:
                self._data.add(path, session_id, STANDARD)
        for path in exist:
            if path in nodes:
                out.append(WatchDelivery(session_id, _CREATED, SYNC_CONNECTED, path, NO_ZXID))
            else:
                self._data.add(path, session_id, STANDARD)
        for path in child:
            node = nodes.get(path)
            if node is None:
                out.append(WatchDelivery(session_id, _DELETED, SYNC_CONNECTED, path, NO_ZXID))
            elif node.pzxid > relative_zxid:
                out.append(
                    WatchDelivery(session_id, _CHILDREN_CHANGED, SYNC_CONNECTED, path, NO_ZXID)
                )
            else:
                self._child.add(path, session_id, STANDARD)
        for path in persistent:
            self._child.add(path, session_id, PERSISTENT)
            self._data.add(path, session_id, PERSISTENT)
        for path in persistent_recursive:
            self._data.add(path, session_id, PERSISTENT_RECURSIVE)
        return out

    # ---------------------------------------------------------- reporting

    def watch_count(self) -> int:
        """Registrations (session, path, table) in total, for ``wchs``/``mntr``."""
        return self._data.count() + self._child.count()

    def watched_paths(self) -> list[str]:
        return sorted(set(self._data.by_path) | set(self._child.by_path))

    def sessions_watching(self) -> list[int]:
        return sorted(set(self._data.by_session) | set(self._child.by_session))

    def paths_of(self, session_id: int) -> list[str]:
        """Paths a session watches (``wchc``)."""
        return sorted(
            self._data.by_session.get(session_id, set())
            | self._child.by_session.get(session_id, set())
        )

    def sessions_of(self, path: str) -> list[int]:
        """Sessions watching a path (``wchp``)."""
        return sorted(
            set(self._data.by_path.get(path, {})) | set(self._child.by_path.get(path, {}))
        )
