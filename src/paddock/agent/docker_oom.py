"""Seeing a container's OOM kill when the engine does not report it.

Docker sets ``State.OOMKilled``; podman with runc on a cgroup v1 host does not (its
container exits 137 and ``OOMKilled`` stays false).  So the agent also listens itself,
the way Docker does on cgroup v1: an eventfd registered on the container's memory
cgroup (``cgroup.event_control`` + ``memory.oom_control``) is signalled when the
cgroup hits OOM, and also when the cgroup is removed.  A wake-up while the cgroup
directory is still there is an OOM; the runner counts it only together with an exit by
SIGKILL (137) that no kill asked for.  Where this cannot be set up (cgroup v2 only, no
permission, the container already gone) nothing is watched and the engine's word is all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["OomWatch", "memory_cgroup_of"]

CGROUP_V1_MEMORY = Path("/sys/fs/cgroup/memory")


def memory_cgroup_of(pid: int, root: Path = CGROUP_V1_MEMORY) -> Path | None:
    """The cgroup v1 memory cgroup directory of ``pid`` (None without one)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and "memory" in parts[1].split(","):
            path = root / parts[2].lstrip("/")
            return path if path.is_dir() else None
    return None


class OomWatch:
    """Watches one memory cgroup for OOM in a daemon thread; :attr:`oom` once seen."""

    def __init__(self, cgroup: Path) -> None:
        self.cgroup = cgroup
        self.oom = False
        self._efd = -1
        self._ctl = -1

    @classmethod
    def start_for(cls, pid: int) -> OomWatch | None:
        if pid <= 0 or not hasattr(os, "eventfd"):
            return None
        cgroup = memory_cgroup_of(pid)
        if cgroup is None:
            return None
        watch = cls(cgroup)
        try:
            watch._efd = os.eventfd(0, os.EFD_CLOEXEC)
            watch._ctl = os.open(cgroup / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
            with open(cgroup / "cgroup.event_control", "w") as f:
                f.write(f"{watch._efd} {watch._ctl}")
        except OSError as exc:
            log.debug("cannot watch %s for OOM: %s", cgroup, exc)
            watch.close()
            return None
        threading.Thread(target=watch._wait, name=f"oom-{pid}", daemon=True).start()
        return watch

    def _wait(self) -> None:
        try:
            os.read(self._efd, 8)  # OOM, or the cgroup's removal
            self.oom = self.cgroup.is_dir()
        except OSError:
            pass
        finally:
            self.close()

    def close(self) -> None:
        for fd in (self._efd, self._ctl):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._efd = self._ctl = -1
