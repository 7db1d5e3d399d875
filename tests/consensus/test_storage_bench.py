"""Throughput of DiskStorage on this machine's disk (slow; prints figures).

Run: .venv/bin/python -m pytest tests/consensus/test_storage_bench.py -m slow -s -q
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from paddock.consensus import wal
from paddock.consensus.storage import DiskStorage
from paddock.consensus.types import Entry, HardState

SECONDS = 3.0


def raw_fsync_rate(path: Path, sync=os.fsync) -> float:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    buf = b"x" * 1024
    n, t0 = 0, time.perf_counter()
    try:
        while time.perf_counter() - t0 < SECONDS:
            os.write(fd, buf)
            sync(fd)
            n += 1
    finally:
        os.close(fd)
    return n / (time.perf_counter() - t0)


def save_rate(path: Path, batch: int) -> float:
    data = b"x" * 1024
    with DiskStorage.open(path) as st:
        idx, n, t0 = 1, 0, time.perf_counter()
        while time.perf_counter() - t0 < SECONDS:
            entries = [Entry(1, i, data) for i in range(idx, idx + batch)]
            st.save(HardState(1, 1, idx), entries, None)
            idx += batch
            n += batch
        return n / (time.perf_counter() - t0)


@pytest.mark.slow
def test_print_storage_rates(tmp_path: Path) -> None:
    fsync_rate = raw_fsync_rate(tmp_path / "raw-fsync")
    fdatasync_rate = raw_fsync_rate(tmp_path / "raw-fdatasync", os.fdatasync)
    per_entry = save_rate(tmp_path / "b1", 1)
    batched = save_rate(tmp_path / "b100", 100)
    entries = [Entry(1, i, b"x" * 1024) for i in range(1, 100_001)]
    t0 = time.perf_counter()
    buf = wal.encode_entries(entries)
    t1 = time.perf_counter()
    wal.decode_stream(buf)
    t2 = time.perf_counter()
    print()
    print(f"raw write(1 KiB)+fsync loop:      {fsync_rate:9.0f} /s")
    print(f"raw write(1 KiB)+fdatasync loop:  {fdatasync_rate:9.0f} /s")
    print(f"save(1 x 1 KiB entry, sync):      {per_entry:9.0f} entries/s")
    print(f"save(100 x 1 KiB entries, sync):  {batched:9.0f} entries/s")
    print(f"encode_entries 1 KiB:             {len(entries) / (t1 - t0):9.0f} entries/s")
    print(f"decode_stream 1 KiB:              {len(entries) / (t2 - t1):9.0f} entries/s")
    # Group commit must pay off whatever the disk (absolute rates vary with load).
    assert batched > 10 * per_entry
