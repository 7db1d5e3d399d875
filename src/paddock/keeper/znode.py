"""Znodes, their Stat, path rules and the encodings packed into ``ephemeralOwner``.

Kept apart from ``datatree.py`` so that the watch manager and the snapshot code can
share these small pieces without importing the whole state machine.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from paddock.keeper.acl import ACL
from paddock.keeper.codes import EventType as EventType  # re-exported for callers
from paddock.keeper.errors import Code, KeeperError


class Stat(NamedTuple):
    """ZooKeeper's ``Stat`` record, fields in wire order."""

    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeral_owner: int
    data_length: int
    num_children: int
    pzxid: int


class WatchTrigger(NamedTuple):
    """A change the data tree reports for the watch manager.

    ``acl`` is the ACL of the node the event is about (for NodeChildrenChanged: the
    parent), used to withhold the event from sessions without READ on it, as
    ZooKeeper 3.9 does (``ServerCnxn.process(event, znodeAcl)``).
    """

    path: str
    event_type: int
    acl: tuple[ACL, ...]


# ephemeralOwner encodings (EphemeralType.java): a session id for ephemerals, 0 for
# persistent nodes, Long.MIN_VALUE for containers and 0xFF.. | ttl for TTL nodes.
CONTAINER_OWNER = -(1 << 63)
_EXTENDED_MASK = 0xFF00000000000000
_RESERVED_MASK = 0x00FFFF0000000000
MAX_TTL = 0x000000FFFFFFFFFF


def ttl_owner(ttl_ms: int) -> int:
    """The signed ``ephemeralOwner`` ZooKeeper stores for a TTL node."""
    value = _EXTENDED_MASK | ttl_ms
    return value - (1 << 64)


def is_ttl_owner(owner: int) -> bool:
    return owner != CONTAINER_OWNER and (owner & _EXTENDED_MASK) == _EXTENDED_MASK


def ttl_of(owner: int) -> int:
    return owner & MAX_TTL


def is_ephemeral_owner(owner: int) -> bool:
    """A session-owned ephemeral (not persistent, container or TTL)."""
    return owner != 0 and owner != CONTAINER_OWNER and (owner & _EXTENDED_MASK) != _EXTENDED_MASK


NO_CHILDREN: frozenset[str] = frozenset()


class ZNode:
    """One node. Children are a set of names; the full path is the dict key.

    ``children`` is :data:`NO_CHILDREN` until the first child is added; change it
    with :meth:`add_child` and :meth:`remove_child` only (they also drop the
    cached sorted listing).
    """

    __slots__ = (
        "acl",
        "aversion",
        "children",
        "ctime",
        "cversion",
        "czxid",
        "data",
        "mtime",
        "mzxid",
        "owner",
        "pzxid",
        "sorted_children",
        "version",
    )

    def __init__(
        self,
        data: bytes | None,
        acl: tuple[ACL, ...],
        zxid: int,
        time_ms: int,
        owner: int,
    ) -> None:
        self.data = data
        self.acl = acl
        self.czxid = zxid
        self.mzxid = zxid
        self.pzxid = zxid
        self.ctime = time_ms
        self.mtime = time_ms
        self.version = 0
        self.cversion = 0
        self.aversion = 0
        self.owner = owner
        # Most znodes are leaves; they share one empty frozenset until their first
        # child arrives (an empty set costs 216 bytes, a third of a small node).
        self.children: set[str] | frozenset[str] = NO_CHILDREN
        #: getChildren's sorted answer, kept until the children change
        self.sorted_children: list[str] | None = None

    def add_child(self, name: str) -> None:
        self.sorted_children = None
        children = self.children
        if isinstance(children, set):
            children.add(name)
        else:
            self.children = {name}

    def remove_child(self, name: str) -> None:
        self.sorted_children = None
        children = self.children
        if isinstance(children, set):
            children.discard(name)

    def stat(self) -> Stat:
        """The Stat clients see, which is not quite the stored one (``DataNode.copyStat``).

        ``cversion`` is stored as the number of child creations (it numbers
        sequential children) and shown as creations + deletions, i.e.
        ``2 * stored - numChildren`` (so the root, which has /zookeeper but no
        recorded creation, shows -1). ``ephemeralOwner`` shows 0 for containers and
        TTL nodes.
        """
        data = self.data
        num_children = len(self.children)
        cversion = self.cversion * 2 - num_children
        if not -0x80000000 <= cversion <= 0x7FFFFFFF:
            cversion = (cversion + 0x80000000) % 0x100000000 - 0x80000000  # Java int
        owner = self.owner
        if owner < 0 and (owner == CONTAINER_OWNER or is_ttl_owner(owner)):
            owner = 0
        return Stat(
            self.czxid,
            self.mzxid,
            self.ctime,
            self.mtime,
            self.version,
            cversion,
            self.aversion,
            owner,
            0 if data is None else len(data),
            num_children,
            self.pzxid,
        )


ROOT = "/"
ZOOKEEPER = "/zookeeper"
QUOTA = "/zookeeper/quota"
CONFIG = "/zookeeper/config"
#: Nodes ZooKeeper refuses to delete (``DataTree.isSpecialPath``).
SPECIAL_PATHS = frozenset({ROOT, ZOOKEEPER, QUOTA, CONFIG})

# Characters PathUtils.validatePath rejects. Java strings are UTF-16, so every
# code point above U+FFFF (a surrogate pair there) falls in the rejected range.
_BAD_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\U0010ffff]")


def path_error(path: str) -> str | None:
    """Why ``path`` is not a valid znode path (ZooKeeper's ``PathUtils``), or None."""
    if not path:
        return "path length must be > 0"
    if path[0] != "/":
        return "path must start with /"
    if len(path) == 1:
        return None
    if path[-1] == "/":
        return "path must not end with /"
    if "//" in path:
        return "empty node name"
    if "/./" in path or "/../" in path or path.endswith(("/.", "/..")):
        return "relative paths not allowed"
    if _BAD_CHARS.search(path):
        return "invalid character"
    return None


def validate_path(path: str) -> None:
    """Raise ``KeeperError(BAD_ARGUMENTS)`` for an invalid znode path."""
    if path_error(path) is not None:
        raise KeeperError(Code.BAD_ARGUMENTS, path)


def parent_of(path: str) -> str:
    """``/a/b`` -> ``/a``; ``/a`` -> ``/``."""
    return path[: path.rfind("/")] or "/"
