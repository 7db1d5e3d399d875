"""ZooKeeper error codes and the exception the keeper's pure cores raise for reads.

The numbers are ZooKeeper's (``KeeperException.Code``) because they travel on the
wire unchanged in ``ReplyHeader.err`` and in multi results. Writes never raise:
``DataTree.apply`` returns the code in its result so that every replica records the
same answer for the same log entry. Reads raise :class:`KeeperError`, which carries
the code the server must put in its reply.
"""

from __future__ import annotations

from paddock.keeper.codes import ErrorCode

#: ``KeeperException.Code``; the codec's enum, re-exported under the short name the
#: state machine and the request handlers use.
Code = ErrorCode


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
