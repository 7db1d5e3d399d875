"""A process task as the agent sees it: launched through the zygote, run by a supervisor.

:class:`SupervisedTask` has the interface the agent uses for any task process
(``start``, ``wait``, ``kill``, ``pid``, ``kill_requested``, ``oom_killed``) but its
command is a child of a per-task supervisor (:mod:`paddock.agent.supervisor`), not of
the agent.  ``wait`` follows the supervisor through a pidfd and then reads the outcome
file it wrote, so the exit status is known even when the agent was restarted in between
(:meth:`SupervisedTask.reattach`).  ``kill`` signals the task's process group directly:
SIGTERM, the grace period, then SIGKILL of the group and of its cgroups.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paddock.agent.cgroups import TaskCgroup
from paddock.agent.supervisor import SupervisorOutcome, proc_start_ticks, read_outcome
from paddock.agent.task_user import TaskUser, chown_sandbox
from paddock.agent.tasks import CommandSpec, LaunchError, signal_group, terminate_group
from paddock.agent.zygote import Zygote, ZygoteError

__all__ = ["SupervisedTask"]

POLL_INTERVAL = 0.25  # only where pidfds are missing (Linux < 5.3)


@dataclass
class SupervisedTask:
    """One process task run by its own supervisor. ``start`` (or ``reattach``), then
    ``wait``; ``kill`` from anywhere."""

    spec: CommandSpec | None
    sandbox: Path
    env: dict[str, str]
    outcome_path: Path
    cgroup: TaskCgroup | None = None
    zygote: Zygote | None = None
    supervisor_pid: int | None = None
    supervisor_ticks: int | None = None
    task_pid: int | None = None
    task_ticks: int | None = None
    kill_requested: bool = False
    returncode: int | None = None
    oom_killed: bool = False
    outcome: SupervisorOutcome | None = None
    #: Run the command as this user (``command.user``); None: as the agent's user.
    user: TaskUser | None = None
    _exited: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def reattach(
        cls, record: dict[str, Any], sandbox: Path, cgroup: TaskCgroup | None
    ) -> SupervisedTask:
        """The task of a checkpoint ``record`` written by an earlier run of the agent."""
        return cls(
            spec=None,
            sandbox=sandbox,
            env={},
            outcome_path=Path(str(record["outcome"])),
            cgroup=cgroup,
            supervisor_pid=record.get("supervisor_pid"),
            supervisor_ticks=record.get("supervisor_ticks"),
            task_pid=record.get("pid"),
            task_ticks=record.get("start_ticks"),
            kill_requested=Path(f"{record['outcome']}.kill").exists(),
        )

    @property
    def pid(self) -> int | None:
        return self.task_pid

    @property
    def process(self) -> int | None:
        """Whether there is a process to signal (the agent's kill path asks)."""
        return self.task_pid

    def checkpoint_fields(self) -> dict[str, Any]:
        return {
            "pid": self.task_pid,
            "start_ticks": self.task_ticks,
            "supervisor_pid": self.supervisor_pid,
            "supervisor_ticks": self.supervisor_ticks,
            "outcome": str(self.outcome_path),
        }

    async def start(self) -> None:
        if self.spec is None or self.zygote is None:
            raise LaunchError("nothing to launch (a reattached task)")
        self.sandbox.mkdir(parents=True, exist_ok=True)
        spec = self.spec
        memory = self.cgroup.paths.get("memory") if self.cgroup is not None else None
        request = {
            "argv": spec.argv,
            "executable": spec.executable,
            "cwd": str(self.sandbox),
            "env": self.env,
            "stdout": str(self.sandbox / "stdout"),
            "stderr": str(self.sandbox / "stderr"),
            "cgroup_procs": self.cgroup.procs_files() if self.cgroup is not None else [],
            "cgroup_home": self.cgroup.home_procs if self.cgroup is not None else [],
            "memory_cgroup": str(memory) if memory is not None else None,
            "outcome": str(self.outcome_path),
        }
        if self.user is not None:
            try:
                await asyncio.to_thread(chown_sandbox, self.sandbox, self.user)
            except OSError as exc:
                raise LaunchError(
                    f"Failed to give the sandbox to user {self.user.name!r}: {exc.strerror}"
                ) from None
            request["user"] = self.user.request()
        try:
            answer = await self.zygote.spawn(request)
        except ZygoteError as exc:
            raise LaunchError(f"Failed to launch the task: {exc}") from None
        if "error" in answer:
            raise LaunchError(str(answer["error"]))
        self.supervisor_pid = int(answer["supervisor_pid"])
        self.supervisor_ticks = answer.get("supervisor_ticks")
        self.task_pid = int(answer["task_pid"])
        self.task_ticks = answer.get("task_ticks")

    def supervisor_alive(self) -> bool:
        """The recorded supervisor still exists (same pid and start time; a zombie
        counts: its outcome file is written)."""
        pid = self.supervisor_pid
        return (
            isinstance(pid, int)
            and self.supervisor_ticks is not None
            and proc_start_ticks(pid) == self.supervisor_ticks
        )

    def task_alive(self) -> bool:
        pid = self.task_pid
        return (
            isinstance(pid, int)
            and self.task_ticks is not None
            and proc_start_ticks(pid) == self.task_ticks
        )

    async def _supervisor_gone(self) -> None:
        pid = self.supervisor_pid
        if pid is None:
            return
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        except (AttributeError, OSError):  # no pidfds here: poll
            while self.supervisor_alive():
                await asyncio.sleep(POLL_INTERVAL)
            return
        try:
            if self.supervisor_ticks is not None and not self.supervisor_alive():
                return  # the pid was reused before we looked
            loop = asyncio.get_running_loop()
            gone = asyncio.Event()
            loop.add_reader(fd, gone.set)
            try:
                await gone.wait()
            finally:
                loop.remove_reader(fd)
        finally:
            os.close(fd)

    async def wait(self) -> int | None:
        """Wait for the supervisor to end; the task's return code (negative: signal),
        None when its outcome is unknown (``outcome.problem`` says why)."""
        await self._supervisor_gone()
        outcome = self.load_outcome()
        if outcome.problem is not None and self.task_alive():
            # The supervisor was killed: its task must not run on unowned.
            self._kill_group(signal.SIGKILL)
        if self.cgroup is not None:
            if not self.oom_killed and outcome.problem is not None:
                self.oom_killed = self.cgroup.oom_killed()
            await asyncio.to_thread(self.cgroup.destroy)
        self._exited.set()
        return self.returncode

    def load_outcome(self) -> SupervisorOutcome:
        """Read what the supervisor recorded (after it ended)."""
        outcome = read_outcome(str(self.outcome_path))
        self.outcome = outcome
        self.returncode = outcome.returncode
        self.oom_killed = outcome.oom_killed
        return outcome

    def kill_now(self) -> None:
        """SIGKILL the task's process group if the recorded task is still there."""
        if self.task_alive():
            self._kill_group(signal.SIGKILL)

    def _kill_group(self, sig: int) -> None:
        if self.task_pid is not None:
            signal_group(self.task_pid, sig)

    async def kill(self, grace: float) -> None:
        """SIGTERM the process group, wait ``grace`` seconds, SIGKILL the group.

        A marker next to the outcome file remembers the kill across an agent restart
        (so the end is reported ``TASK_KILLED``, and a restarted agent finishes it)."""
        if not self.kill_requested:
            with contextlib.suppress(OSError):
                Path(f"{self.outcome_path}.kill").touch()
        self.kill_requested = True
        if self.task_pid is None or self._exited.is_set():
            return
        await terminate_group(self.task_pid, grace, self._exited, self.cgroup)
