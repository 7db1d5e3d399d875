"""Which user a process task runs as (Mesos's ``CommandInfo.user`` and ``--switch_user``).

Mesos's agent runs a task as its ``command.user`` (Marathon's app ``user``) when its
``--switch_user`` flag is on (the default): the user must exist on the agent, and
switching to it needs root, so an agent that does not run as root cannot run a task as
anyone else (Mesos's launcher fails to change user).  With ``--no-switch-user`` every
task runs as the agent's own user.  Here:

* no ``command.user``, ``--no-switch-user``, or the agent's own user: run as the agent
  (no switch);
* a user that does not exist on the agent: the task fails, naming the user;
* the agent not root and another user asked for: the task fails, saying why and what to
  do (run the agent as root, or ``--no-switch-user``);
* otherwise the task's supervisor drops to the user's uid, gid and supplementary
  groups before it execs the command, and the sandbox is handed to that user
  (:func:`chown_sandbox`), as Mesos chowns the sandbox to the task's user; its COMMAND
  health checks run as that user too (:func:`check_runner`).

Custom executors (:mod:`paddock.agent.custom_executor`) follow the same rules with
their ``ExecutorInfo.command.user``: the executor process runs as that user, in a sandbox
handed to it; when it cannot, the executor is not started and its tasks fail.

``FrameworkInfo.user`` (Mesos's fallback when a command names no user) is not applied:
frameworks here (Marathon included) send their own process's user there, and a task
without ``command.user`` keeps running as the agent's user.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paddock.agent.healthcheck import CommandRunner, HealthCheck, run_host_command

__all__ = [
    "TaskUser",
    "TaskUserError",
    "check_runner",
    "chown_sandbox",
    "command_user",
    "resolve_task_user",
]


class TaskUserError(RuntimeError):
    """The task cannot run as the user it asks for; the message says why."""


@dataclass(frozen=True)
class TaskUser:
    """A user to switch to (never the agent's own)."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    def request(self) -> dict[str, Any]:
        """For the supervisor's launch request."""
        return {"name": self.name, "uid": self.uid, "gid": self.gid, "groups": list(self.groups)}


def command_user(info: Mapping[str, Any]) -> str | None:
    """``command.user`` of a TaskInfo (None when absent or empty)."""
    command = info.get("command")
    if not isinstance(command, dict):
        return None
    user = command.get("user")
    return user if isinstance(user, str) and user.strip() else None


def _agent_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def resolve_task_user(
    info: Mapping[str, Any], *, switch_user: bool, what: str = "the task"
) -> TaskUser | None:
    """The user to switch to for ``info`` (None: run as the agent's user);
    :class:`TaskUserError` when the task cannot run as the user it names.  ``info`` is a
    TaskInfo or an ExecutorInfo (both carry ``command.user``); ``what`` names it in the
    error ("executor 'x'")."""
    name = command_user(info)
    if name is None or not switch_user:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise TaskUserError(
            f"Failed to launch {what} as user {name!r}: no such user on this agent"
        ) from None
    euid = os.geteuid()
    if entry.pw_uid == euid:
        return None  # already that user
    if euid != 0:
        me = _agent_user()
        raise TaskUserError(
            f"Failed to launch {what} as user {name!r}: the agent runs as {me!r}, not root, "
            f"and cannot switch user; run the agent as root, or with --no-switch-user to run "
            f"every task as {me!r}"
        )
    try:
        groups = tuple(os.getgrouplist(name, entry.pw_gid))
    except OSError:
        groups = (entry.pw_gid,)
    return TaskUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid, groups=groups)


def check_runner(user: TaskUser | None, env: dict[str, str], cwd: Path) -> CommandRunner | None:
    """COMMAND health checks of a task run as its user (as Mesos's executor, which runs
    as the task's user, runs them); None: the default (the agent's user)."""
    if user is None:
        return None
    spawn = {"user": user.uid, "group": user.gid, "extra_groups": list(user.groups)}

    async def run(hc: HealthCheck) -> tuple[bool, str]:
        return await run_host_command(hc, env, cwd, **spawn)

    return run


def chown_sandbox(sandbox: Path, user: TaskUser) -> None:
    """Give the sandbox (and what was fetched into it) to the task's user."""
    os.chown(sandbox, user.uid, user.gid)
    for root, dirs, files in os.walk(sandbox):
        for name in dirs + files:
            os.chown(os.path.join(root, name), user.uid, user.gid, follow_symlinks=False)
