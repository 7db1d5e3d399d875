"""Process identity helpers shared by the task runner and recovery."""

from __future__ import annotations

from pathlib import Path

__all__ = ["proc_start_ticks"]


def proc_start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks): tells a recorded pid
    from a reused one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
