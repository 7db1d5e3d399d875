"""Read side of the data tree: the queries any server answers from its local copy.

A mixin of :class:`paddock.keeper.datatree.DataTree`, split off to keep the
state-machine module readable. Reads raise :class:`KeeperError` with ZooKeeper's
code (NoNode, NoAuth, BadArguments) and check permissions as ZooKeeper's
``FinalRequestProcessor`` does: READ for getData, getChildren and
getAllChildrenNumber; READ or ADMIN for getACL; none for getEphemerals (a
session's own nodes) and, as in 3.8.0, none for exists (see
``exists_checks_acl``). Leader-side helpers that only look at the
tree (container and TTL deletion candidates) live here too.
"""

from __future__ import annotations

from collections.abc import Sequence

from paddock.keeper.acl import ACL, ADMIN, OPEN_ACL_UNSAFE, READ, Id, check_acl, mask_digests
from paddock.keeper.errors import Code, KeeperError
from paddock.keeper.znode import ROOT, Stat, ZNode, ttl_of


class TreeReads:
    nodes: dict[str, ZNode]
    ephemerals: dict[int, set[str]]
    containers: set[str]
    ttls: set[str]

    def _readable(self, path: str, auth: Sequence[Id]) -> ZNode:
        node = self.nodes.get(path)
        if node is None:
            raise KeeperError(Code.NO_NODE, path)
        acl = node.acl
        if not check_acl(acl, READ, auth):
            raise KeeperError(Code.NO_AUTH, path)
        return node

    def get_data(self, path: str, auth: Sequence[Id] = ()) -> tuple[bytes | None, Stat]:
        """getData: NoNode, NoAuth (READ)."""
        node = self.nodes.get(path)
        if node is None:
            raise KeeperError(Code.NO_NODE, path)
        acl = node.acl
        if not (acl is OPEN_ACL_UNSAFE or check_acl(acl, READ, auth)):
            raise KeeperError(Code.NO_AUTH, path)
        return node.data, node.stat()

    #: ZooKeeper 3.8.0 (the ensemble paddock is compared against) answers exists
    #: without looking at the ACL; 3.8.4/3.9.2 and later require READ on an
    #: existing node. Set True (per tree or class) for the newer behaviour.
    exists_checks_acl = False

    def exists(self, path: str, auth: Sequence[Id] = ()) -> Stat | None:
        """exists: None when absent; NoAuth only if ``exists_checks_acl`` and no READ."""
        if "\0" in path:
            raise KeeperError(Code.BAD_ARGUMENTS, path)
        node = self.nodes.get(path)
        if node is None:
            return None
        if self.exists_checks_acl and not check_acl(node.acl, READ, auth):
            raise KeeperError(Code.NO_AUTH, path)
        return node.stat()

    def get_children(self, path: str, auth: Sequence[Id] = ()) -> tuple[list[str], Stat]:
        """getChildren/getChildren2: sorted names (ZooKeeper: hash order) and the stat."""
        node = self._readable(path, auth)
        listing = node.sorted_children
        if listing is None:
            listing = node.sorted_children = sorted(node.children)
        return list(listing), node.stat()

    def get_acl(self, path: str, auth: Sequence[Id] = ()) -> tuple[list[ACL], Stat]:
        """getACL: needs READ or ADMIN; digests are masked for callers without ADMIN."""
        node = self.nodes.get(path)
        if node is None:
            raise KeeperError(Code.NO_NODE, path)
        if not check_acl(node.acl, READ | ADMIN, auth):
            raise KeeperError(Code.NO_AUTH, path)
        if check_acl(node.acl, ADMIN, auth):
            return list(node.acl), node.stat()
        return mask_digests(node.acl), node.stat()

    def get_all_children_number(self, path: str, auth: Sequence[Id] = ()) -> int:
        """Number of descendants (all depths) of ``path``; for "/" every other node."""
        node = self._readable(path, auth)
        if path == ROOT:
            return len(self.nodes) - 1
        count = 0
        stack = [(path, node)]
        nodes = self.nodes
        while stack:
            base, current = stack.pop()
            for name in current.children:
                child_path = f"{base}/{name}"
                count += 1
                child = nodes[child_path]
                if child.children:
                    stack.append((child_path, child))
        return count

    def get_ephemerals(self, session_id: int, prefix: str | None = None) -> list[str]:
        """getEphemerals: the session's ephemeral paths starting with ``prefix``, sorted."""
        paths = self.ephemerals.get(session_id, ())
        if prefix is None or not prefix.strip() or prefix.strip() == "/":
            return sorted(paths)
        return sorted(p for p in paths if p.startswith(prefix))

    def node(self, path: str) -> ZNode | None:
        """The raw node (no ACL check), for server internals such as setWatches."""
        return self.nodes.get(path)

    def stat(self, path: str) -> Stat | None:
        node = self.nodes.get(path)
        return None if node is None else node.stat()

    def node_count(self) -> int:
        return len(self.nodes)

    def ephemeral_count(self) -> int:
        return sum(len(p) for p in self.ephemerals.values())

    def approximate_data_size(self) -> int:
        """Sum of path lengths and data sizes, as ZooKeeper's ``approximateDataSize``."""
        return sum(len(p) + (len(n.data) if n.data else 0) for p, n in self.nodes.items())

    # -------------------------------------------------------- leader helpers

    def containers_to_delete(self, now_ms: int = 0, max_never_used_ms: int = 0) -> list[str]:
        """Empty containers the leader should propose ``DeleteContainer`` for.

        As ZooKeeper's ContainerManager: a container qualifies once it had a child
        (cversion > 0) and is empty again; a never-used one only if
        ``max_never_used_ms`` is set and its mtime is older than that.
        """
        out = []
        for path in self.containers:
            node = self.nodes[path]
            if node.children:
                continue
            if node.cversion > 0 or (max_never_used_ms and now_ms - node.mtime > max_never_used_ms):
                out.append(path)
        return sorted(out)

    def expired_ttls(self, now_ms: int) -> list[str]:
        """Childless TTL nodes whose mtime + ttl lies before ``now_ms``."""
        out = []
        for path in self.ttls:
            node = self.nodes[path]
            if not node.children and now_ms - node.mtime > ttl_of(node.owner):
                out.append(path)
        return sorted(out)

    def deletion_candidates(self, now_ms: int, max_never_used_ms: int = 0) -> list[str]:
        """Containers and expired TTL nodes, sorted: one DeleteContainer each."""
        return sorted(
            self.containers_to_delete(now_ms, max_never_used_ms) + self.expired_ttls(now_ms)
        )
