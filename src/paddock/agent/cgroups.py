"""Best-effort resource limits through cgroups v1 (``memory`` and ``cpu`` controllers).

Mesos's ``cgroups/cpu,cgroups/mem`` isolators put each container in
``/sys/fs/cgroup/<controller>/<cgroups_root>/<container>`` with ``cpu.shares`` =
1024 x cpus and ``memory.limit_in_bytes`` = mem.  We do the same, per task.  The child
moves itself into its cgroups before ``exec`` (so nothing it forks escapes; see
``tasks.cgroup_join_wrapper``), and when the
task ends every process still in the cgroup is killed and the cgroup removed.

Anything that fails here (no cgroup v1 hierarchy, not root, read-only sysfs) is reported
once at start and in ``/state`` and tasks run without limits: isolation is an extra, not a
reason to refuse work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["CgroupManager", "TaskCgroup"]

CONTROLLERS = ("memory", "cpu")
CPU_SHARES_PER_CPU = 1024
MIN_CPU_SHARES = 2
MIN_MEMORY_BYTES = 32 * 1024 * 1024  # Mesos's MIN_MEMORY


@dataclass
class TaskCgroup:
    """One task's cgroups, one directory per available controller."""

    paths: dict[str, Path] = field(default_factory=dict)

    def procs_files(self) -> list[str]:
        return [str(p / "cgroup.procs") for p in self.paths.values()]

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer acted inside the memory cgroup."""
        mem = self.paths.get("memory")
        if mem is None:
            return False
        try:
            for line in (mem / "memory.oom_control").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value) > 0
        except (OSError, ValueError):
            pass
        try:  # kernels before 4.13 have no oom_kill counter
            return int((mem / "memory.failcnt").read_text()) > 0 and _max_usage_hit(mem)
        except (OSError, ValueError):
            return False

    def usage(self) -> dict[str, float]:
        out: dict[str, float] = {}
        mem = self.paths.get("memory")
        if mem is not None:
            with contextlib.suppress(OSError, ValueError):
                out["mem_rss_bytes"] = float(int((mem / "memory.usage_in_bytes").read_text()))
        return out

    def pids(self) -> list[int]:
        out: set[int] = set()
        for path in self.paths.values():
            with contextlib.suppress(OSError, ValueError):
                out.update(int(x) for x in (path / "cgroup.procs").read_text().split())
        return sorted(out)

    def destroy(self, timeout: float = 2.0) -> None:
        """SIGKILL everything left inside, then remove the directories."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            removed = True
            for path in self.paths.values():
                try:
                    path.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    removed = False
            if removed or time.monotonic() > deadline:
                if not removed:
                    log.warning("could not remove cgroups %s", list(self.paths.values()))
                return
            time.sleep(0.02)


def _max_usage_hit(mem: Path) -> bool:
    try:
        limit = int((mem / "memory.limit_in_bytes").read_text())
        peak = int((mem / "memory.max_usage_in_bytes").read_text())
    except (OSError, ValueError):
        return False
    return peak >= limit


class CgroupManager:
    """Detects usable controllers once; creates and removes per-task cgroups."""

    def __init__(self, root_name: str = "paddock", mount: Path = Path("/sys/fs/cgroup")) -> None:
        self.root_name = root_name.strip("/") or "paddock"
        self.mount = mount
        self.controllers: dict[str, Path] = {}
        self.reason = ""

    def detect(self, enabled: bool = True) -> None:
        if not enabled:
            self.reason = "disabled by --no-cgroups"
            return
        missing: list[str] = []
        for name in CONTROLLERS:
            base = self.mount / name
            if not (base / "cgroup.procs").exists():
                missing.append(f"{name}: no cgroup v1 hierarchy at {base}")
                continue
            root = self._own_cgroup(name) / self.root_name
            try:
                root.mkdir(exist_ok=True)
                probe = root / f"probe-{os.getpid()}"
                probe.mkdir(exist_ok=True)
                probe.rmdir()
            except OSError as exc:
                missing.append(f"{name}: cannot create cgroups under {base} ({exc.strerror})")
                continue
            self.controllers[name] = root
        self.reason = "; ".join(missing)

    def _own_cgroup(self, controller: str) -> Path:
        """The agent's own cgroup in ``controller`` (so tasks nest under the agent's limits
        when it runs in a container); the hierarchy's root when it cannot be found."""
        base = self.mount / controller
        try:
            for line in Path("/proc/self/cgroup").read_text().splitlines():
                _, controllers, path = line.split(":", 2)
                if controller in controllers.split(","):
                    candidate = base / path.lstrip("/")
                    if (candidate / "cgroup.procs").exists():
                        return candidate
        except (OSError, ValueError):
            pass
        return base

    @property
    def available(self) -> bool:
        return bool(self.controllers)

    def describe(self) -> dict[str, object]:
        return {
            "available": self.available,
            "controllers": sorted(self.controllers),
            "root": self.root_name,
            "reason": self.reason,
        }

    def create(self, name: str, cpus: float, mem_mb: float) -> TaskCgroup | None:
        """A cgroup per controller named ``name`` with the limits applied; None when none."""
        if not self.controllers:
            return None
        group = TaskCgroup()
        for controller, root in self.controllers.items():
            path = root / name
            try:
                path.mkdir(exist_ok=True)
                if controller == "cpu" and cpus > 0:
                    shares = max(MIN_CPU_SHARES, int(cpus * CPU_SHARES_PER_CPU))
                    (path / "cpu.shares").write_text(str(shares))
                elif controller == "memory" and mem_mb > 0:
                    limit = max(MIN_MEMORY_BYTES, int(mem_mb * 1024 * 1024))
                    (path / "memory.limit_in_bytes").write_text(str(limit))
            except OSError as exc:
                log.warning("cgroup %s for %s: %s", controller, name, exc)
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            group.paths[controller] = path
        return group if group.paths else None

    def leftovers(self, keep: frozenset[str] = frozenset()) -> list[TaskCgroup]:
        """Task cgroups left by an earlier run of the agent (for cleanup), except ``keep``."""
        names: set[str] = set()
        for root in self.controllers.values():
            with contextlib.suppress(OSError):
                names.update(p.name for p in root.iterdir() if p.is_dir())
        return [self.existing(n) for n in sorted(names - keep)]

    def existing(self, name: str) -> TaskCgroup:
        """The cgroups named ``name`` that exist now (those of an adopted task)."""
        return TaskCgroup({c: r / name for c, r in self.controllers.items() if (r / name).is_dir()})
