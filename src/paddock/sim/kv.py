"""The replicated application of the consensus simulation: a KV register/CAS map.

Why: a state machine small enough to check completely, rich enough that a lost,
duplicated or reordered entry changes an observable answer. Commands carry a
unique request id and the machine applies each id at most once (Raft §8: a
forwarded proposal may be delivered, and so appended, twice).
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Command:
    request_id: int
    f: str  # "write" | "cas"
    key: str
    value: int | None  # write: new value; cas: new value
    old: int | None = None  # cas: expected value (None = key absent)


def encode_command(cmd: Command) -> bytes:
    old = "-" if cmd.old is None else str(cmd.old)
    return f"{cmd.f[0]}:{cmd.request_id}:{cmd.key}:{cmd.value}:{old}".encode()


def decode_command(data: bytes) -> Command:
    f, rid, key, value, old = data.decode().split(":")
    return Command(
        request_id=int(rid),
        f="write" if f == "w" else "cas",
        key=key,
        value=int(value),
        old=None if old == "-" else int(old),
    )


class KVStateMachine:
    """Applies committed commands in index order."""

    __slots__ = ("applied", "kv", "seen")

    def __init__(self) -> None:
        self.kv: dict[str, int] = {}
        self.seen: set[int] = set()
        self.applied = 0

    def apply(self, index: int, data: bytes) -> tuple[Command, bool] | None:
        """Apply one entry; returns the command and whether it changed the state
        (False for a failed CAS or a duplicate), or None for an empty entry."""
        self.applied = index
        if not data:
            return None
        cmd = decode_command(data)
        if cmd.request_id in self.seen:
            return cmd, False
        self.seen.add(cmd.request_id)
        if cmd.f == "write":
            assert cmd.value is not None
            self.kv[cmd.key] = cmd.value
            return cmd, True
        if self.kv.get(cmd.key) == cmd.old:
            assert cmd.value is not None
            self.kv[cmd.key] = cmd.value
            return cmd, True
        return cmd, False

    def digest(self) -> tuple[tuple[tuple[str, int], ...], int]:
        """Cheap identity of the state (values plus how many requests were seen)."""
        return tuple(sorted(self.kv.items())), len(self.seen)

    def serialize(self) -> bytes:
        return json.dumps(
            {"kv": sorted(self.kv.items()), "seen": sorted(self.seen)}, separators=(",", ":")
        ).encode()

    @classmethod
    def restore(cls, data: bytes, index: int) -> KVStateMachine:
        sm = cls()
        if data:
            obj = json.loads(data)
            sm.kv = {k: v for k, v in obj["kv"]}
            sm.seen = set(obj["seen"])
        sm.applied = index
        return sm
