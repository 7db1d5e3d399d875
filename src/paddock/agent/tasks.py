"""A task's command and environment, and running a command as a real process.

Process tasks are launched through their own supervisor (:mod:`paddock.agent.supervised`,
:mod:`paddock.agent.supervisor`) with the :class:`CommandSpec` and environment built
here; :class:`TaskProcess` spawns a command as a direct child of the agent (custom
executors use it) and :class:`AdoptedProcess` follows a process of an agent from before
supervisors.  :func:`describe_exit` turns an exit status into a TaskStatus.

A task's command runs through ``/bin/sh -c`` (``command.shell`` true, the default) or
directly as ``value`` with ``arguments`` as its argv (shell false), in its own session
and process group, with the sandbox as working directory and ``stdout``/``stderr`` files
there.  Killing sends SIGTERM to the process group, waits the grace period, then
SIGKILLs the group; when the command itself exits, whatever it left in its process
group (and cgroup) is killed too, so a finished task leaves nothing behind.

The environment follows Mesos and Marathon: ``MESOS_TASK_ID``, ``MESOS_SANDBOX``,
``MESOS_DIRECTORY``, ``MESOS_FRAMEWORK_ID``, ``MESOS_EXECUTOR_ID``, ``MESOS_AGENT_ID``,
``MESOS_AGENT_ENDPOINT``, ``HOST``, ``PORT0..n``, ``PORTS`` (comma-separated), ``PORT``
(= ``PORT0``) from the task's ``ports`` resources, then ``command.environment``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paddock.agent.cgroups import TaskCgroup

__all__ = [
    "AdoptedProcess",
    "CommandSpec",
    "ExitOutcome",
    "LaunchError",
    "TaskProcess",
    "command_spec",
    "describe_exit",
    "memory_limit_message",
    "signal_group",
    "task_environment",
    "task_ports",
    "terminate_group",
]


class LaunchError(RuntimeError):
    """The command could not be started (bad TaskInfo, missing executable, ...)."""


def task_ports(task_info: Mapping[str, Any]) -> list[int]:
    """The ports assigned to the task, in the order its ``ports`` resources list them."""
    out: list[int] = []
    for res in task_info.get("resources") or []:
        if not isinstance(res, dict) or res.get("name") != "ports":
            continue
        for r in (res.get("ranges") or {}).get("range") or []:
            try:
                begin, end = int(r["begin"]), int(r["end"])
            except (KeyError, TypeError, ValueError):
                continue
            out.extend(range(begin, end + 1))
    return out


def task_scalar(task_info: Mapping[str, Any], name: str) -> float:
    total = 0.0
    for res in task_info.get("resources") or []:
        if isinstance(res, dict) and res.get("name") == name:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                total += float(res["scalar"]["value"])
    return total


@dataclass(frozen=True)
class CommandSpec:
    """What to exec: ``argv`` with ``executable`` (None: ``argv[0]`` via PATH)."""

    argv: list[str]
    executable: str | None = None
    shell: bool = True


def command_spec(task_info: Mapping[str, Any]) -> CommandSpec:
    command = task_info.get("command")
    if not isinstance(command, dict):
        if "executor" in task_info:
            raise LaunchError("custom executors are not supported; give the task a command")
        raise LaunchError("the task has no command")
    shell = command.get("shell", True)
    value = command.get("value")
    if shell:
        if not isinstance(value, str) or not value.strip():
            raise LaunchError("command.value is required for a shell command")
        return CommandSpec(["/bin/sh", "-c", value], None, True)
    args = command.get("arguments") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise LaunchError("command.arguments must be a list of strings")
    if not isinstance(value, str) or not value:
        raise LaunchError("command.value (the executable) is required when shell is false")
    # Mesos: ``arguments`` is the whole argv (argv[0] included); ``value`` is what is run.
    return CommandSpec(list(args) or [value], value, False)


def task_environment(
    *,
    task_info: Mapping[str, Any],
    framework_id: str,
    agent_id: str,
    sandbox: Path,
    agent_endpoint: str,
    hostname: str,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    task_id = str(task_info["task_id"]["value"])
    env.update(
        {
            "MESOS_TASK_ID": task_id,
            "MESOS_EXECUTOR_ID": task_id,
            "MESOS_FRAMEWORK_ID": framework_id,
            "MESOS_AGENT_ID": agent_id,
            "MESOS_SLAVE_ID": agent_id,
            "MESOS_SANDBOX": str(sandbox),
            "MESOS_DIRECTORY": str(sandbox),
            "MESOS_AGENT_ENDPOINT": agent_endpoint,
            "MESOS_SLAVE_PID": f"slave(1)@{agent_endpoint}",
            "HOST": hostname,
        }
    )
    ports = task_ports(task_info)
    for i, port in enumerate(ports):
        env[f"PORT{i}"] = str(port)
    if ports:
        env["PORT"] = str(ports[0])
        env["PORTS"] = ",".join(str(p) for p in ports)
    command = task_info.get("command")
    if isinstance(command, dict):
        variables = (command.get("environment") or {}).get("variables") or []
        for var in variables:
            if isinstance(var, dict) and isinstance(var.get("name"), str):
                value = var.get("value")
                if isinstance(value, str):
                    env[var["name"]] = value
    return env


def cgroup_join_wrapper(procs_files: list[str], spec: CommandSpec) -> list[str]:
    """argv that moves itself into the task's cgroups, then execs the command.

    The child must join before it runs anything (or what it forks would escape).  A
    ``preexec_fn`` would do it in Python but forces a full ``fork`` of the agent (~9 ms of
    blocked event loop per launch); a tiny ``/bin/sh`` prologue keeps ``vfork`` (~1.7 ms).
    With ``shell`` false the command's own ``argv[0]`` is replaced by the executable path.
    """
    joins = " ".join(shlex.quote(f) for f in procs_files)
    script = f'for f in {joins}; do {{ echo $$ > "$f"; }} 2>/dev/null; done; exec "$@"'
    command = spec.argv if spec.executable is None else [spec.executable, *spec.argv[1:]]
    return ["/bin/sh", "-c", script, "paddock-task", *command]


@dataclass
class ExitOutcome:
    """How a task ended, as a TaskStatus would say it."""

    state: str
    message: str
    reason: str | None = None
    exit_code: int | None = None


def mesos_bytes(n: int) -> str:
    """Bytes as Mesos prints them: the largest unit that loses nothing (``64MB``)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n == 0 or n % 1024 != 0:
            return f"{n}{unit}"
        n //= 1024
    return f"{n}TB"


def memory_limit_message(memory: Mapping[str, Any] | None) -> str:
    """Mesos's message for a task its memory limit killed."""
    memory = memory or {}
    limit, peak = memory.get("limit_bytes"), memory.get("max_usage_bytes")
    if not isinstance(limit, int) or not isinstance(peak, int):
        return "Memory limit exceeded: the task was killed by the OOM killer"
    msg = (
        f"Memory limit exceeded: Requested: {mesos_bytes(limit)} Maximum Used: {mesos_bytes(peak)}"
    )
    stat = memory.get("stat")
    if isinstance(stat, dict) and stat:
        msg += "\n\nMEMORY STATISTICS: \n" + "\n".join(f"{k} {v}" for k, v in stat.items())
    return msg


def describe_exit(
    returncode: int, *, killed: bool, oom: bool = False, memory: Mapping[str, Any] | None = None
) -> ExitOutcome:
    if oom:
        return ExitOutcome(
            "TASK_FAILED",
            memory_limit_message(memory),
            "REASON_CONTAINER_LIMITATION_MEMORY",
            returncode,
        )
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        msg = f"Command terminated with signal {name}"
    else:
        msg = f"Command exited with status {returncode}"
    if killed:
        return ExitOutcome("TASK_KILLED", msg, None, returncode)
    if returncode == 0:
        return ExitOutcome("TASK_FINISHED", msg, None, 0)
    return ExitOutcome("TASK_FAILED", msg, None, returncode)


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to process group ``pgid``; a group that is gone (or not ours) is
    not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def terminate_group(
    pgid: int, grace: float, exited: asyncio.Event, cgroup: TaskCgroup | None = None
) -> None:
    """Kill a task's process group the way Mesos kills a command task: SIGTERM the
    group, give it ``grace`` seconds to end (``exited`` is set by whoever waits for the
    task), then SIGKILL the group and every process still in ``cgroup`` (a child that
    left the process group must not outlive the task).

    The one kill sequence of every process runner (:class:`TaskProcess`,
    :class:`AdoptedProcess`, :class:`~paddock.agent.supervised.SupervisedTask`)."""
    signal_group(pgid, signal.SIGTERM)
    if grace > 0:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await exited.wait()
    if exited.is_set():
        return
    signal_group(pgid, signal.SIGKILL)
    if cgroup is not None:
        for pid in cgroup.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class TaskProcess:
    """One running command. ``start`` then ``wait``; ``kill`` from anywhere."""

    spec: CommandSpec
    sandbox: Path
    env: dict[str, str]
    cgroup: TaskCgroup | None = None
    process: asyncio.subprocess.Process | None = None
    kill_requested: bool = False
    returncode: int | None = None
    oom_killed: bool = False
    _exited: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def start(self) -> None:
        self.sandbox.mkdir(parents=True, exist_ok=True)
        out = open(self.sandbox / "stdout", "ab")  # noqa: SIM115 - handed to the child
        err = open(self.sandbox / "stderr", "ab")  # noqa: SIM115
        if not self.spec.shell:
            self._check_executable()
        argv, executable = self.spec.argv, self.spec.executable
        if self.cgroup is not None:
            argv, executable = cgroup_join_wrapper(self.cgroup.procs_files(), self.spec), None
        try:
            await self._spawn(argv, executable, out, err)
        finally:
            out.close()
            err.close()

    async def _spawn(
        self,
        argv: list[str],
        executable: str | None,
        out: Any,
        err: Any,
        *,
        as_user: str = "",
        **options: Any,
    ) -> None:
        """Start the child in its sandbox and its own session; an OSError is a LaunchError
        (``as_user`` and ``options``: the user switch of :class:`ExecutorProcess`)."""
        try:
            self.process = await asyncio.create_subprocess_exec(
                *argv,
                executable=executable,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=str(self.sandbox),
                env=self.env,
                start_new_session=True,
                **options,
            )
        except OSError as exc:
            raise LaunchError(
                f"Failed to launch {self.spec.argv[0]!r}{as_user}: {exc.strerror}"
            ) from None

    def _check_executable(self) -> None:
        """Report a missing program as a launch failure (through the cgroup wrapper it
        would otherwise look like the command exiting with 127)."""
        prog = self.spec.executable or self.spec.argv[0]
        if "/" in prog:
            path = prog if os.path.isabs(prog) else str(self.sandbox / prog)
            ok = os.path.isfile(path) and os.access(path, os.X_OK)
        else:
            ok = shutil.which(prog, path=self.env.get("PATH", os.defpath)) is not None
        if not ok:
            raise LaunchError(f"Failed to launch {prog!r}: no such executable file")

    async def wait(self) -> int:
        """Wait for the command to exit, then kill what it left in its group."""
        assert self.process is not None
        rc = await self.process.wait()
        self.returncode = rc
        self._kill_group(signal.SIGKILL)
        if self.cgroup is not None:
            self.oom_killed = self.cgroup.oom_killed()  # read before the cgroup goes
            await asyncio.to_thread(self.cgroup.destroy)
        self._exited.set()
        return rc

    def _kill_group(self, sig: int) -> None:
        if self.process is not None:
            signal_group(self.process.pid, sig)

    async def kill(self, grace: float) -> None:
        """SIGTERM the process group, wait ``grace`` seconds, SIGKILL the group."""
        self.kill_requested = True
        if self.process is None or self._exited.is_set():
            return
        await terminate_group(self.process.pid, grace, self._exited, self.cgroup)


@dataclass
class AdoptedProcess:
    """A task process started by an earlier run of the agent, watched again after a
    restart (``--recover=reconnect``).  It is not our child, so its end is seen through a
    pidfd and its exit status is unknown (``wait`` returns None)."""

    pid: int
    cgroup: TaskCgroup | None = None
    kill_requested: bool = False
    oom_killed: bool = False
    returncode: int | None = None
    _exited: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def process(self) -> int:
        return self.pid  # "there is a process to signal" for the agent's kill path

    async def wait(self) -> int | None:
        loop = asyncio.get_running_loop()
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            fd = -1
        if fd >= 0:
            gone = asyncio.Event()
            loop.add_reader(fd, gone.set)
            try:
                await gone.wait()
            finally:
                loop.remove_reader(fd)
                os.close(fd)
        signal_group(self.pid, signal.SIGKILL)
        if self.cgroup is not None:
            self.oom_killed = self.cgroup.oom_killed()
            await asyncio.to_thread(self.cgroup.destroy)
        self._exited.set()
        return None

    async def kill(self, grace: float) -> None:
        self.kill_requested = True
        if self._exited.is_set():
            return
        # its cgroup (if kept) is emptied by ``wait`` once the group leader is gone
        await terminate_group(self.pid, grace, self._exited)
