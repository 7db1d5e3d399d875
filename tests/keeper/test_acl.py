"""ACL schemes, validation and checks against ZooKeeper's (and kazoo's) behaviour."""

import pytest
from kazoo.security import make_digest_acl_credential

from paddock.keeper.acl import (
    ACL,
    ADMIN,
    ALL,
    CREATE,
    DELETE,
    OPEN_ACL_UNSAFE,
    READ,
    SUPER_ID,
    WRITE,
    Id,
    authenticate_digest,
    check_acl,
    digest_id,
    fixup_acl,
    generate_digest,
    ip_id,
    mask_digests,
)
from paddock.keeper.errors import Code, KeeperError


def test_permission_bits():
    assert (READ, WRITE, CREATE, DELETE, ADMIN, ALL) == (1, 2, 4, 8, 16, 31)


def test_digest_matches_known_value_and_kazoo():
    assert digest_id("user", "password") == "user:tpUq/4Pn5A64fVZyQ0gOJ8ZWqkY="
    assert digest_id("user", "password") == make_digest_acl_credential("user", "password")
    assert digest_id("super", "test") == make_digest_acl_credential("super", "test")
    assert generate_digest("u:p:with:colons") == make_digest_acl_credential("u", "p:with:colons")
    assert digest_id("üser", "pässword") == make_digest_acl_credential("üser", "pässword")


def test_authenticate_digest_and_super():
    super_digest = digest_id("super", "test")
    ids = authenticate_digest(b"super:test", super_digest)
    assert ids == [SUPER_ID, Id("digest", super_digest)]
    assert authenticate_digest(b"user:password", super_digest) == [
        Id("digest", "user:tpUq/4Pn5A64fVZyQ0gOJ8ZWqkY=")
    ]
    assert authenticate_digest(b"super:wrong", super_digest)[0] != SUPER_ID
    assert SUPER_ID not in authenticate_digest(b"super:test", None)


def test_world_and_empty_acl():
    assert check_acl(OPEN_ACL_UNSAFE, READ, [])
    assert check_acl((), ADMIN, [])  # no ACL at all: everything allowed
    ro = (ACL(READ, Id("world", "anyone")),)
    assert check_acl(ro, READ, [])
    assert not check_acl(ro, WRITE, [])
    assert check_acl(ro, WRITE, [SUPER_ID])
    assert check_acl(ro, READ | ADMIN, [])  # any one of the bits suffices


def test_digest_check():
    alice = Id("digest", digest_id("alice", "pw"))
    acl = (ACL(READ | WRITE, alice),)
    assert check_acl(acl, WRITE, [alice])
    assert not check_acl(acl, DELETE, [alice])
    assert not check_acl(acl, READ, [Id("digest", digest_id("alice", "other"))])
    assert not check_acl(acl, READ, [Id("ip", alice.id)])


@pytest.mark.parametrize(
    ("expr", "client", "ok"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", False),
        ("10.0.0.0/8", "10.200.3.4", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("10.1.2.3/16", "10.1.99.1", True),  # host bits of the expression are masked
        ("0.0.0.0/0", "192.168.1.1", True),
        ("::1", "::1", True),
        ("fe80::/16", "fe80::1234", True),
        ("fe80::/16", "10.0.0.1", False),
        ("10.0.0.0/33", "10.0.0.1", False),
        ("garbage", "10.0.0.1", False),
        ("10.0.0.1", "not-an-ip", False),
    ],
)
def test_ip_scheme(expr, client, ok):
    assert check_acl((ACL(ALL, Id("ip", expr)),), READ, [ip_id(client)]) is ok


def test_fixup_acl_validation():
    alice = Id("digest", digest_id("alice", "pw"))
    with pytest.raises(KeeperError) as exc:
        fixup_acl([], [alice])
    assert exc.value.code == Code.INVALID_ACL
    bad = [
        ACL(ALL, Id("world", "nobody")),
        ACL(ALL, Id("unknown", "x")),
        ACL(ALL, Id("digest", "no-colon")),
        ACL(ALL, Id("digest", "a:b:c")),
        ACL(ALL, Id("ip", "300.1.1.1")),
        ACL(ALL, Id("ip", "10.0.0.0/40")),
        ACL(ALL, Id("super", "")),
    ]
    for entry in bad:
        with pytest.raises(KeeperError):
            fixup_acl([entry], [alice])
    good = [
        ACL(READ, Id("world", "anyone")),
        ACL(ALL, Id("ip", "10.0.0.0/8")),
        ACL(ALL, alice),
        ACL(ALL, Id("digest", "bob:hash=")),
    ]
    assert fixup_acl(good + good[:1], []) == tuple(good)  # duplicates dropped


def test_fixup_auth_scheme():
    alice = Id("digest", digest_id("alice", "pw"))
    ip = Id("ip", "127.0.0.1")
    assert fixup_acl([ACL(ALL, Id("auth", ""))], [ip, alice, SUPER_ID]) == (ACL(ALL, alice),)
    with pytest.raises(KeeperError):
        fixup_acl([ACL(ALL, Id("auth", ""))], [ip, SUPER_ID])
    sasl = Id("sasl", "client@EXAMPLE")
    assert fixup_acl([ACL(READ, Id("auth", "ignored"))], [alice, sasl]) == (
        ACL(READ, alice),
        ACL(READ, sasl),
    )


def test_mask_digests():
    acl = [ACL(ALL, Id("digest", "user:abc=")), ACL(READ, Id("world", "anyone"))]
    assert mask_digests(acl) == [ACL(ALL, Id("digest", "user:x")), acl[1]]
