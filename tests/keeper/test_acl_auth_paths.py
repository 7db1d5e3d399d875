"""ZooKeeper digest ACLs tried with missing, wrong and replayed credentials, against
keeper and (when installed) Apache ZooKeeper: every operation the ACL does not grant is
refused with NoAuth — no credential, another user's, the right user with a wrong
password (a digest credential is just another identity, as in ZooKeeper), the stored
digest replayed as a password — an unknown scheme fails the session (AuthFailed), the
right credential works, and no password shows up in the server's log.

``PADDOCK_COMPAT_KINDS=keeper`` (or ``zookeeper``) restricts the runs to one kind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError, NoAuthError
from kazoo.security import ACL, Id, Permissions, make_digest_acl

from paddock.testing import (
    Ensemble,
    KeeperUnavailable,
    keeper_unavailable_reason,
    zk_ensemble,
    zookeeper_unavailable_reason,
)

KINDS = tuple(k for k in os.environ.get("PADDOCK_COMPAT_KINDS", "zookeeper,keeper").split(",") if k)
PASSWORD = "zk-Digest-Pass-1e9b7a"
OTHER_PASSWORD = "zk-Other-Pass-6c2d90"


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[Ensemble]:
    kind = str(request.param)
    reason = zookeeper_unavailable_reason() if kind == "zookeeper" else keeper_unavailable_reason()
    if reason is not None:
        pytest.skip(f"{kind}: {reason}")
    try:
        ensemble = zk_ensemble(kind, 1)
    except KeeperUnavailable as exc:
        pytest.skip(f"keeper: {exc}")
    yield ensemble
    ensemble.stop()


def connect(server: Ensemble, *auth: tuple[str, str]) -> KazooClient:
    client = KazooClient(hosts=server.hosts, timeout=10, auth_data=list(auth) or None)
    client.start(timeout=20)
    return client


@pytest.fixture
def clients(server: Ensemble) -> Iterator[list[KazooClient]]:
    made: list[KazooClient] = []
    yield made
    for c in made:
        c.stop()
        c.close()


def test_digest_acl_refuses_missing_wrong_and_replayed_credentials(server, clients, request):
    base = f"/acl-{request.node.callspec.id}-{os.getpid()}"
    owner = connect(server, ("digest", f"alice:{PASSWORD}"))
    clients.append(owner)
    acl = [make_digest_acl("alice", PASSWORD, all=True)]
    owner.create(base, b"secret-data", acl=acl)
    owner.create(base + "/child", b"c", acl=acl)
    # A node readable by everyone but writable only by alice.
    read_all = [ACL(Permissions.READ, Id("world", "anyone")), *acl]
    owner.create(base + "-public", b"p", acl=read_all)

    anonymous = connect(server)
    clients.append(anonymous)
    other = connect(server, ("digest", f"bob:{OTHER_PASSWORD}"))
    clients.append(other)
    # The right user name with another user's password is a different identity: a digest
    # credential is only what it hashes to ("alice:<wrong>" is simply someone else).
    wrong_password = connect(server, ("digest", f"alice:{OTHER_PASSWORD}"))
    clients.append(wrong_password)
    # "Replayed": the stored digest (what getACL shows an admin) used as a password.
    stored = acl[0].id.id.split(":", 1)[1]
    replayed = connect(server, ("digest", f"alice:{stored}"))
    clients.append(replayed)

    for c in (anonymous, other, wrong_password, replayed):
        with pytest.raises(NoAuthError):
            c.get(base)
        with pytest.raises(NoAuthError):
            c.set(base, b"overwritten")
        with pytest.raises(NoAuthError):
            c.create(base + "/new", b"x")
        with pytest.raises(NoAuthError):
            c.delete(base + "/child")
        with pytest.raises(NoAuthError):
            c.get_children(base)
        with pytest.raises(NoAuthError):
            c.set_acls(base, [make_digest_acl("mallory", "m", all=True)])
        assert c.get(base + "-public")[0] == b"p"
        with pytest.raises(NoAuthError):
            c.set(base + "-public", b"overwritten")
        # exists needs no permission (as in ZooKeeper) and says nothing of the data.
        assert c.exists(base) is not None

    # Adding the right credential to a refused session makes it work.
    anonymous.add_auth("digest", f"alice:{PASSWORD}")
    assert anonymous.get(base)[0] == b"secret-data"
    assert owner.get_children(base) == ["child"]
    owner.set(base, b"v2")
    assert owner.get(base)[0] == b"v2"
    # Nothing was changed by the refused clients.
    assert owner.get_acls(base)[0] == acl
    assert owner.get(base + "-public")[0] == b"p"

    for member in server.members:
        log = member.log_path.read_text(errors="replace") if member.log_path.exists() else ""
        for secret in (PASSWORD, OTHER_PASSWORD):
            assert secret not in log, f"password leaked into {member.log_path}"


def test_unknown_auth_scheme_fails_the_session(server, clients):
    client = KazooClient(hosts=server.hosts, timeout=10)
    clients.append(client)
    client.start(timeout=20)
    with pytest.raises(AuthFailedError):
        client.add_auth("no-such-scheme", PASSWORD)
    for member in server.members:
        log = member.log_path.read_text(errors="replace") if member.log_path.exists() else ""
        assert PASSWORD not in log
