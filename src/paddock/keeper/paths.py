"""Znode path validation with the rules of ZooKeeper's ``PathUtils.validatePath``.

A request with a path that fails here is answered BadArguments (-8).  Java
checks UTF-16 code units; a Python code point above U+FFFF would be a
surrogate pair in Java and so is refused too, as are U+FFFD replacement
characters left by undecodable UTF-8 (they fall in the refused U+FFF0-U+FFFF
range, exactly as in Java).
"""

from __future__ import annotations

import re

__all__ = ["validate_path"]

# Code points Java refuses (checked per UTF-16 unit): controls, DEL and C1
# controls, surrogates and the private use area, specials, and anything
# beyond the BMP (which Java sees as surrogates).
_BAD_CHAR = re.compile("[\x01-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\U0010ffff]")


def validate_path(path: str | None, sequential: bool = False) -> str | None:
    """Why ``path`` is not a valid znode path, or None when it is valid.

    ``sequential`` validates a sequential create's prefix, which may end with
    "/" because the server appends a counter (Java checks ``path + "1"``).
    """
    if path is None:
        return "Path cannot be null"
    if sequential:
        path = path + "1"
    if not path:
        return "Path length must be > 0"
    if path[0] != "/":
        return "Path must start with / character"
    if len(path) == 1:
        return None
    if path[-1] == "/":
        return "Path must not end with / character"
    if "\x00" in path:
        return f"Invalid path string {path!r} caused by null character not allowed"
    if "//" in path:
        return f"Invalid path string {path!r} caused by empty node name specified"
    if "/." in path:
        for segment in path.split("/")[1:]:
            if segment in (".", ".."):
                return f"Invalid path string {path!r} caused by relative paths not allowed"
    bad = _BAD_CHAR.search(path)
    if bad is not None:
        return f"Invalid path string {path!r} caused by invalid character @{bad.start()}"
    return None
