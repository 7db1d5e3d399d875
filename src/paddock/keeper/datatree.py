"""The keeper's replicated state machine: znodes plus the global sessions table.

Every replica applies the same committed log entries in the same order through
:meth:`DataTree.apply`, and so computes the same tree *and the same answers*: each
write is validated when it is applied (ZooKeeper validates in the leader's
PrepRequestProcessor against pending changes; with a Raft log, applying in log order
gives the same verdicts without a second copy of the state). Errors, sequential
names, stats and the watch triggers all come out of ``apply``; nothing here does
I/O or reads a clock, and iteration that can reach the output is sorted.

Reads (``get_data``, ``get_children``, ...) are answered locally by any server and
raise :class:`KeeperError` with ZooKeeper's code on failure. Watch registration is
the per-server :class:`paddock.keeper.watches.WatchManager`'s business; the tree
only reports what changed (:class:`WatchTrigger`).

Semantics follow apache/zookeeper (``PrepRequestProcessor``, ``DataTree``,
``FinalRequestProcessor``, 3.8.0 where it differs from 3.9 and paddock is compared
against 3.8.0); notable points:

- check order per op is ZooKeeper's (e.g. delete checks DELETE on the parent before
  it looks at the node; create validates the ACL before looking up the parent);
- the stored ``cversion`` counts child creations only (it numbers sequential
  children); clients see creations + deletions (``ZNode.stat``); creates and
  deletes both move ``pzxid``;
- a failed multi leaves the tree untouched and reports ``0`` for the ops before the
  failing one, its error for it, and ``-2`` (RuntimeInconsistency) after it;
- an unknown session yields SessionExpired (ZooKeeper says UnknownSession for a
  session it never heard of, SessionExpired for one being closed; after a
  replicated close the two cannot be told apart). Session id 0 is the system: its
  transactions skip the session check but not ACL checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from paddock.keeper import txn as t
from paddock.keeper.acl import (
    ACL,
    ADMIN,
    CREATE,
    DELETE,
    OPEN_ACL_UNSAFE,
    READ,
    READ_ACL_UNSAFE,
    WRITE,
    Id,
    check_acl,
    fixup_acl,
)
from paddock.keeper.errors import Code, KeeperError
from paddock.keeper.tree_reads import TreeReads
from paddock.keeper.znode import (
    CONFIG,
    CONTAINER_OWNER,
    MAX_TTL,
    QUOTA,
    ROOT,
    SPECIAL_PATHS,
    ZOOKEEPER,
    EventType,
    Stat,
    WatchTrigger,
    ZNode,
    is_ephemeral_owner,
    is_ttl_owner,
    ttl_of,
    ttl_owner,
    validate_path,
)

_NODE_CREATED = int(EventType.NODE_CREATED)
_NODE_DELETED = int(EventType.NODE_DELETED)
_NODE_DATA_CHANGED = int(EventType.NODE_DATA_CHANGED)
_NODE_CHILDREN_CHANGED = int(EventType.NODE_CHILDREN_CHANGED)
_INT32_MAX = 2**31 - 1
_RUNTIME_INCONSISTENCY = int(Code.RUNTIME_INCONSISTENCY)


class Session(NamedTuple):
    timeout_ms: int
    password: bytes


@dataclass(slots=True)
class TxnResult:
    """The outcome of applying one transaction (or one op inside a multi).

    ``path`` is the created node's actual name (with the sequence suffix) for
    creates and the target path for other node ops; ``stat`` is set for creates,
    setData and setACL. For a multi, ``results`` holds one entry per op; when the
    multi failed, ``err`` is the failing op's code and every entry carries only its
    ``err``: 0 before the failing op, its code, -2 after. ZooKeeper then answers
    ``ErrorResult(err)`` for *every* op, including those with err 0, and the reply
    header of a multi always says 0 (FinalRequestProcessor). ``triggers`` are the
    watch events this transaction caused, in order (empty if it failed).
    """

    zxid: int
    err: int = 0
    path: str | None = None
    stat: Stat | None = None
    results: list[TxnResult] | None = None
    triggers: list[WatchTrigger] = field(default_factory=list)


_Undo = list[Callable[[], None]]


def _next_version(version: int) -> int:
    """ZooKeeper's checkAndIncVersion: int32 wrap-around, never landing on -1."""
    nxt = version + 1
    if nxt > _INT32_MAX:
        nxt = -(2**31)
    return 0 if nxt == -1 else nxt


class DataTree(TreeReads):
    """Znodes by full path, the sessions table and the indexes apply needs."""

    def __init__(self, config: bytes = b"") -> None:
        self.nodes: dict[str, ZNode] = {}
        self.sessions: dict[int, Session] = {}
        #: session id -> paths of its ephemeral nodes
        self.ephemerals: dict[int, set[str]] = {}
        self.containers: set[str] = set()
        self.ttls: set[str] = set()
        #: zxid of the last applied transaction
        self.last_zxid = 0
        #: interned ACL lists: nodes with equal ACLs share one tuple (ZooKeeper's aclCache)
        self.acl_cache: dict[tuple[ACL, ...], tuple[ACL, ...]] = {
            OPEN_ACL_UNSAFE: OPEN_ACL_UNSAFE,
            READ_ACL_UNSAFE: READ_ACL_UNSAFE,
        }
        self._init_system_nodes(config)
        self._handlers: dict[type, Callable[..., TxnResult]] = {
            t.SetData: self._set_data,
            t.Create: self._create,
            t.Delete: self._delete,
            t.SetACL: self._set_acl,
            t.Check: self._check,
        }

    def _init_system_nodes(self, config: bytes) -> None:
        # ZooKeeper's DataTree constructor: "/", "/zookeeper", "/zookeeper/quota" with
        # zeroed stats and an open ACL, then "/zookeeper/config" read-only to the world
        # with aversion -1 (set through setACL(path, acl, -1), ZOOKEEPER-2014).
        root = ZNode(b"", OPEN_ACL_UNSAFE, 0, 0, 0)
        zk = ZNode(b"", OPEN_ACL_UNSAFE, 0, 0, 0)
        quota = ZNode(b"", OPEN_ACL_UNSAFE, 0, 0, 0)
        cfg = ZNode(config, READ_ACL_UNSAFE, 0, 0, 0)
        cfg.aversion = -1
        root.add_child("zookeeper")
        zk.add_child("quota")
        zk.add_child("config")
        self.nodes.update({ROOT: root, ZOOKEEPER: zk, QUOTA: quota, CONFIG: cfg})

    # ------------------------------------------------------------------ apply

    def apply(self, txn: t.Txn, zxid: int, time_ms: int) -> TxnResult:
        """Apply one committed transaction; never raises for a client-level error."""
        op = txn.op
        handler = self._handlers.get(type(op))
        if zxid > self.last_zxid:
            self.last_zxid = zxid
        triggers: list[WatchTrigger] = []
        try:
            if handler is not None:
                result = handler(txn.session_id, txn.auth, op, zxid, time_ms, triggers, None)
            elif isinstance(op, t.Multi):
                return self._multi(txn.session_id, txn.auth, op, zxid, time_ms)
            elif isinstance(op, t.CreateSession):
                self.sessions[op.session_id] = Session(op.timeout_ms, op.password)
                result = TxnResult(zxid)
            elif isinstance(op, t.CloseSession):
                self._close_session(op.session_id, zxid, triggers)
                result = TxnResult(zxid)
            elif isinstance(op, t.DeleteContainer):
                result = self._delete_container(op.path, zxid, time_ms, triggers)
            elif isinstance(op, t.SetConfig):
                result = self._set_config(txn.auth, op.data, zxid, time_ms, triggers)
            elif isinstance(op, t.Noop):
                result = TxnResult(zxid)
            else:
                result = TxnResult(zxid, int(Code.UNIMPLEMENTED))
        except KeeperError as exc:
            return TxnResult(zxid, exc.code, getattr(op, "path", None))
        except Exception:
            # A malformed op that slipped past the codec (say, data that is not
            # bytes). Handlers validate before they mutate, and every replica fails
            # the same way, so answering SystemError keeps the replicas in step
            # instead of stopping the applier.
            return TxnResult(zxid, int(Code.SYSTEM_ERROR), getattr(op, "path", None))
        result.triggers = triggers
        return result

    def intern_acl(self, acl: tuple[ACL, ...]) -> tuple[ACL, ...]:
        return self.acl_cache.setdefault(acl, acl)

    def _check_session(self, session_id: int) -> None:
        if session_id != 0 and session_id not in self.sessions:
            raise KeeperError(Code.SESSION_EXPIRED)

    def _create(
        self,
        sid: int,
        auth: Sequence[Id],
        op: t.Create,
        zxid: int,
        time_ms: int,
        triggers: list[WatchTrigger],
        undo: _Undo | None,
    ) -> TxnResult:
        mode = op.mode
        path = op.path
        if mode not in t.VALID_MODES:
            raise KeeperError(Code.BAD_ARGUMENTS, path)
        ttl = op.ttl
        if mode in t.TTL_MODES:
            if ttl <= 0 or ttl > MAX_TTL:
                raise KeeperError(Code.BAD_ARGUMENTS, path)
        elif ttl >= 0:
            raise KeeperError(Code.BAD_ARGUMENTS, path)
        ephemeral = mode in t.EPHEMERAL_MODES
        if ephemeral:
            if sid not in self.sessions:
                raise KeeperError(Code.SESSION_EXPIRED, path)
        elif sid != 0 and sid not in self.sessions:
            raise KeeperError(Code.SESSION_EXPIRED, path)
        slash = path.rfind("/")
        if slash == -1 or "\0" in path:
            raise KeeperError(Code.BAD_ARGUMENTS, path)
        acl = self.intern_acl(fixup_acl(op.acl, auth, path))
        parent_path = path[:slash] or ROOT
        parent = self.nodes.get(parent_path)
        if parent is None:
            raise KeeperError(Code.NO_NODE, path)
        if not check_acl(parent.acl, CREATE, auth):
            raise KeeperError(Code.NO_AUTH, path)
        if mode in t.SEQUENTIAL_MODES:
            path = f"{path}{parent.cversion:010d}"
        validate_path(path)
        if path in self.nodes:
            raise KeeperError(Code.NODE_EXISTS, path)
        if is_ephemeral_owner(parent.owner):
            raise KeeperError(Code.NO_CHILDREN_FOR_EPHEMERALS, path)
        if mode == t.CONTAINER:
            owner = CONTAINER_OWNER
        elif mode in t.TTL_MODES:
            owner = ttl_owner(ttl)
        elif ephemeral:
            owner = sid
        else:
            owner = 0
        node = ZNode(op.data, acl, zxid, time_ms, owner)
        name = path[path.rfind("/") + 1 :]
        if undo is not None:
            old_cversion, old_pzxid = parent.cversion, parent.pzxid

            def undo_create() -> None:
                self._unlink(path, parent, name, node)
                parent.cversion, parent.pzxid = old_cversion, old_pzxid

            undo.append(undo_create)
        self._link(path, parent, name, node)
        parent.cversion += 1
        parent.pzxid = zxid
        triggers.append(WatchTrigger(path, _NODE_CREATED, acl))
        triggers.append(WatchTrigger(parent_path, _NODE_CHILDREN_CHANGED, parent.acl))
        return TxnResult(zxid, 0, path, node.stat())

    def _link(self, path: str, parent: ZNode, name: str, node: ZNode) -> None:
        self.nodes[path] = node
        parent.add_child(name)
        owner = node.owner
        if owner == 0:
            return
        if owner == CONTAINER_OWNER:
            self.containers.add(path)
        elif is_ttl_owner(owner):
            self.ttls.add(path)
        else:
            self.ephemerals.setdefault(owner, set()).add(path)

    def _unlink(self, path: str, parent: ZNode, name: str, node: ZNode) -> None:
        del self.nodes[path]
        parent.remove_child(name)
        owner = node.owner
        if owner == 0:
            return
        if owner == CONTAINER_OWNER:
            self.containers.discard(path)
        elif is_ttl_owner(owner):
            self.ttls.discard(path)
        else:
            paths = self.ephemerals.get(owner)
            if paths is not None:
                paths.discard(path)
                if not paths:
                    del self.ephemerals[owner]

    def _remove(
        self, path: str, node: ZNode, zxid: int, triggers: list[WatchTrigger], undo: _Undo | None
    ) -> None:
        slash = path.rfind("/")
        parent_path = path[:slash] or ROOT
        parent = self.nodes[parent_path]
        name = path[slash + 1 :]
        if undo is not None:
            old_pzxid = parent.pzxid

            def undo_delete() -> None:
                self._link(path, parent, name, node)
                parent.pzxid = old_pzxid

            undo.append(undo_delete)
        self._unlink(path, parent, name, node)
        if zxid > parent.pzxid:
            parent.pzxid = zxid
        triggers.append(WatchTrigger(path, _NODE_DELETED, node.acl))
        triggers.append(WatchTrigger(parent_path, _NODE_CHILDREN_CHANGED, parent.acl))

    def _delete(
        self,
        sid: int,
        auth: Sequence[Id],
        op: t.Delete,
        zxid: int,
        time_ms: int,
        triggers: list[WatchTrigger],
        undo: _Undo | None,
    ) -> TxnResult:
        path = op.path
        self._check_session(sid)
        slash = path.rfind("/")
        if slash == -1 or "\0" in path or path in SPECIAL_PATHS:
            raise KeeperError(Code.BAD_ARGUMENTS, path)
        parent = self.nodes.get(path[:slash] or ROOT)
        if parent is None:
            raise KeeperError(Code.NO_NODE, path)
        if not check_acl(parent.acl, DELETE, auth):
            raise KeeperError(Code.NO_AUTH, path)
        node = self.nodes.get(path)
        if node is None:
            raise KeeperError(Code.NO_NODE, path)
        if op.version != -1 and op.version != node.version:
            raise KeeperError(Code.BAD_VERSION, path)
        if node.children:
            raise KeeperError(Code.NOT_EMPTY, path)
        self._remove(path, node, zxid, triggers, undo)
        return TxnResult(zxid, 0, path)

    def _set_data(
        self,
        sid: int,
        auth: Sequence[Id],
        op: t.SetData,
        zxid: int,
        time_ms: int,
        triggers: list[WatchTrigger],
        undo: _Undo | None,
    ) -> TxnResult:
        path = op.path
        if sid != 0 and sid not in self.sessions:
            raise KeeperError(Code.SESSION_EXPIRED, path)
        node = self.nodes.get(path)
        if node is None:
            # Only stored paths are valid ones, so validation can wait until here.
            validate_path(path)
            raise KeeperError(Code.NO_NODE, path)
        acl = node.acl
        if not check_acl(acl, WRITE, auth):
            raise KeeperError(Code.NO_AUTH, path)
        version = op.version
        if version != -1 and version != node.version:
            raise KeeperError(Code.BAD_VERSION, path)
        if undo is not None:
            saved = (node.data, node.version, node.mtime, node.mzxid)

            def undo_set() -> None:
                node.data, node.version, node.mtime, node.mzxid = saved

            undo.append(undo_set)
        node.data = op.data
        node.version = _next_version(node.version)
        node.mtime = time_ms
        node.mzxid = zxid
        triggers.append(WatchTrigger(path, _NODE_DATA_CHANGED, acl))
        return TxnResult(zxid, 0, path, node.stat())

    def _set_acl(
        self,
        sid: int,
        auth: Sequence[Id],
        op: t.SetACL,
        zxid: int,
        time_ms: int,
        triggers: list[WatchTrigger],
        undo: _Undo | None,
    ) -> TxnResult:
        path = op.path
        self._check_session(sid)
        validate_path(path)
        acl = self.intern_acl(fixup_acl(op.acl, auth, path))
        node = self.nodes.get(path)
        if node is None:
            raise KeeperError(Code.NO_NODE, path)
        if not check_acl(node.acl, ADMIN, auth):
            raise KeeperError(Code.NO_AUTH, path)
        if op.aversion != -1 and op.aversion != node.aversion:
            raise KeeperError(Code.BAD_VERSION, path)
        if undo is not None:
            saved = (node.acl, node.aversion)

            def undo_acl() -> None:
                node.acl, node.aversion = saved

            undo.append(undo_acl)
        node.acl = acl
        node.aversion = _next_version(node.aversion)
        return TxnResult(zxid, 0, path, node.stat())

    def _check(
        self,
        sid: int,
        auth: Sequence[Id],
        op: t.Check,
        zxid: int,
        time_ms: int,
        triggers: list[WatchTrigger],
        undo: _Undo | None,
    ) -> TxnResult:
        path = op.path
        self._check_session(sid)
        validate_path(path)
        node = self.nodes.get(path)
        if node is None:
            raise KeeperError(Code.NO_NODE, path)
        if not check_acl(node.acl, READ, auth):
            raise KeeperError(Code.NO_AUTH, path)
        if op.version != -1 and op.version != node.version:
            raise KeeperError(Code.BAD_VERSION, path)
        return TxnResult(zxid, 0, path)

    def _multi(
        self, sid: int, auth: Sequence[Id], op: t.Multi, zxid: int, time_ms: int
    ) -> TxnResult:
        undo: _Undo = []
        triggers: list[WatchTrigger] = []
        results: list[TxnResult] = []
        ops = op.ops
        for index, sub in enumerate(ops):
            handler = self._handlers.get(type(sub))
            try:
                if handler is None or isinstance(sub, t.SetACL):
                    raise KeeperError(Code.BAD_ARGUMENTS)
                results.append(handler(sid, auth, sub, zxid, time_ms, triggers, undo))
            except Exception as exc:
                for step in reversed(undo):
                    step()
                code = exc.code if isinstance(exc, KeeperError) else int(Code.SYSTEM_ERROR)
                failed = [TxnResult(zxid) for _ in range(index)]
                failed.append(TxnResult(zxid, code))
                failed.extend(TxnResult(zxid, _RUNTIME_INCONSISTENCY) for _ in ops[index + 1 :])
                return TxnResult(zxid, code, results=failed)
        return TxnResult(zxid, 0, results=results, triggers=triggers)

    def _close_session(self, session_id: int, zxid: int, triggers: list[WatchTrigger]) -> None:
        self.sessions.pop(session_id, None)
        paths = self.ephemerals.get(session_id)
        if not paths:
            return
        for path in sorted(paths):
            node = self.nodes.get(path)
            if node is not None:
                self._remove(path, node, zxid, triggers, None)
        self.ephemerals.pop(session_id, None)

    def _delete_container(
        self, path: str, zxid: int, time_ms: int, triggers: list[WatchTrigger]
    ) -> TxnResult:
        """Remove a container or TTL node that is still a deletion candidate.

        ZooKeeper trusts the leader's candidate list here; re-checking at apply time
        (empty, and for TTL nodes expired by the entry's time) closes the race with
        a client that added a child or touched the node meanwhile.
        """
        if path in SPECIAL_PATHS or "/" not in path:
            raise KeeperError(Code.BAD_ARGUMENTS, path)
        node = self.nodes.get(path)
        if node is None:
            raise KeeperError(Code.NO_NODE, path)
        if node.children:
            raise KeeperError(Code.NOT_EMPTY, path)
        owner = node.owner
        if owner == CONTAINER_OWNER:
            pass
        elif is_ttl_owner(owner):
            if time_ms - node.mtime <= ttl_of(owner):
                raise KeeperError(Code.BAD_VERSION, path)
        else:
            raise KeeperError(Code.BAD_VERSION, path)
        self._remove(path, node, zxid, triggers, None)
        return TxnResult(zxid, 0, path)

    def _set_config(
        self, auth: Sequence[Id], data: bytes, zxid: int, time_ms: int, triggers: list[WatchTrigger]
    ) -> TxnResult:
        node = self.nodes[CONFIG]
        if not check_acl(node.acl, WRITE, auth):
            raise KeeperError(Code.NO_AUTH, CONFIG)
        # ZooKeeper writes the reconfig as SetDataTxn(config, data, version=-1).
        node.data = data
        node.version = -1
        node.mtime = time_ms
        node.mzxid = zxid
        triggers.append(WatchTrigger(CONFIG, _NODE_DATA_CHANGED, node.acl))
        return TxnResult(zxid, 0, CONFIG, node.stat())

    def set_config_local(self, data: bytes) -> None:
        """Set ``/zookeeper/config`` without a transaction (startup, like ZooKeeper's
        own reading of its dynamic config file); replicated changes use SetConfig."""
        self.nodes[CONFIG].data = data

    # ------------------------------------------------------------- snapshots

    def serialize(self) -> bytes:
        """Deterministic snapshot of nodes, sessions and ``last_zxid``."""
        from paddock.keeper.tree_snapshot import serialize_tree

        return serialize_tree(self)

    @classmethod
    def deserialize(cls, data: bytes) -> DataTree:
        """Rebuild a tree from :meth:`serialize` output; ValueError if malformed."""
        from paddock.keeper.tree_snapshot import deserialize_tree

        return deserialize_tree(data)

    def digest(self) -> int:
        """64-bit hash of the whole state; equal trees give equal digests."""
        import hashlib

        return int.from_bytes(hashlib.blake2b(self.serialize(), digest_size=8).digest(), "big")
