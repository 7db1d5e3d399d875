"""ZooKeeper error codes and the exception the keeper's pure cores raise for reads.

The numbers are ZooKeeper's (``KeeperException.Code``) because they travel on the
wire unchanged in ``ReplyHeader.err`` and in multi results. Writes never raise:
``DataTree.apply`` returns the code in its result so that every replica records the
same answer for the same log entry. Reads raise :class:`KeeperError`, which carries
the code the server must put in its reply.
"""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    OK = 0
    SYSTEM_ERROR = -1
    RUNTIME_INCONSISTENCY = -2
    DATA_INCONSISTENCY = -3
    CONNECTION_LOSS = -4
    MARSHALLING_ERROR = -5
    UNIMPLEMENTED = -6
    OPERATION_TIMEOUT = -7
    BAD_ARGUMENTS = -8
    UNKNOWN_SESSION = -12
    NEW_CONFIG_NO_QUORUM = -13
    RECONFIG_IN_PROGRESS = -14
    API_ERROR = -100
    NO_NODE = -101
    NO_AUTH = -102
    BAD_VERSION = -103
    NO_CHILDREN_FOR_EPHEMERALS = -108
    NODE_EXISTS = -110
    NOT_EMPTY = -111
    SESSION_EXPIRED = -112
    INVALID_CALLBACK = -113
    INVALID_ACL = -114
    AUTH_FAILED = -115
    SESSION_MOVED = -118
    NOT_READ_ONLY = -119
    EPHEMERAL_ON_LOCAL_SESSION = -120
    NO_WATCHER = -121
    REQUEST_TIMEOUT = -122
    RECONFIG_DISABLED = -123
    SESSION_CLOSED_REQUIRE_SASL_AUTH = -124
    QUOTA_EXCEEDED = -125
    THROTTLED = -127


class KeeperError(Exception):
    """A ZooKeeper-level failure of one request; ``code`` is the wire error code."""

    def __init__(self, code: int, path: str | None = None) -> None:
        self.code = int(code)
        self.path = path
        try:
            name = Code(self.code).name
        except ValueError:
            name = f"error {self.code}"
        super().__init__(f"{name}{'' if path is None else ' ' + path}")
