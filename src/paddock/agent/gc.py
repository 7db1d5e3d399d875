"""Garbage collection of finished tasks' sandboxes (Mesos's ``--gc_delay``, 1 week).

A sandbox is removed ``delay`` seconds after its task ended (for sandboxes found at
start-up: after their last modification).  Sandboxes of tasks that are still live are
never collected.  Removal runs in a worker thread; empty parent directories up to
``slaves/`` go with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["SandboxGC"]


class SandboxGC:
    def __init__(self, work_dir: Path, delay: float, is_live: Callable[[Path], bool]) -> None:
        self.root = work_dir / "slaves"
        self.delay = delay
        self.is_live = is_live
        self._handles: dict[Path, asyncio.TimerHandle] = {}
        self.removed = 0

    def schedule(self, sandbox: Path, ended_at: float | None = None) -> None:
        """Collect ``sandbox`` ``delay`` seconds after ``ended_at`` (wall clock; now if None)."""
        loop = asyncio.get_running_loop()
        ended = time.time() if ended_at is None else ended_at
        wait = max(0.0, ended + self.delay - time.time())
        old = self._handles.pop(sandbox, None)
        if old is not None:
            old.cancel()
        self._handles[sandbox] = loop.call_later(wait, self._due, sandbox)

    def _due(self, sandbox: Path) -> None:
        self._handles.pop(sandbox, None)
        if self.is_live(sandbox):
            return
        asyncio.get_running_loop().run_in_executor(None, self._remove, sandbox)

    def _remove(self, sandbox: Path) -> None:
        shutil.rmtree(sandbox, ignore_errors=True)
        self.removed += 1
        parent = sandbox.parent
        with contextlib.suppress(OSError):
            while parent != self.root and self.root in parent.parents:
                parent.rmdir()  # fails (and stops) at the first non-empty directory
                parent = parent.parent

    def scan(self) -> int:
        """Schedule every run directory on disk (after a restart). Returns how many."""
        count = 0
        if not self.root.is_dir():
            return 0
        for run in self.root.glob("*/frameworks/*/executors/*/runs/*"):
            if not run.is_dir() or self.is_live(run):
                continue
            try:
                mtime = max([run.stat().st_mtime, *(e.stat().st_mtime for e in os.scandir(run))])
            except (OSError, ValueError):
                continue
            self.schedule(run, mtime)
            count += 1
        return count

    def stop(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
