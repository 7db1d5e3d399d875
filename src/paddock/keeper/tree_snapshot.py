"""Snapshot encoding of a :class:`~paddock.keeper.datatree.DataTree`.

The image is canonical: nodes sorted by path, ACL lists in a table numbered by
first use in that order, sessions sorted by id. Two replicas with the same state
therefore produce the same bytes, which is what ``DataTree.digest`` hashes.
Children sets, the ephemeral/container/TTL indexes and the ACL cache are derived
data and rebuilt on load.

Layout (big-endian)::

    b"PKDT" u8 format(1) i64 last_zxid
    u32 n_sessions  n x (i64 id, i32 timeout_ms, u32 len, password)
    u32 n_acls      n x (u16 count, count x (i32 perms, str scheme, str id))
    u32 n_nodes     n x (str path, i32 data_len (-1 = null), data, u32 acl_index,
                         i64 czxid, i64 mzxid, i64 ctime, i64 mtime, i32 version,
                         i32 cversion, i32 aversion, i64 owner, i64 pzxid)
    str := u32 len, utf-8
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from paddock.keeper.acl import ACL, Id
from paddock.keeper.znode import ROOT, ZNode

if TYPE_CHECKING:
    from paddock.keeper.datatree import DataTree

_MAGIC = b"PKDT"
_FORMAT = 1
_HEAD = struct.Struct(">4sBq")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_SESSION = struct.Struct(">qiI")
_STAT = struct.Struct(">Iqqqqiiiqq")


def _str(s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    return _U32.pack(len(b)) + b


def serialize_tree(tree: DataTree) -> bytes:
    out: list[bytes] = [_HEAD.pack(_MAGIC, _FORMAT, tree.last_zxid)]
    out.append(_U32.pack(len(tree.sessions)))
    for sid in sorted(tree.sessions):
        session = tree.sessions[sid]
        out.append(_SESSION.pack(sid, session.timeout_ms, len(session.password)))
        out.append(session.password)

    acl_index: dict[tuple[ACL, ...], int] = {}
    acl_out: list[bytes] = []
    node_out: list[bytes] = []
    pack_stat = _STAT.pack
    pack_i32 = _I32.pack
    nodes = tree.nodes
    for path in sorted(nodes):
        node = nodes[path]
        index = acl_index.get(node.acl)
        if index is None:
            index = acl_index[node.acl] = len(acl_index)
            acl_out.append(_U16.pack(len(node.acl)))
            for entry in node.acl:
                acl_out.append(pack_i32(entry.perms) + _str(entry.id.scheme) + _str(entry.id.id))
        node_out.append(_str(path))
        data = node.data
        if data is None:
            node_out.append(pack_i32(-1))
        else:
            node_out.append(pack_i32(len(data)))
            node_out.append(data)
        node_out.append(
            pack_stat(
                index,
                node.czxid,
                node.mzxid,
                node.ctime,
                node.mtime,
                node.version,
                node.cversion,
                node.aversion,
                node.owner,
                node.pzxid,
            )
        )
    out.append(_U32.pack(len(acl_index)))
    out.extend(acl_out)
    out.append(_U32.pack(len(nodes)))
    out.extend(node_out)
    return b"".join(out)


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, st: struct.Struct) -> tuple[Any, ...]:
        pos = self.pos
        self.pos = pos + st.size
        if self.pos > len(self.buf):
            raise ValueError("truncated snapshot")
        return st.unpack_from(self.buf, pos)

    def raw(self, n: int) -> bytes:
        pos = self.pos
        self.pos = pos + n
        if n < 0 or self.pos > len(self.buf):
            raise ValueError("truncated snapshot")
        return self.buf[pos : self.pos]

    def str_(self) -> str:
        (n,) = self.take(_U32)
        return self.raw(n).decode("utf-8", "surrogatepass")


def deserialize_tree(data: bytes) -> DataTree:
    from paddock.keeper.datatree import DataTree, Session

    r = _Reader(bytes(data))
    magic, fmt, last_zxid = r.take(_HEAD)
    if magic != _MAGIC or fmt != _FORMAT:
        raise ValueError("not a keeper data tree snapshot")
    tree = DataTree()
    tree.nodes.clear()
    tree.last_zxid = last_zxid
    (n_sessions,) = r.take(_U32)
    for _ in range(n_sessions):
        sid, timeout, plen = r.take(_SESSION)
        tree.sessions[sid] = Session(timeout, r.raw(plen))
    (n_acls,) = r.take(_U32)
    if n_acls > len(r.buf):
        raise ValueError("corrupt snapshot")
    acls: list[tuple[ACL, ...]] = []
    for _ in range(n_acls):
        (count,) = r.take(_U16)
        entries = []
        for _ in range(count):
            (perms,) = r.take(_I32)
            scheme = r.str_()
            entries.append(ACL(perms, Id(scheme, r.str_())))
        acls.append(tree.intern_acl(tuple(entries)))
    (n_nodes,) = r.take(_U32)
    nodes = tree.nodes
    unpack_stat = _STAT.unpack_from
    stat_size = _STAT.size
    buf = r.buf
    try:
        for _ in range(n_nodes):
            path = r.str_()
            (dlen,) = r.take(_I32)
            node_data = None if dlen == -1 else r.raw(dlen)
            pos = r.pos
            if pos + stat_size > len(buf):
                raise ValueError("truncated snapshot")
            (index, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid) = (
                unpack_stat(buf, pos)
            )
            r.pos = pos + stat_size
            node = ZNode(node_data, acls[index], czxid, ctime, owner)
            node.mzxid = mzxid
            node.mtime = mtime
            node.version = version
            node.cversion = cversion
            node.aversion = aversion
            node.pzxid = pzxid
            nodes[path] = node
    except (IndexError, UnicodeDecodeError) as exc:
        raise ValueError("corrupt snapshot") from exc
    if r.pos != len(buf):
        raise ValueError("trailing bytes in snapshot")
    if ROOT not in nodes:
        raise ValueError("snapshot without a root node")
    for path, node in nodes.items():
        if path == ROOT:
            continue
        slash = path.rfind("/")
        parent = nodes.get(path[:slash] or ROOT)
        if parent is None:
            raise ValueError(f"snapshot node {path!r} has no parent")
        tree._link(path, parent, path[slash + 1 :], node)
    return tree
