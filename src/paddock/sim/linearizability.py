"""Linearizability checker for Jepsen-style histories.

Why: the simulator's clients record what they asked for and what they were told;
this module decides whether some sequential order of those operations, consistent
with real time, explains every answer. If none does, the system lied to a client.

Algorithm: Wing & Gong's search over the history as a doubly linked list of call
and return entries, with Lowe's memoization (a cache of ``(linearized-set bitset,
model state)`` pairs already explored) and P-compositionality (a history of a
register-per-key model is linearizable iff each key's sub-history is).

History conventions (as in Jepsen/Knossos):

* each event is ``(process, type, f, value)`` plus a ``key``; ``type`` is
  ``invoke``, ``ok``, ``fail`` or ``info``;
* a process has at most one outstanding operation; its next completion event
  closes it;
* ``fail`` means the operation certainly did not take effect: it is removed;
* ``info`` means the outcome is unknown: the operation may take effect at any
  point after its invocation, or never (it has no return entry);
* ``ok`` carries the observed output (the value read; writes/CAS echo their input).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

INVOKE = "invoke"
OK = "ok"
FAIL = "fail"
INFO = "info"

S = TypeVar("S", bound=Hashable)


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One line of a Jepsen-style history."""

    process: int
    type: str  # invoke | ok | fail | info
    f: str  # read | write | cas
    value: Any = None
    key: Hashable = None


@dataclass(frozen=True, slots=True)
class Operation:
    """An invocation paired with its completion.

    ``call``/``ret`` are positions in the history; ``ret`` is None for ``info``
    operations (they may linearize at any later point, or never).
    """

    id: int
    process: int
    f: str
    key: Hashable
    input: Any
    output: Any
    call: int
    ret: int | None


class Model(Protocol[S]):
    """A sequential specification: ``step`` says whether ``op`` may happen in
    ``state`` (given its recorded output) and what the state becomes."""

    def init(self) -> S: ...

    def step(self, state: S, op: Operation) -> tuple[bool, S]: ...


class RegisterModel:
    """One read/write/CAS register (the per-key part of the KV model).

    * ``read``: the output must equal the state (``info`` reads never reach the
      model: ``pair_operations`` drops them since they cannot change anything).
    * ``write``: input is the new value.
    * ``cas``: input is ``(old, new)``; an ``ok`` CAS requires ``state == old``.
      An ``info`` CAS that takes effect is a successful one (a failed compare
      has no effect, which the search covers by never linearizing it).
    The initial value is None (key absent).
    """

    def init(self) -> Any:
        return None

    def step(self, state: Any, op: Operation) -> tuple[bool, Any]:
        if op.f == "read":
            return op.output == state, state
        if op.f == "write":
            return True, op.input
        if op.f == "cas":
            old, new = op.input
            if state == old:
                return True, new
            return False, state
        raise ValueError(f"unknown operation {op.f!r}")


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    #: Key whose sub-history is not linearizable (when ``ok`` is false).
    key: Hashable = None
    #: The operation at which the deepest search attempt got stuck: its return
    #: came before any order could explain it.
    stuck: Operation | None = None
    operations: int = 0
    #: Search steps spent (for measuring).
    explored: int = 0

    def describe(self) -> str:
        if self.ok:
            return f"linearizable ({self.operations} operations)"
        op = self.stuck
        where = (
            f"; stuck at p{op.process} {op.f} {op.input!r} -> {op.output!r} "
            f"(history positions {op.call}..{op.ret})"
            if op is not None
            else ""
        )
        return f"NOT linearizable on key {self.key!r}{where}"


def pair_operations(history: Sequence[HistoryEvent]) -> list[Operation]:
    """Pair each invocation with its process's next completion.

    ``fail`` operations and ``info`` reads are dropped (neither changes state).
    Invocations never completed count as ``info``.
    """
    open_calls: dict[int, tuple[int, HistoryEvent]] = {}
    ops: list[Operation] = []
    raw: list[tuple[int, HistoryEvent, HistoryEvent | None, int | None]] = []
    for pos, ev in enumerate(history):
        if ev.type == INVOKE:
            if ev.process in open_calls:
                raise ValueError(f"process {ev.process} invoked twice without completing")
            open_calls[ev.process] = (pos, ev)
        elif ev.type in (OK, FAIL, INFO):
            if ev.process not in open_calls:
                raise ValueError(f"completion for process {ev.process} with no invocation")
            cpos, inv = open_calls.pop(ev.process)
            raw.append((cpos, inv, ev, pos))
        else:
            raise ValueError(f"unknown event type {ev.type!r}")
    for cpos, inv in open_calls.values():
        raw.append((cpos, inv, None, None))
    raw.sort(key=lambda r: r[0])
    for cpos, inv, done, rpos in raw:
        kind = INFO if done is None else done.type
        if kind == FAIL:
            continue
        if kind == INFO:
            if inv.f == "read":
                continue
            output = None
            rpos = None
        else:
            assert done is not None
            output = done.value
        ops.append(
            Operation(
                id=len(ops),
                process=inv.process,
                f=inv.f,
                key=inv.key,
                input=inv.value,
                output=output,
                call=cpos,
                ret=rpos,
            )
        )
    return ops


class _Entry:
    __slots__ = ("is_call", "local", "match", "next", "op", "prev", "time")

    def __init__(self, op: Operation, is_call: bool, time: int, local: int) -> None:
        self.op = op
        self.local = local
        self.is_call = is_call
        self.time = time
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _lift(call: _Entry) -> None:
    assert call.prev is not None
    call.prev.next = call.next
    if call.next is not None:
        call.next.prev = call.prev
    ret = call.match
    if ret is not None:
        assert ret.prev is not None
        ret.prev.next = ret.next
        if ret.next is not None:
            ret.next.prev = ret.prev


def _unlift(call: _Entry) -> None:
    ret = call.match
    if ret is not None:
        assert ret.prev is not None
        ret.prev.next = ret
        if ret.next is not None:
            ret.next.prev = ret
    assert call.prev is not None
    call.prev.next = call
    if call.next is not None:
        call.next.prev = call


class _Search(Generic[S]):
    def __init__(self, model: Model[S], ops: list[Operation]) -> None:
        self.model = model
        self.ops = ops

    def run(self, key: Hashable) -> CheckResult:
        # Local ids so the bitset stays as small as the sub-history.
        ops = self.ops
        if not ops:
            return CheckResult(ok=True, key=key)
        entries: list[_Entry] = []
        for local, op in enumerate(ops):
            call = _Entry(op, True, op.call, local)
            entries.append(call)
            if op.ret is not None:
                ret = _Entry(op, False, op.ret, local)
                call.match = ret
                entries.append(ret)
        entries.sort(key=lambda e: e.time)
        head = _Entry(ops[0], True, -1, -1)
        prev = head
        for e in entries:
            prev.next = e
            e.prev = prev
            prev = e
        remaining = sum(1 for op in ops if op.ret is not None)
        cache: set[tuple[int, Any]] = set()
        stack: list[tuple[_Entry, Any]] = []
        state: Any = self.model.init()
        linearized = 0
        explored = 0
        deepest = -1
        stuck: Operation | None = None
        entry = head.next
        step = self.model.step
        while remaining > 0:
            assert entry is not None, "return entry must remain while operations are pending"
            explored += 1
            if entry.is_call:
                ok, new_state = step(state, entry.op)
                if ok:
                    bit = 1 << entry.local
                    candidate = (linearized | bit, new_state)
                    if candidate not in cache:
                        cache.add(candidate)
                        stack.append((entry, state))
                        state = new_state
                        linearized |= bit
                        _lift(entry)
                        if entry.match is not None:
                            remaining -= 1
                        entry = head.next
                        continue
                entry = entry.next
            else:
                if len(stack) > deepest:
                    deepest = len(stack)
                    stuck = entry.op
                if not stack:
                    return CheckResult(
                        ok=False, key=key, stuck=stuck, operations=len(ops), explored=explored
                    )
                call, state = stack.pop()
                linearized &= ~(1 << call.local)
                _unlift(call)
                if call.match is not None:
                    remaining += 1
                entry = call.next
        return CheckResult(ok=True, key=key, operations=len(ops), explored=explored)


def check_operations(
    model: Model[Any],
    ops: Iterable[Operation],
    partition: Callable[[Operation], Hashable] | None = lambda op: op.key,
) -> CheckResult:
    """Check paired operations, split into independent sub-histories by ``partition``."""
    groups: dict[Hashable, list[Operation]] = {}
    order: list[Hashable] = []
    for op in ops:
        k = partition(op) if partition is not None else None
        if k not in groups:
            groups[k] = []
            order.append(k)
        groups[k].append(op)
    total = 0
    explored = 0
    for k in order:
        res = _Search(model, groups[k]).run(k)
        total += res.operations
        explored += res.explored
        if not res.ok:
            return CheckResult(
                ok=False, key=k, stuck=res.stuck, operations=total, explored=explored
            )
    return CheckResult(ok=True, operations=total, explored=explored)


def check_history(
    history: Sequence[HistoryEvent],
    model: Model[Any] | None = None,
    partition: Callable[[Operation], Hashable] | None = lambda op: op.key,
) -> CheckResult:
    """Is ``history`` linearizable with respect to ``model`` (default: a register
    per key, checked key by key)?"""
    return check_operations(model or RegisterModel(), pair_operations(history), partition)
