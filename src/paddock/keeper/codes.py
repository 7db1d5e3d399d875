"""Numeric constants of the ZooKeeper client protocol.

Values are those of Apache ZooKeeper's ``ZooDefs`` (OpCode, Perms,
AddWatchModes), ``KeeperException.Code``, ``Watcher`` (EventType,
KeeperState, WatcherType), ``CreateMode`` and ``ClientCnxn`` (special xids).
They are ``IntEnum``/``IntFlag`` so they compare equal to the plain ints
found on the wire; hot paths compare ints directly.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

# Largest value a jute buffer/string may have (``jute.maxbuffer``, default 0xfffff).
JUTE_MAXBUFFER_DEFAULT = 0xFFFFF
# Slack over jute.maxbuffer for a whole frame: the record header, path and
# other fields come on top of a maximal data buffer.  Java ZooKeeper pads its
# archive checks the same way (``zookeeper.jute.maxbuffer.extrasize``, at
# least 1024).
FRAME_SLACK = 1024
DEFAULT_MAX_PACKET = JUTE_MAXBUFFER_DEFAULT + FRAME_SLACK

# The znode holding the dynamic configuration; ``getConfig`` is a getData on it.
CONFIG_NODE = "/zookeeper/config"

# Special xids (``ClientCnxn``).
NOTIFICATION_XID = -1
PING_XID = -2
AUTH_XID = -4
SET_WATCHES_XID = -8

# Four-letter words recognised as the first four bytes of a new connection
# (``FourLetterCommands``).  ``stmk`` is followed by an 8-byte trace mask.
FOUR_LETTER_WORDS = frozenset(
    {
        "conf",
        "cons",
        "crst",
        "dirs",
        "dump",
        "envi",
        "gtmk",
        "ruok",
        "stmk",
        "srvr",
        "srst",
        "stat",
        "wchc",
        "wchp",
        "wchs",
        "mntr",
        "isro",
        "hash",
    }
)


class OpCode(IntEnum):
    NOTIFICATION = 0
    CREATE = 1
    DELETE = 2
    EXISTS = 3
    GET_DATA = 4
    SET_DATA = 5
    GET_ACL = 6
    SET_ACL = 7
    GET_CHILDREN = 8
    SYNC = 9
    PING = 11
    GET_CHILDREN2 = 12
    CHECK = 13
    MULTI = 14
    CREATE2 = 15
    RECONFIG = 16
    CHECK_WATCHES = 17
    REMOVE_WATCHES = 18
    CREATE_CONTAINER = 19
    DELETE_CONTAINER = 20
    CREATE_TTL = 21
    MULTI_READ = 22
    AUTH = 100
    SET_WATCHES = 101
    SASL = 102
    GET_EPHEMERALS = 103
    GET_ALL_CHILDREN_NUMBER = 104
    SET_WATCHES2 = 105
    ADD_WATCH = 106
    WHO_AM_I = 107
    CREATE_SESSION = -10
    CLOSE_SESSION = -11
    ERROR = -1


class ErrorCode(IntEnum):
    """``KeeperException.Code``: the ``err`` of a ReplyHeader."""

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
    THROTTLED_OP = -127


class EventType(IntEnum):
    """``Watcher.Event.EventType``: the ``type`` of a WatcherEvent."""

    NONE = -1
    NODE_CREATED = 1
    NODE_DELETED = 2
    NODE_DATA_CHANGED = 3
    NODE_CHILDREN_CHANGED = 4
    DATA_WATCH_REMOVED = 5
    CHILD_WATCH_REMOVED = 6
    PERSISTENT_WATCH_REMOVED = 7


class KeeperState(IntEnum):
    """``Watcher.Event.KeeperState``: the ``state`` of a WatcherEvent."""

    UNKNOWN = -1
    DISCONNECTED = 0
    NO_SYNC_CONNECTED = 1
    SYNC_CONNECTED = 3
    AUTH_FAILED = 4
    CONNECTED_READ_ONLY = 5
    SASL_AUTHENTICATED = 6
    CLOSED = 7
    EXPIRED = -112


class WatcherType(IntEnum):
    """``Watcher.WatcherType``: the ``type`` of checkWatches/removeWatches."""

    CHILDREN = 1
    DATA = 2
    ANY = 3
    PERSISTENT = 4
    PERSISTENT_RECURSIVE = 5


class AddWatchMode(IntEnum):
    """``ZooDefs.AddWatchModes``: the ``mode`` of addWatch."""

    PERSISTENT = 0
    PERSISTENT_RECURSIVE = 1


class CreateMode(IntEnum):
    """``CreateMode``: the ``flags`` of a create request."""

    PERSISTENT = 0
    EPHEMERAL = 1
    PERSISTENT_SEQUENTIAL = 2
    EPHEMERAL_SEQUENTIAL = 3
    CONTAINER = 4
    PERSISTENT_WITH_TTL = 5
    PERSISTENT_SEQUENTIAL_WITH_TTL = 6

    @classmethod
    def from_flags(cls, flags: int) -> CreateMode | None:
        """The mode for ``flags``, or None for an unknown value (answer BadArguments)."""
        try:
            return cls(flags)
        except ValueError:
            return None

    @property
    def is_ephemeral(self) -> bool:
        return self in (CreateMode.EPHEMERAL, CreateMode.EPHEMERAL_SEQUENTIAL)

    @property
    def is_sequential(self) -> bool:
        return self in (
            CreateMode.PERSISTENT_SEQUENTIAL,
            CreateMode.EPHEMERAL_SEQUENTIAL,
            CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL,
        )

    @property
    def is_container(self) -> bool:
        return self is CreateMode.CONTAINER

    @property
    def is_ttl(self) -> bool:
        return self in (
            CreateMode.PERSISTENT_WITH_TTL,
            CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL,
        )


class Perms(IntFlag):
    """``ZooDefs.Perms``: ACL permission bits."""

    READ = 1
    WRITE = 2
    CREATE = 4
    DELETE = 8
    ADMIN = 16
    ALL = 31
