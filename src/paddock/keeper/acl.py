"""ZooKeeper ACLs: permissions, schemes, validation (``fixupACL``) and checks (``checkACL``).

Everything here is pure and deterministic because ACL checks on writes run while a
replica applies a log entry (``DataTree.apply``); every replica must reach the same
verdict from the same inputs: the node's ACL and the caller's authenticated ids that
the proposer copied into the transaction.

An authenticated id is an :class:`Id` ``(scheme, id)``: ``("ip", "127.0.0.1")`` added
by the server for every connection, ``("digest", "user:<base64 sha1>")`` after an auth
packet with scheme ``digest``, and ``("super", "")`` for a superuser (ZooKeeper adds
that id when the digest of the supplied credentials equals the configured super
digest; see :func:`authenticate_digest`). A caller holding ``("super", "")`` passes
every check.

Semantics follow ``PrepRequestProcessor.fixupACL`` and ``ZooKeeperServer.checkACL``
(apache/zookeeper 3.9): an empty ACL list on a node allows everything; a permission
is granted by the first entry whose perms include it and whose id matches one of
the caller's ids of the same scheme.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from paddock.keeper.errors import Code, KeeperError

READ = 1
WRITE = 2
CREATE = 4
DELETE = 8
ADMIN = 16
ALL = READ | WRITE | CREATE | DELETE | ADMIN


class Id(NamedTuple):
    scheme: str
    id: str


ANYONE_ID = Id("world", "anyone")


class ACL(NamedTuple):
    """One ACL entry, shaped as ZooKeeper's (and the codec's) ``ACL{perms, Id id}``."""

    perms: int
    id: Id


#: The id ZooKeeper grants to superusers; holding it bypasses every ACL check.
SUPER_ID = Id("super", "")
OPEN_ACL_UNSAFE: tuple[ACL, ...] = (ACL(ALL, ANYONE_ID),)
READ_ACL_UNSAFE: tuple[ACL, ...] = (ACL(READ, ANYONE_ID),)
CREATOR_ALL_ACL: tuple[ACL, ...] = (ACL(ALL, Id("auth", "")),)

AuthIds = Sequence[Id]


def generate_digest(id_password: str) -> str:
    """``"user:password"`` -> ``"user:base64(sha1('user:password'))"`` (ZooKeeper's digest id)."""
    user = id_password.split(":", 1)[0]
    digest = hashlib.sha1(id_password.encode("utf-8")).digest()
    return user + ":" + base64.b64encode(digest).decode("ascii")


def digest_id(user: str, password: str) -> str:
    """The ``digest`` ACL id for a user and password, as kazoo's ``make_digest_acl_credential``."""
    return generate_digest(f"{user}:{password}")


def authenticate_digest(credentials: bytes, super_digest: str | None = None) -> list[Id]:
    """Ids granted by an auth packet with scheme ``digest`` (``credentials`` = b"user:password").

    ``super_digest`` is the configured administrator id (``"super:<base64 sha1>"``,
    ZooKeeper's ``zookeeper.DigestAuthenticationProvider.superDigest``); when the
    credentials hash to it the caller also gets :data:`SUPER_ID`. ZooKeeper decodes
    the bytes with the platform charset; UTF-8 here (kazoo encodes with UTF-8).
    """
    text = credentials.decode("utf-8", errors="replace")
    digest = generate_digest(text)
    ids: list[Id] = []
    if super_digest is not None and digest == super_digest:
        ids.append(SUPER_ID)
    ids.append(Id("digest", digest))
    return ids


def ip_id(address: str) -> Id:
    """The id every connection from ``address`` holds (ZooKeeper adds it on accept)."""
    return Id("ip", address)


def _parse_ip_expr(expr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    addr, sep, bits_text = expr.partition("/")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    bits: int = ip.max_prefixlen
    if sep:
        try:
            bits = int(bits_text)
        except ValueError:
            return None
        if bits < 0 or bits > ip.max_prefixlen:
            return None
    # strict=False masks host bits away, as ZooKeeper's IPAuthenticationProvider does.
    return ipaddress.ip_network(f"{ip}/{bits}", strict=False)


def _ip_matches(client: str, expr: str) -> bool:
    network = _parse_ip_expr(expr)
    if network is None:
        return False
    try:
        ip = ipaddress.ip_address(client)
    except ValueError:
        return False
    return ip.version == network.version and ip in network


def _digest_valid(id_: str) -> bool:
    # Java: id.split(":").length == 2 (trailing empty parts dropped).
    parts = id_.split(":")
    while parts and parts[-1] == "":
        parts.pop()
    return len(parts) == 2


#: Schemes the server knows: scheme -> (ids of it count as authenticated for the
#: "auth" scheme, validity check for ACL ids). "sasl" and "x509" are exact-match
#: schemes in ZooKeeper (with default principal rules).
_SCHEMES = {
    "digest": (True, _digest_valid),
    "ip": (False, lambda id_: _parse_ip_expr(id_) is not None),
    "sasl": (True, lambda id_: True),
    "x509": (True, lambda id_: True),
}


def is_known_scheme(scheme: str) -> bool:
    return scheme in _SCHEMES


def fixup_acl(acl: Iterable[ACL], auth: AuthIds, path: str | None = None) -> tuple[ACL, ...]:
    """Validate an ACL list for create/setACL and expand ``auth`` entries.

    Raises ``KeeperError(INVALID_ACL)`` for an empty list, an unknown scheme, a
    malformed id, ``world`` with an id other than ``anyone``, or an ``auth`` entry
    when the caller holds no authenticated (digest/sasl/x509) id. Duplicates are
    dropped (first occurrence kept), as ZooKeeper does.
    """
    unique: list[ACL] = []
    for entry in acl:
        if entry not in unique:
            unique.append(entry)
    if not unique:
        raise KeeperError(Code.INVALID_ACL, path)
    result: list[ACL] = []
    for entry in unique:
        scheme, ident = entry.id
        if scheme == "world" and ident == "anyone":
            result.append(entry)
        elif scheme == "auth":
            found = False
            for cid in auth:
                provider = _SCHEMES.get(cid.scheme)
                if provider is not None and provider[0]:
                    found = True
                    result.append(ACL(entry.perms, Id(cid.scheme, cid.id)))
            if not found:
                raise KeeperError(Code.INVALID_ACL, path)
        else:
            provider = _SCHEMES.get(scheme)
            if provider is None or not provider[1](ident):
                raise KeeperError(Code.INVALID_ACL, path)
            result.append(entry)
    return tuple(result)


def check_acl(acl: Sequence[ACL], perm: int, auth: AuthIds) -> bool:
    """True when ``auth`` may do ``perm`` on a node with ``acl`` (``checkACL``).

    ``perm`` may combine bits; any one of them granted suffices (ZooKeeper tests
    ``(entry.perms & perm) != 0``; getACL relies on this with READ|ADMIN).
    """
    if not acl:
        return True
    for entry in acl:
        if entry.perms & perm and entry.id == ANYONE_ID:
            return True
    for cid in auth:
        if cid.scheme == "super":
            return True
    for entry in acl:
        if not entry.perms & perm:
            continue
        scheme, ident = entry.id
        for cid in auth:
            if cid.scheme != scheme:
                continue
            if scheme == "ip":
                if _ip_matches(cid.id, ident):
                    return True
            elif scheme in _SCHEMES and cid.id == ident:
                return True
    return False


def mask_digests(acl: Sequence[ACL]) -> list[ACL]:
    """getACL's answer for callers without ADMIN: digest hashes replaced by ``x``."""
    out: list[ACL] = []
    for entry in acl:
        scheme, ident = entry.id
        if scheme == "digest" and ":" in ident:
            out.append(ACL(entry.perms, Id(scheme, ident.split(":", 1)[0] + ":x")))
        else:
            out.append(entry)
    return out
