"""Crash at every write point, then power loss, then recovery.

``CrashingOps`` is a ``FileOps`` that performs real file operations in a temp
directory but "crashes" (raises ``Crash``, and refuses all further I/O) at its
Nth mutating call (create, write, fsync, fsync of the directory, truncate,
rename, unlink). ``power_cut`` then makes the directory look like what a power
failure could leave:

* file content: anything written since the file's last fsync may be lost, kept,
  kept up to an arbitrary byte, or replaced by zeros or garbage after that byte;
  a truncation not yet fsynced may be undone;
* directory entries (create, rename, unlink) since the last fsync of the
  directory: a random suffix of them is undone, newest first (journaling file
  systems commit metadata operations in order).

After each crash the directory is reopened with the real ``FileOps``; the
recovered state must equal the in-memory ``Model`` after everything that was
acknowledged plus some prefix of the records that were in flight, the storage
must keep working, and recovery itself is crashed at each of its own write
points too.
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

import pytest

from paddock.consensus.storage import DiskStorage, FileOps
from paddock.consensus.types import Entry, HardState, Snapshot

from .test_storage import Model, op_records, random_ops, recovered


class Crash(Exception):
    """The simulated process died at this call."""


class CrashingOps(FileOps):
    def __init__(self, root: Path, crash_at: int | None = None) -> None:
        self.root = str(root)
        self.crash_at = crash_at
        self.count = 0
        self.crashed = False
        self.fd_paths: dict[int, str] = {}
        #: Content each file is guaranteed to have (as of its last fsync).
        self.durable: dict[str, bytes] = {}
        #: Directory operations not yet made durable by fsync_dir.
        self.pending_dir: list[tuple] = []
        self.kinds: list[str] = []
        if os.path.isdir(self.root):
            for name in os.listdir(self.root):
                p = os.path.join(self.root, name)
                with open(p, "rb") as f:
                    self.durable[p] = f.read()

    def _step(self, kind: str) -> None:
        if self.crashed:
            raise Crash("already crashed")
        self.count += 1
        self.kinds.append(kind)
        if self.crash_at is not None and self.count >= self.crash_at:
            self.crashed = True
            raise Crash(f"crash at call {self.count} ({kind})")

    def _alive(self) -> None:
        if self.crashed:
            raise Crash("already crashed")

    @staticmethod
    def _content(path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    # reads: only refused after the crash
    def listdir(self, path: str) -> list[str]:
        self._alive()
        return super().listdir(path)

    def read_file(self, path: str) -> bytes:
        self._alive()
        return super().read_file(path)

    # mutations: each is a crash point; the effect happens, then the crash
    # (a crash before the effect is the same as one after it whose effect a
    # power cut then undoes)
    def open_append(self, path: str, *, create: bool) -> int:
        if create:
            fd = super().open_append(path, create=True)
            self.fd_paths[fd] = path
            self.durable[path] = b""
            self.pending_dir.append(("create", path))
            self._step("create")
            return fd
        self._alive()
        fd = super().open_append(path, create=False)
        self.fd_paths[fd] = path
        return fd

    def open_new(self, path: str) -> int:
        fd = super().open_new(path)
        self.fd_paths[fd] = path
        self.durable[path] = b""
        self.pending_dir.append(("create", path))
        self._step("create")
        return fd

    def write(self, fd: int, data: bytes) -> None:
        self._alive()
        super().write(fd, data)
        self._step("write")

    def fsync(self, fd: int) -> None:
        self._step("fsync")  # crash before it completes: nothing more is durable
        path = self.fd_paths[fd]
        self.durable[path] = self._content(path)

    def fsync_dir(self, path: str) -> None:
        self._step("fsync_dir")
        self.pending_dir.clear()

    def truncate(self, fd: int, length: int) -> None:
        self._alive()
        super().truncate(fd, length)
        self._step("truncate")

    def rename(self, src: str, dst: str) -> None:
        self._alive()
        super().rename(src, dst)
        if src in self.durable:
            self.durable[dst] = self.durable.pop(src)
        self.pending_dir.append(("rename", src, dst))
        self._step("rename")

    def unlink(self, path: str) -> None:
        self._alive()
        super().unlink(path)
        self.pending_dir.append(("unlink", path, self.durable.pop(path, b"")))
        self._step("unlink")

    def close(self, fd: int) -> None:
        self.fd_paths.pop(fd, None)
        super().close(fd)

    # -- the power cut ---------------------------------------------------------------

    def power_cut(self, rng: random.Random) -> list[str]:
        """Rewrite the directory into a state a power failure could leave."""
        notes = []
        for path, durable in sorted(self.durable.items()):
            if not os.path.exists(path):
                continue
            current = self._content(path)
            if current == durable:
                continue
            if current.startswith(durable):
                cut = rng.randint(len(durable), len(current))
                mode = rng.choice(("durable", "all", "cut", "cut", "zeros", "garbage"))
                if mode == "durable":
                    new = durable
                elif mode == "all":
                    new = current
                elif mode == "cut":
                    new = current[:cut]
                elif mode == "zeros":
                    new = current[:cut] + bytes(len(current) - cut)
                else:
                    new = current[:cut] + rng.randbytes(rng.randint(1, 64))
            else:  # truncated (or rewritten) since the last fsync
                mode = rng.choice(("durable", "all"))
                new = durable if mode == "durable" else current
            with open(path, "wb") as f:
                f.write(new)
            notes.append(f"{os.path.basename(path)}: {mode} {len(durable)}/{len(current)}")
        keep = rng.randint(0, len(self.pending_dir))
        for op in reversed(self.pending_dir[keep:]):
            notes.append(f"undo {op[0]} {os.path.basename(op[1])}")
            if op[0] == "create":
                if os.path.exists(op[1]):
                    os.unlink(op[1])
            elif op[0] == "rename":
                if os.path.exists(op[2]):
                    os.rename(op[2], op[1])
            else:
                with open(op[1], "wb") as f:
                    f.write(op[2])
        self.pending_dir.clear()
        return notes


View = tuple[HardState, Snapshot | None, list[Entry]]


def run_until_crash(
    path: Path, ops: list[tuple], fileops: CrashingOps, kw: dict
) -> tuple[Model, list[tuple], bool]:
    """Run ``ops``; return (model of what was acknowledged, records in flight,
    crashed?)."""
    acked = Model()
    pending: list[tuple] = []
    st = None
    try:
        st = DiskStorage.open(path, ops=fileops, **kw)
        for op in ops:
            recs = op_records(op)
            try:
                if op[0] == "save":
                    _, hs, entries, snap, sync = op
                    st.save(hs, entries, snap, sync=sync)
                elif op[0] == "app_snapshot":
                    st.save_snapshot(op[1])
                elif op[0] == "sync":
                    st.sync()
                elif op[0] == "reopen":
                    st.close()
                    st = None
                    st = DiskStorage.open(path, ops=fileops, **kw)
            except Crash:
                pending.extend(recs)
                raise
            pending.extend(recs)
            durable_now = op[0] != "save" or op[4]
            if durable_now:
                for rec in pending:
                    acked.apply_record(rec)
                pending = []
        st.close()
        st = None
        for rec in pending:  # close() syncs
            acked.apply_record(rec)
        return acked, [], False
    except Crash:
        return acked, pending, True
    finally:
        if st is not None:
            with contextlib.suppress(Crash):
                st.close()


def candidates(acked: Model, pending: list[tuple]) -> list[View]:
    out = [acked.view()]
    m = acked.copy()
    for rec in pending:
        m.apply_record(rec)
        out.append(m.view())
    return out


def describe(view: View) -> str:
    hs, snap, entries = view
    s = f"snap={snap.index}/{snap.term}" if snap else "snap=None"
    return f"{hs} {s} entries={[(e.index, e.term) for e in entries]}"


def recover_with_crashes(path: Path, kw: dict, rng: random.Random) -> int:
    """Open, crashing recovery at each of its own write points in turn, with a
    power cut after each crash. Returns how many recovery crashes happened."""
    crashes = 0
    for m in range(1, 50):
        fileops = CrashingOps(path, crash_at=m)
        try:
            DiskStorage.open(path, ops=fileops, **kw).close()
            return crashes
        except Crash:
            crashes += 1
            fileops.power_cut(rng)
    raise AssertionError("recovery never finished")


def check_crash_points(
    seed: int, n_ops: int, kw: dict, tmp_path: Path, cuts: int = 2
) -> tuple[int, set[str], int]:
    """Crash at every call of the workload; return (runs, kinds of calls
    crashed at, crashes injected into recovery)."""
    ops = random_ops(random.Random(seed), n_ops)
    dry = tmp_path / "dry"
    counter = CrashingOps(dry)
    acked, _, crashed = run_until_crash(dry, ops, counter, kw)
    assert not crashed
    total = counter.count
    runs = recovery_crashes = 0
    for n in range(1, total + 1):
        for variant in range(cuts):
            rng = random.Random(f"{seed}/{n}/{variant}")
            path = tmp_path / f"c{n}-{variant}"
            fileops = CrashingOps(path, crash_at=n)
            acked, pending, crashed = run_until_crash(path, ops, fileops, kw)
            assert crashed
            notes = fileops.power_cut(rng)
            where = f"seed={seed} crash at call {n} ({fileops.kinds[-1]}), cut: {notes}"
            recovery_crashes += recover_with_crashes(path, kw, rng)
            with DiskStorage.open(path, **kw) as st:
                got = st.initial_state()
                allowed = candidates(acked, pending)
                assert got in allowed, (
                    f"{where}\n got: {describe(got)}\n allowed:\n  "
                    + "\n  ".join(describe(a) for a in allowed)
                )
                # storage keeps working after recovery
                _hs, snap, entries = got
                nxt = Entry(99, (entries[-1].index if entries else (snap.index if snap else 0)) + 1)
                st.save(HardState(99, 1, 0), [nxt], None)
            assert recovered(path, **kw) == (
                HardState(99, 1, 0),
                snap,
                [*entries, nxt],
            ), where
            runs += 1
    return runs, set(counter.kinds), recovery_crashes


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_crash_at_every_write_point(seed: int, tmp_path: Path) -> None:
    kw = {"segment_bytes": 600, "keep_snapshots": 1 + seed % 2}
    runs, kinds, recovery_crashes = check_crash_points(seed, 30, kw, tmp_path)
    assert runs > 50
    assert {"create", "write", "fsync", "fsync_dir", "rename", "unlink"} <= kinds
    assert recovery_crashes > 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10, 40))
def test_crash_at_every_write_point_long(seed: int, tmp_path: Path) -> None:
    kw = {"segment_bytes": random.Random(seed).choice([300, 1000, 5000]), "keep_snapshots": 2}
    check_crash_points(seed, 60, kw, tmp_path, cuts=3)


def test_crash_during_compaction(tmp_path: Path) -> None:
    """Many segments, two snapshots; crash at every call of the second
    save_snapshot (file write, rename, dir fsync, HardState carry-over,
    each segment deletion)."""
    kw = {"segment_bytes": 200, "keep_snapshots": 1}
    ops: list[tuple] = [("save", HardState(3, 2, 1), [Entry(3, 1, b"x" * 40)], None, True)]
    ops += [("save", None, [Entry(3, i, b"y" * 40)], None, True) for i in range(2, 40)]
    ops += [("app_snapshot", Snapshot(5, 3, (1,), b"five"))]
    ops += [("save", None, [Entry(3, i, b"z" * 40)], None, True) for i in range(40, 45)]
    ops += [("app_snapshot", Snapshot(42, 3, (1,), b"forty-two"))]
    dry = tmp_path / "dry"
    counter = CrashingOps(dry)
    run_until_crash(dry, ops[:-1], counter, kw)
    before = counter.count
    counter = CrashingOps(tmp_path / "dry2")
    run_until_crash(tmp_path / "dry2", ops, counter, kw)
    kinds = counter.kinds[before:]
    assert kinds.count("unlink") > 10  # compaction deletes many segments...
    assert kinds.count("write") >= 2  # ...after carrying the HardState over
    for n in range(before + 1, counter.count + 1):
        for variant in range(3):
            path = tmp_path / f"c{n}-{variant}"
            fileops = CrashingOps(path, crash_at=n)
            acked, pending, crashed = run_until_crash(path, ops, fileops, kw)
            assert crashed
            fileops.power_cut(random.Random(n * 10 + variant))
            got = recovered(path, **kw)
            assert got in candidates(acked, pending), (n, counter.kinds[n - 1])
            assert got[0] == HardState(3, 2, 1)
