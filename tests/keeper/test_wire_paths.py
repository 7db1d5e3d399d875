"""validate_path follows ZooKeeper's PathUtils.validatePath."""

import pytest

from paddock.keeper.protocol import validate_path

VALID = [
    "/",
    "/a",
    "/a/b/c",
    "/zookeeper/config",
    "/a.b",
    "/..a",
    "/a..",
    "/a/.b/c",
    "/...",
    "/ünïcødé/节点",
    "/with space",
    "/\u00a0nbsp",
    "/\ufffe"[:-1] + "x",
]

INVALID = [
    None,
    "",
    "a",
    "a/b",
    "/a/",
    "//",
    "/a//b",
    "/a/./b",
    "/a/../b",
    "/.",
    "/..",
    "/a/.",
    "/a/..",
    "/a\x00b",
    "/a\x01",
    "/a\x1f",
    "/a\x7f",
    "/a\x9f",
    "/a\ud800",
    "/a\ue000",  # private use area
    "/a\uf8ff",
    "/a\ufff0",
    "/a\ufffd",  # replacement char from undecodable UTF-8
    "/a\uffff",
    "/emoji\U0001f600",  # a surrogate pair in Java
]


@pytest.mark.parametrize("path", VALID)
def test_valid(path):
    assert validate_path(path) is None


@pytest.mark.parametrize("path", INVALID)
def test_invalid(path):
    assert isinstance(validate_path(path), str)


def test_sequential_prefix_may_end_with_slash():
    assert validate_path("/queue/", sequential=True) is None
    assert validate_path("/queue/item-", sequential=True) is None
    assert validate_path("/queue/", sequential=False) is not None
    assert validate_path("/a//", sequential=True) is not None
