"""Binary encoding of keeper transactions for the replicated log."""

import contextlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paddock.keeper import txn as t
from paddock.keeper.acl import ACL, OPEN_ACL_UNSAFE, SUPER_ID, Id
from paddock.keeper.txn import TxnDecodeError, decode_txn, encode_txn

paths = st.text(min_size=1, max_size=20).map(lambda s: "/" + s)
data = st.one_of(st.none(), st.binary(max_size=64))
i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
ids = st.builds(Id, st.sampled_from(["digest", "ip", "world", "super"]), st.text(max_size=10))
acls = st.lists(st.builds(ACL, st.integers(0, 31), ids), max_size=3).map(tuple)
simple_ops = st.one_of(
    st.builds(t.Create, paths, data, acls, st.integers(0, 6), i64),
    st.builds(t.Delete, paths, i32),
    st.builds(t.SetData, paths, data, i32),
    st.builds(t.Check, paths, i32),
)
ops = st.one_of(
    simple_ops,
    st.builds(t.SetACL, paths, acls, i32),
    st.builds(t.Multi, st.lists(simple_ops, max_size=4).map(tuple)),
    st.builds(t.CreateSession, i64, i32, st.binary(max_size=16)),
    st.builds(t.CloseSession, i64),
    st.builds(t.DeleteContainer, paths),
    st.builds(t.SetConfig, st.binary(max_size=40)),
    st.just(t.Noop()),
)
txns = st.builds(t.Txn, i64, st.lists(ids, max_size=3).map(tuple), ops, i32)


@given(txns)
def test_round_trip(txn):
    assert decode_txn(encode_txn(txn)) == txn


def test_examples():
    txn = t.Txn(42, (SUPER_ID,), t.SetData("/a", b"xyz", 3), cxid=9)
    raw = encode_txn(txn)
    assert decode_txn(raw) == txn
    assert len(raw) <= 46  # 15-byte header, then length-prefixed fields
    create = t.Txn(1, (), t.Create("/é", None, OPEN_ACL_UNSAFE, t.EPHEMERAL_SEQUENTIAL))
    assert decode_txn(encode_txn(create)) == create


def test_malformed_input_raises_decode_error():
    raw = encode_txn(
        t.Txn(1, (Id("digest", "a:b"),), t.Multi((t.Create("/a", b"1", OPEN_ACL_UNSAFE),)))
    )
    for cut in range(len(raw)):
        with pytest.raises(TxnDecodeError):
            decode_txn(raw[:cut])
    with pytest.raises(TxnDecodeError):
        decode_txn(raw + b"\0")
    rng = random.Random(5)
    for _ in range(2000):
        mutated = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        with contextlib.suppress(TxnDecodeError):
            decode_txn(bytes(mutated))


def test_nested_multi_and_session_ops_in_multi_are_rejected():
    inner = encode_txn(t.Txn(1, (), t.Multi((t.Check("/a", 1),))))
    nested = bytearray(inner)
    # turn the Check (tag 5) into a Multi (tag 6) with zero ops
    tag_at = inner.index(bytes([t.OpType.CHECK]), 19)
    nested[tag_at] = t.OpType.MULTI
    with pytest.raises(TxnDecodeError):
        decode_txn(bytes(nested))
    bad = bytearray(inner)
    bad[tag_at] = t.OpType.NOOP
    with pytest.raises(TxnDecodeError):
        decode_txn(bytes(bad))
