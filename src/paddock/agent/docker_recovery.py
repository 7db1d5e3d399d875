"""Agent start-up for DOCKER tasks: reattach to their containers, or remove them.

Called by :mod:`paddock.agent.recovery` for each checkpointed live task whose
TaskInfo is a DOCKER container (its checkpoint holds the ``container_id`` once the
container was created), then once to remove orphans.

* ``--recover=reconnect``: a container that is still there is followed again with the
  same :class:`~paddock.agent.docker_engine.DockerContainer` (same container,
  not restarted): the task stays ``TASK_RUNNING``, its logs are copied on from where the
  sandbox files stopped, its real exit status is reported (a container that ended while
  the agent was down is reported at once), and a kill stops it.
* ``--recover=cleanup``: the container is removed and the task reported ``TASK_LOST``
  (``REASON_AGENT_RESTARTED``); so is a task whose container is gone or never started.
* Orphans: containers labelled with this agent's work dir (``paddock.work_dir``, set
  on every container next to ``paddock.agent_id``) that no live task owns are removed:
  leftovers of tasks that ended, or created just before a crash.  The work dir, not the
  agent id alone, names "this agent": ids handed out by test masters repeat across
  agents, a work dir cannot be shared by two running agents.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from paddock.agent.docker_containerizer import (
    container_of,
    docker_task_environment,
    follow_container,
    guard_runner,
    task_container,
)
from paddock.agent.docker_engine import DockerContainer, DockerUnavailable, blocking, docker_client
from paddock.agent.docker_spec import LABEL_PREFIX, SpecError

if TYPE_CHECKING:
    from paddock.agent.daemon import Agent, Task

log = logging.getLogger(__name__)

__all__ = ["recover_container_task", "remove_orphan_containers"]


def _lost(agent: Agent, task: Task, why: str) -> None:
    agent.report_status(
        task,
        "TASK_LOST",
        source="SOURCE_AGENT",
        reason="REASON_AGENT_RESTARTED",
        message=f"The agent restarted (--recover={agent.config.recover}) and {why}",
    )


async def recover_container_task(agent: Agent, task: Task, rec: dict[str, Any]) -> None:
    """Reattach to (or remove) the container of one checkpointed live DOCKER task."""
    container_id = rec.get("container_id")
    if "docker" not in agent.config.containerizers:
        _lost(agent, task, "no longer runs Docker containers (--containerizers)")
        return
    if not isinstance(container_id, str) or not container_id:
        _lost(agent, task, "found that the task's container was never started")
        return
    try:
        client = await blocking(docker_client, agent.config.docker_socket)
    except DockerUnavailable as exc:
        _lost(agent, task, f"cannot reach the container engine: {exc}")
        return
    try:
        state = (await blocking(client.inspect_container, container_id))["State"]
    except Exception as exc:
        if getattr(exc, "status_code", None) == 404:
            _lost(agent, task, "found the task's container gone")
        else:
            _lost(agent, task, f"could not inspect the task's container: {exc}")
        return
    name = str(rec.get("container_name") or container_id[:12])
    handle = DockerContainer(client, container_id, name, task.sandbox)
    started = bool(state.get("Running")) or str(state.get("Status")) in ("exited", "stopped")
    if agent.config.recover != "reconnect" or not started:
        await handle.kill(0)
        await handle.remove()
        _lost(
            agent,
            task,
            "removed the task's container" if started else "found its container never started",
        )
        return
    task.process = handle  # type: ignore[assignment]  # duck-typed: process + kill(grace)
    env = docker_task_environment(agent, task)
    try:
        _spec, health = task_container(agent, task, env)
    except (SpecError, ValueError):
        health = None  # it ran before, so this cannot happen; run it without checks
    since = None
    stdout = task.sandbox / "stdout"
    if stdout.exists():
        since = stdout.stat().st_mtime
    handle.follow_logs(since=since)
    if state.get("Running"):
        await handle.watch_oom()
    log.info("reattached to task %s's container %s", task.task_id, name)
    task.runner = asyncio.create_task(
        guard_runner(
            agent,
            task,
            follow_container(
                agent,
                task,
                handle,
                health,
                env,
                report_running=task.state == "TASK_STARTING",
                running_message="Reattached after an agent restart",
            ),
        ),
        name=f"task-{task.task_id}",
    )


async def remove_orphan_containers(agent: Agent) -> None:
    """Remove this agent's containers that no live task owns (see the module docstring)."""
    if "docker" not in agent.config.containerizers:
        return
    try:
        client = await blocking(docker_client, agent.config.docker_socket)
        version = await blocking(client.version)
        log.info(
            "docker containerizer: %s %s (API %s) at %s",
            ((version.get("Components") or [{}])[0] or {}).get("Name") or "engine",
            version.get("Version"),
            version.get("ApiVersion"),
            agent.config.docker_socket,
        )
        found = await blocking(
            client.containers,
            all=True,
            filters={"label": f"{LABEL_PREFIX}work_dir={agent.config.work_dir}"},
        )
    except Exception as exc:
        log.warning("docker containerizer: no engine to look for orphans in: %s", exc)
        return
    owned = set()
    for t in agent.tasks.values():
        handle = container_of(t)
        if handle is not None and not t.terminal:
            owned.add(handle.container_id)
    for c in found:
        if c.get("Id") in owned:
            continue
        names = ",".join(n.lstrip("/") for n in c.get("Names") or [])
        log.warning("removing orphan container %s (%s)", names, c.get("Id", "")[:12])
        try:
            await blocking(client.remove_container, c["Id"], v=True, force=True)
        except Exception as exc:
            log.warning("could not remove orphan container %s: %s", names, exc)
