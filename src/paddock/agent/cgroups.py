"""Resource limits through cgroups (``memory`` and ``cpu`` controllers), v1 or v2.

Mesos's ``cgroups/cpu,cgroups/mem`` isolators put each container in
``/sys/fs/cgroup/<controller>/<cgroups_root>/<container>`` with ``cpu.shares`` =
1024 x cpus and ``memory.limit_in_bytes`` = mem.  We do the same, per task, under the
agent's own cgroup (v2: one directory, ``cpu.weight`` and ``memory.max``).  The task's
supervisor joins the task's cgroups just while it spawns the command, so the command is
inside before it runs anything (nothing it forks escapes) while the supervisor itself
stays outside (see :mod:`paddock.agent.supervisor`).  A task that exceeds its memory is
killed by the kernel's OOM killer; the supervisor reads the memory cgroup's counters
(:func:`paddock.agent.supervisor.memory_report`) so the agent can report
``REASON_CONTAINER_LIMITATION_MEMORY``.  When the task ends every process still in the
cgroup is killed and the cgroup removed.

Anything that fails here (no cgroup hierarchy, not root, read-only sysfs, v2 without
delegation) is reported once at start and in ``/state`` and tasks run without limits:
isolation is an extra, not a reason to refuse work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from paddock.agent.supervisor import memory_report

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
    #: ``cgroup.procs`` of the agent's own groups (where a supervisor goes back to after
    #: starting the task inside ``paths``).
    home_procs: list[str] = field(default_factory=list)

    def procs_files(self) -> list[str]:
        # (cgroup v2: one directory serves every controller)
        return sorted({str(p / "cgroup.procs") for p in self.paths.values()})

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer acted inside the memory cgroup."""
        mem = self.paths.get("memory")
        return mem is not None and bool(memory_report(str(mem))["oom_killed"])

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


class CgroupManager:
    """Detects usable controllers once; creates and removes per-task cgroups."""

    def __init__(self, root_name: str = "paddock", mount: Path = Path("/sys/fs/cgroup")) -> None:
        self.root_name = root_name.strip("/") or "paddock"
        self.mount = mount
        self.controllers: dict[str, Path] = {}
        self.homes: dict[str, Path] = {}
        self.reason = ""
        self.version = 1

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
            home = self._own_cgroup(name)
            root = home / self.root_name
            try:
                root.mkdir(exist_ok=True)
                probe = root / f"probe-{os.getpid()}"
                probe.mkdir(exist_ok=True)
                probe.rmdir()
            except OSError as exc:
                missing.append(f"{name}: cannot create cgroups under {base} ({exc.strerror})")
                continue
            self.controllers[name] = root
            self.homes[name] = home
        if not self.controllers and (self.mount / "cgroup.controllers").exists():
            missing = [self._detect_v2()]
        self.reason = "; ".join(m for m in missing if m)

    def _detect_v2(self) -> str:
        """cgroup v2 (one unified hierarchy); an empty string when usable, else why not.

        Task cgroups go under ``<agent's cgroup>/<root>``, which needs the controllers
        enabled in the agent's cgroup's ``cgroup.subtree_control``: the kernel refuses
        that while the agent's cgroup itself holds processes (unless it is the root), so
        the agent should run in a delegated cgroup of its own.  Not exercised by the
        tests here (the CI machine has cgroup v1)."""
        home = self.mount
        try:
            for line in Path("/proc/self/cgroup").read_text().splitlines():
                if line.startswith("0::"):
                    home = self.mount / line[3:].strip().lstrip("/")
        except OSError:
            pass
        root = home / self.root_name
        try:
            available = (home / "cgroup.controllers").read_text().split()
            wanted = [c for c in CONTROLLERS if c in available]
            if not wanted:
                return f"cgroup v2: no memory or cpu controller in {home}"
            enable = " ".join(f"+{c}" for c in wanted)
            (home / "cgroup.subtree_control").write_text(enable)
            root.mkdir(exist_ok=True)
            (root / "cgroup.subtree_control").write_text(enable)
            probe = root / f"probe-{os.getpid()}"
            probe.mkdir(exist_ok=True)
            probe.rmdir()
        except OSError as exc:
            return (
                f"cgroup v2: cannot create cgroups with {CONTROLLERS} under {home} ({exc.strerror})"
            )
        for c in wanted:
            self.controllers[c] = root
            self.homes[c] = home
        self.version = 2
        return ""

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
            "version": self.version if self.available else None,
            # Mesos's --isolation names for what is enforced
            "isolation": ",".join(
                f"cgroups/{'mem' if c == 'memory' else c}" for c in sorted(self.controllers)
            )
            or "posix/cpu,posix/mem",
        }

    def create(self, name: str, cpus: float, mem_mb: float) -> TaskCgroup | None:
        """A cgroup per controller named ``name`` with the limits applied; None when none."""
        if not self.controllers:
            return None
        group = TaskCgroup(home_procs=self._home_procs())
        for controller, root in self.controllers.items():
            path = root / name
            try:
                path.mkdir(exist_ok=True)
                if controller == "cpu" and cpus > 0:
                    shares = max(MIN_CPU_SHARES, int(cpus * CPU_SHARES_PER_CPU))
                    if self.version == 2:  # systemd's shares -> weight mapping
                        weight = 1 + (shares - 2) * 9999 // 262142
                        (path / "cpu.weight").write_text(str(weight))
                    else:
                        (path / "cpu.shares").write_text(str(shares))
                elif controller == "memory" and mem_mb > 0:
                    limit = max(MIN_MEMORY_BYTES, int(mem_mb * 1024 * 1024))
                    name_ = "memory.max" if self.version == 2 else "memory.limit_in_bytes"
                    (path / name_).write_text(str(limit))
            except OSError as exc:
                log.warning("cgroup %s for %s: %s", controller, name, exc)
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            group.paths[controller] = path
        return group if group.paths else None

    def leftovers(
        self, keep: frozenset[str] = frozenset(), runs: frozenset[str] | None = None
    ) -> list[TaskCgroup]:
        """Task cgroups left by an earlier run of the agent (for cleanup), except ``keep``;
        with ``runs``, only those whose name ends in one of these run ids."""
        names: set[str] = set()
        for root in self.controllers.values():
            with contextlib.suppress(OSError):
                names.update(p.name for p in root.iterdir() if p.is_dir())
        if runs is not None:
            names = {n for n in names if n.rsplit(".", 1)[-1] in runs}
        return [self.existing(n) for n in sorted(names - keep)]

    def existing(self, name: str) -> TaskCgroup:
        """The cgroups named ``name`` that exist now (those of an adopted task)."""
        paths = {c: r / name for c, r in self.controllers.items() if (r / name).is_dir()}
        return TaskCgroup(paths, self._home_procs())

    def _home_procs(self) -> list[str]:
        return sorted({str(h / "cgroup.procs") for h in self.homes.values()})
