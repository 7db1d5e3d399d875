"""A custom executor's process, started as its ``ExecutorInfo.command.user``.

Mesos's agent launches an executor as ``ExecutorInfo.command.user`` when ``--switch_user``
is on (:mod:`paddock.agent.task_user` decides who, with the same rules as process tasks).
The executor runs as a plain child of the agent (:class:`~paddock.agent.tasks.TaskProcess`),
not under a supervisor, so the user switch is the child's own: ``asyncio``'s
``user``/``group``/``extra_groups`` make it set its groups, gid and uid after ``fork``
and before ``exec``.  The working directory is entered before the switch, so the
executor runs in its sandbox even when a parent directory of the work dir is closed to
the user; the sandbox itself (and what was fetched into it) is the user's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from paddock.agent.task_user import TaskUser, chown_sandbox
from paddock.agent.tasks import LaunchError, TaskProcess

__all__ = ["ExecutorProcess"]


@dataclass
class ExecutorProcess(TaskProcess):
    """:class:`TaskProcess` that switches to ``user`` (None: the agent's own user).

    Executors get no cgroup (their resources are accounted, not enforced): the
    switching start ignores ``cgroup``.  ``TaskProcess`` itself is not changed here (a
    ``user`` there would let this override go)."""

    user: TaskUser | None = None

    async def start(self) -> None:
        user = self.user
        if user is None:
            await super().start()
            return
        self.sandbox.mkdir(parents=True, exist_ok=True)
        for name in ("stdout", "stderr"):  # the user's files, as the rest of the sandbox
            (self.sandbox / name).touch()
        try:
            await asyncio.to_thread(chown_sandbox, self.sandbox, user)
        except OSError as exc:
            raise LaunchError(
                f"Failed to give the sandbox to user {user.name!r}: {exc.strerror}"
            ) from None
        if not self.spec.shell:
            self._check_executable()
        with open(self.sandbox / "stdout", "ab") as out, open(self.sandbox / "stderr", "ab") as err:
            await self._spawn(
                list(self.spec.argv),
                self.spec.executable,
                out,
                err,
                as_user=f" as user {user.name!r}",
                user=user.uid,
                group=user.gid,
                extra_groups=list(user.groups),
            )
